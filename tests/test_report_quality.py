"""EDC figures (``frbench plot edc``): the drawn steps are the stored curves, the best curve is dashed, the discard
limit is marked, the step area drawn equals the stored pAUC, and bad input is a clear error naming the result."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner
from matplotlib import cbook

from fr_bench.cli import main
from fr_bench.metrics import edc, pair_quality
from fr_bench.protocols.base import ProtocolResult
from fr_bench.report.quality_plots import edc_curves, edc_figure, plot_edc
from fr_bench.results import StoredResult, read_result, write_result

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _curve_dict(res) -> dict:
    return {"starting_error": res.starting_error, "threshold": float(res.threshold), "discard_limit": res.discard_limit,
            "pauc": res.pauc, "pauc_best": res.pauc_best, "pauc_relative": res.pauc_relative,
            "discard_fractions": res.discard_fractions.tolist(), "errors": res.errors.tolist(),
            "best_errors": res.best_errors.tolist(), "downsampled_from": len(res.discard_fractions)}


def edc_record(model: str, seed: int, source: str = "norm", protocol: str = "demo", fm: bool = True) -> StoredResult:
    """A result with ``details["edc"]`` in the shape ``frbench evaluate --quality`` stores (curves from the metric)."""
    rng = np.random.default_rng(seed)
    labels = rng.random(600) < 0.3
    q = pair_quality(rng.integers(0, 12, 600), rng.integers(0, 12, 600))  # ties in quality
    scores = np.where(labels, 0.6, 0.1) + 0.25 * rng.normal(size=600) + 0.02 * q
    curves = {"fnm": _curve_dict(edc(labels, scores, q, relative_to_best=True))}
    if fm:
        curves["fm"] = _curve_dict(edc(labels, scores, q, error="fm", starting_error=0.01, relative_to_best=True))
    details = {"edc": {"source": source, "source_detail": "", "pair_quality": "min", "convention": "iso",
                    "discard_over": "class", **curves}}
    metrics = {"accuracy": 0.9, "edc_fnm_pauc": curves["fnm"]["pauc"]}
    return StoredResult(model={"name": model}, protocol={"name": protocol, "display_name": protocol.upper()},
                        result=ProtocolResult(protocol, metrics, details=details))


def _lines(fig, prefix):
    ax = fig.axes[0]
    return sorted((ln for ln in ax.get_lines() if (ln.get_gid() or "").startswith(prefix)), key=lambda ln: ln.get_gid())


def _step_area(line, limit):
    """Area under the line as drawn (its steps-post vertices), clipped at ``limit``: independent of the metric code."""
    x, y = cbook.STEP_LOOKUP_MAP[line.get_drawstyle()](np.asarray(line.get_xdata(), float),
                                                      np.asarray(line.get_ydata(), float))
    x = np.append(x, limit)  # the last step holds to the limit
    y = np.append(y, y[-1])
    area = 0.0
    for x0, x1, y0 in zip(x[:-1], x[1:], y[:-1]):
        lo, hi = min(x0, limit), min(x1, limit)
        area += (hi - lo) * y0 if hi > lo else 0.0
    return area


def test_plotted_steps_are_the_stored_curves(tmp_path):
    paths = [write_result(tmp_path, edc_record(m, s, src)) for m, s, src in
             (("arcface", 0, "norm"), ("sface", 1, "file:serfiq.csv"))]
    recs = [read_result(p) for p in paths]  # through the JSON file, as the CLI reads them
    for error in ("fnm", "fm"):
        fig = edc_figure(recs, "demo", error=error)
        ax = fig.axes[0]
        edcs, bests = _lines(fig, "edc:"), _lines(fig, "best:")
        assert len(edcs) == len(bests) == 2
        for rec, line, best in zip(recs, edcs, bests):
            stored = rec.result.details["edc"][error]
            assert line.get_drawstyle() == "steps-post" and best.get_drawstyle() == "steps-post"
            np.testing.assert_array_equal(line.get_xdata(), stored["discard_fractions"])
            np.testing.assert_array_equal(line.get_ydata(), np.asarray(stored["errors"], float))
            np.testing.assert_array_equal(best.get_ydata(), np.asarray(stored["best_errors"], float))
            assert best.get_linestyle() == "--" and line.get_linestyle() == "-"
            assert best.get_color() == line.get_color()
            # the step area drawn up to the discard limit is the stored pAUC (step interpolation, error held)
            assert _step_area(line, stored["discard_limit"]) == pytest.approx(stored["pauc"], abs=1e-12)
            # the best curve is stored at the realised fractions only (its pAUC discards one pair at a time, a
            # finer step), and it falls: the coarser steps held from the left cover at least its area
            assert _step_area(best, stored["discard_limit"]) >= stored["pauc_best"] - 1e-12
            legend = [t.get_text() for t in ax.get_legend().get_texts()]
            model, source = rec.model_name, rec.result.details["edc"]["source"]
            assert any(model in t and source in t and "pAUC" in t for t in legend)
        limits = [ln for ln in ax.get_lines() if ln.get_gid() == "limit"]
        assert len(limits) == 1 and set(limits[0].get_xdata()) == {0.2}
        # the ISO class reading: the fraction is a share of the class whose error is shown
        assert ax.get_xlabel() == f"fraction of {'mated' if error == 'fnm' else 'non-mated'} pairs discarded"
        assert ax.get_ylabel() == ("FNMR" if error == "fnm" else "FMR")
        start = recs[0].result.details["edc"][error]["starting_error"]
        assert f"= {start:g}" in ax.get_title() and "fixed once before discarding" in ax.get_title()


def test_plot_edc_writes_png_and_pdf(tmp_path):
    recs = [edc_record("arcface", 0), edc_record("arcface-detector", 0, source="detector")]
    paths = plot_edc(recs, "demo", [tmp_path / "edc.png", tmp_path / "edc.pdf"])
    assert paths[0].read_bytes().startswith(PNG_MAGIC) and paths[0].stat().st_size > 1000
    assert paths[1].read_bytes().startswith(b"%PDF")


def test_results_without_edc_are_named(tmp_path):
    plain = StoredResult(model={"name": "plainmodel"}, protocol={"name": "demo"},
                         result=ProtocolResult("demo", {"accuracy": 0.9}))
    no_fm = edc_record("fnmonly", 2, fm=False)
    with pytest.raises(ValueError, match="plainmodel"):
        edc_figure([edc_record("ok", 0), plain], "demo")
    with pytest.raises(ValueError, match="fnmonly") as info:
        edc_figure([edc_record("ok", 0), no_fm, plain], "demo", error="fm")
    assert "plainmodel" in str(info.value) and "ok on" not in str(info.value)  # every culprit, only the culprits
    with pytest.raises(ValueError, match="unknown EDC error kind"):
        edc_curves([edc_record("ok", 0)], "fmr")
    with pytest.raises(ValueError, match="several protocols"):
        edc_figure([edc_record("a", 0), edc_record("b", 1, protocol="lfw")])
    with pytest.raises(ValueError, match="no results"):
        edc_figure([edc_record("a", 0)], "lfw")
    bad = edc_record("broken", 3)
    bad.result.details["edc"]["fnm"]["errors"] = bad.result.details["edc"]["fnm"]["errors"][:-1]
    with pytest.raises(ValueError, match="broken.*errors has"):
        edc_curves([bad])


def test_cli_plot_edc(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for m, s in (("arcface", 0), ("sface", 1)):
        write_result(tmp_path / "res", edc_record(m, s))
    write_result(tmp_path / "res", StoredResult(model={"name": "noquality"}, protocol={"name": "lfw"},
                                                 result=ProtocolResult("lfw", {"accuracy": 0.9})))
    out = tmp_path / "edc.png"
    runner = CliRunner()
    r = runner.invoke(main, ["plot", "edc", "-p", "demo", str(tmp_path / "res"), "--error", "fm", "-o", str(out)])
    assert r.exit_code == 0, r.output
    assert out.read_bytes().startswith(PNG_MAGIC)
    for error in ("fnm", "fm"):  # default file: one per error kind, never one overwriting the other
        r = runner.invoke(main, ["plot", "edc", "-p", "demo", str(tmp_path / "res"), "--error", error])
        assert r.exit_code == 0, r.output
    assert sorted(p.name for p in (tmp_path / "results" / "plots").iterdir()) == ["demo_edc_fm.png", "demo_edc_fnm.png"]
    write_result(tmp_path / "res", StoredResult(model={"name": "noquality"}, protocol={"name": "demo"},
                                                 result=ProtocolResult("demo", {"accuracy": 0.9})))
    r = runner.invoke(main, ["plot", "edc", "-p", "demo", str(tmp_path / "res"), "-o", str(out)])
    assert r.exit_code != 0 and "noquality" in r.output and "Traceback" not in r.output


# ------------------------------------------------------------------------------------------ leaderboard EDC column


def _edc_table_records():
    recs = [edc_record("arcface", 0), edc_record("sface", 1), edc_record("magface", 2)]
    for r in recs:
        r.result.metrics["edc_fm_pauc"] = r.result.details["edc"]["fm"]["pauc"]
    return recs


def test_leaderboard_edc_column_lower_is_better():
    from fr_bench.report.leaderboard import leaderboard, leaderboard_values

    recs = _edc_table_records()
    for kind, name in (("fnm", "FNM-EDC"), ("fm", "FM-EDC")):
        label = f"DEMO {name} pAUC"
        df = leaderboard(recs, edc=kind)
        assert list(df.columns) == ["demo accuracy", label]  # after the protocol's headline columns
        for r in recs:
            assert df.loc[r.model_name, label] == f"{r.result.details['edc'][kind]['pauc']:.4f}"
        note = next(n for n in df.attrs["footnotes"] if n.startswith(label))
        assert "lower is better" in note and "quality = norm" in note and "pair quality = min" in note
        assert df.attrs["comparable"][label] is True
        ranked = leaderboard(recs, edc=kind, sort_by=label)
        paucs = {r.model_name: r.result.details["edc"][kind]["pauc"] for r in recs}
        assert list(ranked.index) == sorted(paucs, key=paucs.get)  # lowest pAUC first
        values = leaderboard_values(recs, edc=kind)
        assert values.loc["sface", label] == pytest.approx(paucs["sface"])
    assert "DEMO FNM-EDC pAUC" not in leaderboard(recs).columns  # only when asked
    with pytest.raises(ValueError, match="unknown EDC error kind"):
        leaderboard(recs, edc="fmr")


def test_leaderboard_edc_settings_differ_marked_never_ranked():
    from fr_bench.report.leaderboard import leaderboard

    recs = _edc_table_records()
    recs[1].result.details["edc"]["source"] = "file:serfiq.csv"  # sface: another quality source
    recs[2].result.details["edc"]["fnm"]["discard_limit"] = 0.3  # magface: another discard limit
    label = "DEMO FNM-EDC pAUC"
    df = leaderboard(recs, edc="fnm")
    marks = {m: df.loc[m, label].split()[-1] for m in df.index}
    assert len(set(marks.values())) == 3 and all(v.startswith("§") for v in marks.values())
    assert df.attrs["comparable"][label] is False and df.attrs["comparable"]["demo accuracy"] is True
    note = next(n for n in df.attrs["footnotes"] if n.startswith(label))
    assert "not ranked" in note and "lower is better" in note
    assert f"{marks['sface']} = quality = file:serfiq.csv" in note and "discard limit = 0.3" in note
    with pytest.raises(ValueError, match="refusing to rank"):
        leaderboard(recs, edc="fnm", sort_by=label)
    # the FM column of the same results: the source differs there too; the limit does not
    fm = leaderboard(recs, edc="fm")
    assert len({fm.loc[m, "DEMO FM-EDC pAUC"].split()[-1] for m in fm.index}) == 2
    # an EDC recorded under different scoring conventions carries the protocol's § too
    recs = _edc_table_records()
    recs[0].result.conventions = {"score": "cosine-flip-concat"}
    df = leaderboard(recs, edc="fnm")
    assert df.attrs["comparable"][label] is False and df.loc["arcface", label].endswith(("§A", "§B"))


def test_cli_leaderboard_edc(tmp_path):
    for r in _edc_table_records():
        write_result(tmp_path, r)
    runner = CliRunner()
    out = runner.invoke(main, ["leaderboard", str(tmp_path), "--edc"])
    assert out.exit_code == 0, out.output
    assert "DEMO FNM-EDC pAUC" in out.output.splitlines()[0] and "lower is better" in out.output
    out = runner.invoke(main, ["leaderboard", str(tmp_path), "--edc", "fm", "--format", "csv"])
    assert out.exit_code == 0 and "DEMO FM-EDC pAUC" in out.output.splitlines()[0]


def test_leaderboard_edc_quality_file_compared_by_content():
    from fr_bench.report.leaderboard import leaderboard

    recs = _edc_table_records()[:2]
    for r, path in zip(recs, ("/a/q.csv", "/elsewhere/q.csv")):  # one file's content, read from two places
        r.result.details["edc"]["source"] = "q.csv"
        r.result.details["edc"]["source_detail"] = {"kind": "file", "file": "q.csv", "path": path, "sha256": "ab" * 32}
    label = "DEMO FNM-EDC pAUC"
    df = leaderboard(recs, edc="fnm")
    assert df.attrs["comparable"][label] is True
    assert any(n.startswith(label) and "quality file = sha256 abababababab" in n for n in df.attrs["footnotes"])
    recs[1].result.details["edc"]["source_detail"]["sha256"] = "cd" * 32  # same name, other content
    assert leaderboard(recs, edc="fnm").attrs["comparable"][label] is False
