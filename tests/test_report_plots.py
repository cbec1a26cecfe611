"""Figures: files written (PNG/PDF by extension, atomically), and the overlap shading has the right area."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.path import Path as MplPath

from fr_bench.protocols.base import ProtocolResult
from fr_bench.report.plots import (
    draw_distribution,
    new_figure,
    plot_det,
    plot_distribution,
    plot_roc,
    save_figure,
)
from fr_bench.results import StoredResult

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _curve(shift, n=400):
    far = np.r_[0.0, np.geomspace(1e-6, 1.0, n)]
    tar = np.clip(1.0 - 0.2 * np.exp(np.log10(np.maximum(far, 1e-7)) * (0.5 + shift)), 0, 1)
    return far, np.maximum.accumulate(tar)


def _record(name, shift):
    far, tar = _curve(shift)
    k = np.searchsorted(far, 1e-4, side="right") - 1
    result = ProtocolResult(
        "ijbc",
        {"tar@far=1e-4": float(tar[k])},
        operating_points={"tar@far=1e-4": {"target": 1e-4, "far": float(far[k]), "tar": float(tar[k])}},
        intervals={"tar@far=1e-4": {"low": float(tar[k]) - 0.01, "high": float(tar[k]) + 0.005, "level": 0.95}},
        details={"roc": {"far": far.tolist(), "tar": tar.tolist()}},
    )
    return StoredResult(model={"name": name}, protocol={"name": "ijbc", "display_name": "IJB-C"}, result=result)


def _assert_png(path):
    data = path.read_bytes()
    assert len(data) > 1000 and data.startswith(PNG_MAGIC)


def test_plot_roc_from_curves_png_and_pdf(tmp_path):
    curves = {"model A": _curve(0.0), "model B": _curve(0.3)}
    bands = {"model A": [(1e-4, 0.95, 0.94, 0.96)]}
    paths = plot_roc(curves, "IJB-C", [tmp_path / "roc.png", tmp_path / "roc.pdf"], bands=bands)
    assert paths == [tmp_path / "roc.png", tmp_path / "roc.pdf"]
    _assert_png(paths[0])
    assert paths[1].read_bytes().startswith(b"%PDF")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["roc.pdf", "roc.png"]  # no temporary files left


def test_plot_roc_and_det_from_stored_results(tmp_path):
    recs = [_record("arcface", 0.0), _record("sface", 0.3)]
    _assert_png(plot_roc(recs, "ijbc", tmp_path / "roc.png")[0])
    _assert_png(plot_roc(recs, None, tmp_path / "roc_lin.png", log_far=False)[0])
    _assert_png(plot_det(recs, "ijbc", tmp_path / "det.png")[0])
    other = _record("x", 0.1)
    other.protocol["name"] = "lfw"
    with pytest.raises(ValueError, match="several protocols"):
        plot_roc(recs + [other], None, tmp_path / "mixed.png")


def test_plot_roc_without_curves_is_an_error(tmp_path):
    rec = _record("a", 0.0)
    rec.result.details.clear()
    with pytest.warns(UserWarning, match="no details"), pytest.raises(ValueError, match="nothing to plot"):
        plot_roc([rec], "ijbc", tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


def _polygon_area(path):
    """Shoelace area of the polygons of a matplotlib path (data coordinates), split at MOVETO codes.

    (Path.to_polygons would simplify long paths first, changing the area; the raw vertices are used.)
    """
    codes = path.codes if path.codes is not None else np.full(len(path.vertices), MplPath.LINETO)
    starts = [i for i, c in enumerate(codes) if c == MplPath.MOVETO] + [len(codes)]
    total = 0.0
    for a, b in zip(starts[:-1], starts[1:]):
        x, y = path.vertices[a:b, 0], path.vertices[a:b, 1]
        total += 0.5 * abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))
    return total


def test_distribution_overlap_shading_has_the_overlap_area(tmp_path):
    rng = np.random.default_rng(0)
    edges = np.linspace(-0.4, 1.0, 71)  # unequal totals, equal bins
    gen = np.histogram(rng.normal(0.45, 0.15, 3000), edges)[0]
    imp = np.histogram(rng.normal(0.10, 0.10, 30000), edges)[0]
    expected = np.minimum(gen / gen.sum(), imp / imp.sum()).sum()  # overlap coefficient from counts
    assert 0.05 < expected < 0.5
    fig = new_figure()
    ax = fig.add_subplot()
    artists = draw_distribution(ax, {"bin_edges": edges, "genuine_counts": gen, "impostor_counts": imp,
                                     "dprime": 2.7})
    assert artists["overlap"].get_gid() == "overlap"
    assert _polygon_area(artists["overlap"].get_path()) == pytest.approx(expected, rel=1e-9)
    assert artists["overlap_area"] == pytest.approx(expected, rel=1e-12)
    assert "d′ = 2.70" in ax.get_title() and f"{expected * 100:.3g}%" in ax.get_title()


def test_distribution_shading_with_unequal_bins_by_hand():
    # densities: genuine [0, 1/4, 3/4] / widths [1, 1, 2] -> [0, .25, .375]; impostor [.5, .5, 0] / widths
    # min -> [0, .25, 0]: area 0.25 = min(1/4, 2/4) in bin 2
    fig = new_figure()
    artists = draw_distribution(fig.add_subplot(), {"bin_edges": [0, 1, 2, 4], "genuine_counts": [0, 1, 3],
                                                    "impostor_counts": [2, 2, 0], "overlap": 0.25})
    assert _polygon_area(artists["overlap"].get_path()) == pytest.approx(0.25)


def test_plot_distribution_files_and_inputs(tmp_path):
    dist = {"bin_edges": [0.0, 0.5, 1.0], "genuine_counts": [1, 9], "impostor_counts": [9, 1], "dprime": 1.2,
            "overlap": 0.2}
    _assert_png(plot_distribution(dist, tmp_path / "d.png", "demo")[0])
    _assert_png(plot_distribution(dist, tmp_path / "d_log.png", log_density=True)[0])
    rec = _record("m", 0.0)
    rec.result.details["distribution"] = dist
    _assert_png(plot_distribution(rec, tmp_path / "d_rec.png")[0])
    with pytest.raises(ValueError, match="bin_edges"):
        plot_distribution({"bin_edges": [0, 1], "genuine_counts": [1, 2], "impostor_counts": [1, 2]},
                          tmp_path / "bad.png")


def test_save_figure_rejects_unknown_extension_and_writes_atomically(tmp_path, monkeypatch):
    fig = new_figure()
    fig.add_subplot().plot([0, 1], [0, 1])
    with pytest.raises(ValueError, match="unsupported figure format"):
        save_figure(fig, tmp_path / "x.docx")
    target = tmp_path / "x.png"
    target.write_bytes(b"old")

    def broken_savefig(*args, **kwargs):
        raise RuntimeError("render failed")

    monkeypatch.setattr(fig, "savefig", broken_savefig)
    with pytest.raises(RuntimeError):
        save_figure(fig, target)
    assert target.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["x.png"]


def test_det_rate_labels():
    from fr_bench.report.plots import _rate_label

    assert [_rate_label(v) for v in (1e-6, 2e-5, 1e-3, 0.05, 0.2)] == ["1e-6", "2e-5", "1e-3", "0.05", "0.2"]


def test_det_of_perfectly_separated_scores_still_writes_a_figure(tmp_path):
    far = np.array([0.0, 0.0, 0.5, 1.0])
    tar = np.array([0.0, 1.0, 1.0, 1.0])  # FNMR = 0 wherever FMR > 0
    with pytest.warns(UserWarning, match="not drawn"):
        paths = plot_det({"perfect": (far, tar)}, "demo", tmp_path / "det.png")
    _assert_png(paths[0])


def test_stored_roc_with_fpr_tpr_keys_and_list_prefix(tmp_path):
    # the protocols store {"fpr", "tpr", "threshold"}; K-FACE namespaces each list ("Q1/roc", "Q1/tar@far=1e-3")
    far, tar = _curve(0.0)
    k = np.searchsorted(far, 1e-3, side="right") - 1
    result = ProtocolResult(
        "kface", {"Q1/tar@far=1e-3": float(tar[k])},
        operating_points={"Q1/tar@far=1e-3": {"far": float(far[k])}},
        intervals={"Q1/tar@far=1e-3": {"low": float(tar[k]) - 0.02, "high": float(tar[k]), "level": 0.9}},
        details={"Q1/roc": {"fpr": far.tolist(), "tpr": tar.tolist(), "threshold": far.tolist()},
                 "Q1/distribution": {"bin_edges": [0, 1, 2], "genuine_counts": [1, 3], "impostor_counts": [3, 1]}},
    )
    rec = StoredResult(model={"name": "m"}, protocol={"name": "kface"}, result=result)
    from fr_bench.report.plots import _bands_from_record

    assert _bands_from_record(rec, "Q1/") == [(float(far[k]), float(tar[k]), float(tar[k]) - 0.02, float(tar[k]))]
    _assert_png(plot_roc([rec], "kface", tmp_path / "q1.png", roc_key="Q1/roc")[0])
    _assert_png(plot_det([rec], "kface", tmp_path / "q1_det.png", roc_key="Q1/roc")[0])
    _assert_png(plot_distribution(rec, tmp_path / "q1_dist.png", key="Q1/distribution")[0])
    with pytest.warns(UserWarning), pytest.raises(ValueError, match="nothing to plot"):
        plot_roc([rec], "kface", tmp_path / "none.png")  # no plain "roc" here
