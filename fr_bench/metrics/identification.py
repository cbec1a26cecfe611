"""Identification metrics (STUB: being implemented)."""
from __future__ import annotations


def cmc(probe, probe_ids, gallery, gallery_ids, ranks=(1, 5, 10, 20), block_size=4096):
    raise NotImplementedError


def tpir_at_fpir(probe, probe_ids, gallery, gallery_ids, fpirs=(1e-3, 1e-2, 1e-1), rank=1, block_size=4096):
    raise NotImplementedError


def distractor_rank1(probe, probe_ids, distractors, block_size=65536, device=None):
    raise NotImplementedError
