"""Quality-weighted template pooling (``norm-weighted``, MagFace-style) stays available by name and appears beside
plain pooling (``media-mean-sum``, the reference) in ONE comparison table: ``frbench conventions -p ijbb``.

The pooled TARs of the table are checked against template features and scores computed here from their definitions
(per-template loops), read at each FAR with the published IJB rule (scikit-learn's ROC, nearest FPR).
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from click.testing import CliRunner
from sklearn.metrics import roc_curve
from writers_ijb import write_ijb_release

from fr_bench.cli import main
from fr_bench.protocols import load_protocol
from fr_bench.report.tables import conventions_table, render
from fr_bench.runner import conventions_rows

DIM = 12


def _release(root, write_images=False, n_subjects=16):
    """``n_subjects`` x 3 templates, each of 1-3 media holding 1-3 images (so media means and image means differ);
    16 subjects give 48 mated pairs among 1128: TARs fine enough to tell the poolings apart at 1e-3 ... 1e-1."""
    rng = np.random.default_rng(3)
    templates, medias, subj, media = [], [], {}, 1
    for s in range(n_subjects):
        for k in range(3):
            t = 100 * s + k + 1
            subj[t] = s
            for _ in range(int(rng.integers(1, 4))):
                n = int(rng.integers(1, 4))
                templates += [t] * n
                medias += [media] * n
                media += 1
    ts = sorted(subj)
    pairs = [(a, b, int(subj[a] == subj[b])) for i, a in enumerate(ts) for b in ts[i + 1:]]
    fx = write_ijb_release(root, "ijbb", templates, medias, pairs, write_images=write_images)
    centres = rng.normal(size=(n_subjects, DIM))
    s = np.array([subj[t] for t in fx.templates])
    emb = centres[s] + 1.2 * rng.normal(size=(len(s), DIM))
    emb *= rng.uniform(0.3, 3.0, size=(len(s), 1))  # feature norms that differ a lot: the norm weighting matters
    return fx, emb.astype(np.float32)


def _templates_by_hand(fx, emb, pooling):
    """Template feature per template id, from the definitions (detector score x, as the loader's defaults)."""
    tids, mids = np.asarray(fx.templates), np.asarray(fx.medias)
    det = np.asarray(fx.scores, dtype=np.float64)
    out = {}
    for t in np.unique(tids):
        total = np.zeros(emb.shape[1])
        if pooling == "media-mean-sum":  # insightface eval: mean of each media's (raw x det) features, summed
            for m in np.unique(mids[tids == t]):
                idx = np.flatnonzero((tids == t) & (mids == m))
                total += np.mean([det[i] * emb[i] for i in idx], axis=0)
        else:  # norm-weighted (MagFace): each unit feature times its norm (x det), averaged over the images
            idx = np.flatnonzero(tids == t)
            for i in idx:
                norm = np.linalg.norm(emb[i])
                total += det[i] * norm * (emb[i] / norm) / len(idx)
        out[t] = total / np.linalg.norm(total)
    return out


def _nearest_tar(scores, labels, far):
    fpr, tpr, _ = roc_curve(labels, scores)
    fpr, tpr = fpr[::-1], tpr[::-1]
    return tpr[np.argmin(np.abs(fpr - far))]


def test_norm_weighted_beside_plain_pooling_with_independent_tars(tmp_path):
    fx, emb = _release(tmp_path / "IJBB")
    p = load_protocol("ijbb", fx.root, check_counts=False)
    assert "norm-weighted" in p.conventions["pooling"] and p.conventions["pooling"][0] == "media-mean-sum"
    assert p.conventions["tar"][0] == "nearest"  # the pooling rows use the default TAR reading
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rows = conventions_rows(p, emb, np.linalg.norm(emb, axis=1))
    pooling = {(r["convention"], r["metric"]): r for r in rows if r["group"] == "pooling"}
    plain = {m for c, m in pooling if c == "media-mean-sum"}
    assert plain and plain == {m for c, m in pooling if c == "norm-weighted"}  # the same numbers, side by side
    assert pooling[("media-mean-sum", next(iter(plain)))]["default"] is True

    labels = np.asarray(fx.pairs)[:, 2].astype(bool)
    scores = {}
    for name in ("media-mean-sum", "norm-weighted"):
        feats = _templates_by_hand(fx, emb.astype(np.float64), name)
        scores[name] = np.array([feats[a] @ feats[b] for a, b, _ in fx.pairs])
    assert not np.allclose(scores["media-mean-sum"], scores["norm-weighted"])  # the fixture tells them apart
    checked = 0
    for (name, metric), row in pooling.items():
        if name not in scores or not metric.startswith("tar@far=") or not math.isfinite(row["value"]):
            continue
        far = float(metric.split("=", 1)[1])
        assert row["value"] == pytest.approx(_nearest_tar(scores[name], labels, far), abs=1e-9), (name, metric)
        checked += 1
    assert checked >= 6
    tars = {name: [v["value"] for (c, m), v in pooling.items() if c == name and m.startswith("tar@")]
            for name in scores}
    assert tars["media-mean-sum"] != tars["norm-weighted"]  # the comparison shows a difference on this fixture

    table = conventions_table(rows)  # ONE table: both poolings, Δ against the reference pooling
    group = table[table["group"] == "pooling"]
    assert {"media-mean-sum (default)", "norm-weighted"} <= set(group["convention"])
    metric = max((m for m in plain if m.startswith("tar@") and math.isfinite(pooling[("norm-weighted", m)]["value"])),
                 key=lambda m: float(m.split("=", 1)[1]))
    row = group[(group["convention"] == "norm-weighted") & (group["metric"] == metric)].iloc[0]
    delta = 100 * (pooling[("norm-weighted", metric)]["value"] - pooling[("media-mean-sum", metric)]["value"])
    assert row["Δ vs default"] == f"{delta:+.2f}"
    md = render(table, "md")
    assert "| pooling | media-mean-sum (default) |" in md and "| pooling | norm-weighted |" in md


MODEL = """
import torch
from torch import nn


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.proj = nn.Linear(3 * 14 * 14, 12)

    def forward(self, x):
        x = nn.functional.adaptive_avg_pool2d(x, 14).flatten(1)
        return self.proj(x) * (1.0 + x.abs().mean(dim=1, keepdim=True))


def make():
    return Tiny()
"""


def test_cli_conventions_shows_both_poolings(tmp_path, monkeypatch):
    (tmp_path / "poolmodel.py").write_text(MODEL)
    monkeypatch.syspath_prepend(str(tmp_path))
    fx, _ = _release(tmp_path / "IJBB", write_images=True, n_subjects=6)
    res = CliRunner().invoke(main, ["conventions", "-m", "poolmodel:make", "-p", "ijbb", "-r", str(fx.root),
                                    "-o", "check_counts=false", "--device", "cpu", "--no-cache", "-q"])
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    plain = [ln for ln in lines if ln.startswith("| pooling | media-mean-sum (default) | tar@far=")]
    weighted = [ln for ln in lines if ln.startswith("| pooling | norm-weighted | tar@far=")]
    assert plain and len(plain) == len(weighted)
