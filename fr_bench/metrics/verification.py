"""Verification metrics (STUB: being implemented). Scores: higher = more similar; labels: 1 genuine, 0 impostor."""
from __future__ import annotations


def roc(scores, labels):
    raise NotImplementedError


def tar_at_far(scores, labels, fars=(1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1), convention="strict"):
    raise NotImplementedError


def operating_points(scores, labels, fars=(1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1), convention="strict"):
    raise NotImplementedError


def eer(scores, labels):
    raise NotImplementedError


def kfold_accuracy(scores, labels, n_folds=10, thresholds="exact"):
    raise NotImplementedError


def pair_accuracy(scores, labels, convention="kfold-grid", n_folds=10):
    raise NotImplementedError


def angular_scores(emb_a, emb_b, subtract_mean=True):
    raise NotImplementedError


def verification_report(scores, labels, fars=(1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1), tar_convention="strict",
                        accuracy_convention="kfold-exact", n_folds=10):
    raise NotImplementedError
