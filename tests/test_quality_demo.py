"""The real SFace model on the built-in demo protocol with the feature-norm quality source: EDC stored in the result.

Checks what can be checked on 55 faces (the curve starts at fraction 0 with the starting error measured on all
pairs, the pAUCs are finite and at least the theoretical best, the stored EDC equals ``edc`` on pairwise qualities
recomputed from the pair file), and writes the measured figures to ../notes/demo_figures_quality.md when that
folder exists (for the issue's closing note; not a repository file).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import shared_path

from fr_bench.metrics import edc
from fr_bench.protocols.demo import DEMO_DATA

NOTES = Path("/work/notes")


def _pair_file():
    for line in (DEMO_DATA / "pairs.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            a, b, y = line.split()
            yield "demo/" + a, "demo/" + b, y == "1"


def test_sface_demo_edc_from_feature_norm(tmp_path):
    pytest.importorskip("onnxruntime", reason="onnxruntime is needed to run the SFace ONNX model")
    model = shared_path("models", "sface", "face_recognition_sface_2021dec.onnx")
    from fr_bench.runner import evaluate_model

    # flip=none: the norm of the image's own feature (MagFace's magnitude reading), and half the CPU time
    ev = evaluate_model(str(model), "demo", device="cpu", flip="none", quality="norm", progress=False,
                        num_workers=0, cache_dir=tmp_path / "cache")
    assert ev.result.conventions["flip"] == "none"
    res = ev.result
    pairs = res.scores.pairs
    norms = dict(zip(ev.protocol.images.keys(), np.linalg.norm(ev.embeddings.features.astype(np.float64), axis=1)))
    rows = list(_pair_file())
    np.testing.assert_array_equal(pairs.labels, [y for _, _, y in rows])
    pair_q = np.array([min(norms[a], norms[b]) for a, b, _ in rows])
    stored = res.details["edc"]
    assert stored["source"] == "norm" and stored["pair_quality"] == "min"
    figures = {}
    for error, start in (("fnm", 0.05), ("fm", 1e-3)):
        curve = stored[error]
        ref = edc(pairs.labels, pairs.scores, pair_q, error=error, starting_error=start, relative_to_best=True)
        assert curve["discard_fractions"][0] == 0.0
        assert np.isfinite(curve["pauc"]) and np.isfinite(res.metrics[f"edc_{error}_pauc"])
        assert curve["pauc"] == ref.pauc and curve["threshold"] == ref.threshold
        np.testing.assert_array_equal(curve["errors"], ref.errors)
        assert curve["pauc_best"] <= curve["pauc"] + 1e-15
        # the error at fraction 0 is the starting error measured on all pairs with the fixed threshold
        s, y = pairs.scores.astype(np.float64), pairs.labels
        first = np.mean(s[y] < curve["threshold"]) if error == "fnm" else np.mean(s[~y] >= curve["threshold"])
        assert curve["errors"][0] == pytest.approx(first, abs=1e-15) and first <= start
        figures[error] = curve
    _write_figures(ev, figures, int(pairs.labels.sum()), int((~pairs.labels).sum()))


def _write_figures(ev, figures, n_gen, n_imp):
    if not NOTES.is_dir():
        return
    lines = ["# Demo figures: EDC from the feature norm (SFace, demo protocol)", "",
             f"Model: SFace 2021dec ONNX; protocol demo ({n_gen} genuine + {n_imp} impostor pairs); quality source "
             f"'norm' (flip={ev.result.conventions['flip']}: norm of the image's own feature), pairwise quality min; "
             "ISO EDC, discard limit 0.20. Measured by tests/test_quality_demo.py.", ""]
    for error, curve in figures.items():
        lines += [f"## {error.upper()}-EDC (starting error {curve['starting_error']:g})", "",
                  f"- threshold (cosine): {curve['threshold']:.6f}",
                  f"- pAUC (to 0.20): {curve['pauc']:.6g}; theoretical best {curve['pauc_best']:.6g}; "
                  f"relative (pAUC - best) {curve['pauc_relative']:.6g}",
                  f"- curve points: {curve['downsampled_from']} (none dropped)" if curve['downsampled_from'] ==
                  len(curve['errors']) else f"- curve points: {len(curve['errors'])} of {curve['downsampled_from']}",
                  "- first points (discard fraction: error / best):"]
        for f, e, b in list(zip(curve["discard_fractions"], curve["errors"], curve["best_errors"]))[:8]:
            lines.append(f"  - {f:.5f}: {e:.6f} / {b:.6f}")
        lines.append("")
    (NOTES / "demo_figures_quality.md").write_text("\n".join(lines))
