"""run_suite against the same protocols run one by one (every family a suite covers), the extraction count, the
preflight stopping the run before any extraction, --allow-missing, and the suite record."""

from __future__ import annotations

import json

import numpy as np
import pytest
from embed_fixtures import TinyNet
from writers import write_image, write_lfw
from suite_fixtures import noise_faces, write_pack, write_suite_root

from fr_bench import extract as fr_extract
from fr_bench.runner import evaluate_model
from fr_bench.suites.preflight import image_set_id
from fr_bench.suites.run import run_suite
from fr_bench.suites.spec import Member, Suite, SuiteError

pytestmark = [pytest.mark.filterwarnings("ignore:TPIR at FPIR"),  # the 1:N fixture has 6 non-mated searches
              pytest.mark.usefixtures("one_torch_thread")]

FAST = {"use_cache": False, "num_workers": 0, "progress": False}
SMALL_PACK = {"expected_pairs": None}  # fixture packs hold 60 pairs, not the real 6,000
IJB = {"check_counts": False}


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """lfw.bin, cfp_fp.bin, agedb_30.bin packs, an official LFW layout (aligned crops) and an IJB-C release."""
    base = tmp_path_factory.mktemp("suite_root")
    write_suite_root(base)
    official = base / "official"
    names = ("Ann_A", "Ben_B", "Cid_C", "Dee_D")
    write_lfw(official / "LFW", names=names, n_images=3, per_fold=6)
    for k, name in enumerate(names):  # noisy aligned crops instead of the smooth gradients
        for n in range(1, 4):
            write_image(official / "LFW" / "lfw" / name / f"{name}_{n:04d}.jpg", noise_faces(1, 100 + 10 * k + n)[0])
    return base


def _suite(*members: Member, name: str = "t") -> Suite:
    return Suite(name=name, display_name=name, description="", members=tuple(members))


PACKS = _suite(Member("lfw", ("lfw.bin",), SMALL_PACK), Member("cfp_fp", ("cfp_fp.bin",), SMALL_PACK),
               Member("agedb_30", ("agedb_30.bin",), SMALL_PACK), name="packs")
MIXED = _suite(Member("ijbc", ("IJBC",), IJB), Member("ijbc_1n", ("IJBC",), IJB),
               Member("lfw", ("official/LFW",), {**SMALL_PACK, "aligned": True}), Member("demo", ()), name="mixed")


@pytest.fixture
def count_extractions(monkeypatch):
    """Every call of fr_bench.extract.extract, as (number of images, keys fingerprint)."""
    calls: list[int] = []
    real = fr_extract.extract

    def counting(images, model, **kw):
        calls.append(len(images))
        return real(images, model, **kw)

    monkeypatch.setattr(fr_extract, "extract", counting)
    return calls


def _same_result(a, b) -> None:
    """Two evaluations of one protocol agree: metrics, conventions, operating points, intervals, flags."""
    assert a.result.metrics.keys() == b.result.metrics.keys()
    for key, value in a.result.metrics.items():
        assert b.result.metrics[key] == pytest.approx(value, abs=1e-9, nan_ok=True), key
    assert a.result.conventions == b.result.conventions
    assert a.result.operating_points.keys() == b.result.operating_points.keys()
    for key, point in a.result.operating_points.items():
        for field, value in point.items():
            assert b.result.operating_points[key][field] == pytest.approx(value, abs=1e-9, nan_ok=True), (key, field)
    for key, iv in a.result.intervals.items():
        assert iv["low"] == pytest.approx(b.result.intervals[key]["low"], abs=1e-9), key
        assert iv["high"] == pytest.approx(b.result.intervals[key]["high"], abs=1e-9), key
    assert sorted(a.result.flags) == sorted(b.result.flags)
    np.testing.assert_allclose(a.embeddings.features, b.embeddings.features, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("suite", [PACKS, MIXED], ids=["pair-packs", "ijb-official-demo"])
def test_a_suite_equals_its_protocols_run_one_by_one(root, tmp_path, count_extractions, suite):
    run = run_suite(TinyNet(), suite, root, out=tmp_path / "suite", ci=0.95, n_boot=30, workers=4, **FAST)
    suite_calls = list(count_extractions)
    assert list(run.evaluations) == suite.protocols and run.skipped == {}
    count_extractions.clear()
    for member in suite.members:
        path = root / member.candidates[0] if member.candidates else None
        alone = evaluate_model(TinyNet(), member.protocol, path, out=tmp_path / "alone", ci=0.95, n_boot=30,
                               protocol_options=dict(member.options), **FAST)
        _same_result(alone, run.evaluations[member.protocol])
        stored, alone_stored = (json.loads((tmp_path / d / "TinyNet" / f"{member.protocol}.json").read_text())
                                for d in ("suite", "alone"))
        for part in ("metrics", "operating_points", "conventions", "intervals"):
            assert stored["result"][part] == alone_stored["result"][part], part
    # one extraction per distinct image set: IJB-C 1:1 and 1:N share theirs, the one-by-one runs do not
    distinct = {image_set_id(proto): len(proto.images) for _m, _p, proto in run.preflight.ok}
    assert sorted(suite_calls) == sorted(distinct.values())
    assert len(count_extractions) == len(suite.members)
    if suite is MIXED:
        assert run.extractions[0]["protocols"] == ["ijbc", "ijbc_1n"] and len(run.extractions) == 3


def test_the_model_runs_once_per_distinct_image_set(root):
    net = TinyNet()
    run = run_suite(net, MIXED, root, **FAST)
    sizes = {image_set_id(proto): len(proto.images) for _m, _p, proto in run.preflight.ok}
    probe = TinyNet()
    from fr_bench.models import load_model

    load_model(probe)  # the rows the loader's probe forward runs
    # flip = sum embeds every image and its mirror: 2 rows per image of each distinct set, plus the probe
    assert net.rows_seen == 2 * sum(sizes.values()) + probe.rows_seen
    assert sum(len(p.images) for _m, _p, p in run.preflight.ok) > sum(sizes.values())  # a set was shared


def _no_nan(name: str):
    raise AssertionError(f"{name} in a JSON file")


def test_a_shared_extraction_still_gives_each_member_its_own_provenance(root, tmp_path):
    run = run_suite(TinyNet(), MIXED, root, out=tmp_path, **FAST)
    record = json.loads(run.record_path.read_text(), parse_constant=_no_nan)  # strict JSON: NaN is null
    assert record["preflight"]["image_sets"][0] == ["ijbc", "ijbc_1n"]
    assert record["members"]["ijbc"]["extraction"] == record["members"]["ijbc_1n"]["extraction"] == 0
    assert record["members"]["ijbc"]["headline"]["tar@far=1e-4"] is None  # 135 impostor pairs cannot resolve it
    assert np.isnan(run.evaluations["ijbc"].result.metrics["tar@far=1e-4"])
    one, n = run.evaluations["ijbc"], run.evaluations["ijbc_1n"]
    assert one.embeddings is n.embeddings
    assert one.record.protocol["name"] == "ijbc" and n.record.protocol["name"] == "ijbc_1n"
    assert one.record.protocol["data"]["combined"] != n.record.protocol["data"]["combined"]  # other meta files


def test_preflight_problems_stop_the_run_before_any_extraction(root, tmp_path, count_extractions):
    (tmp_path / "agedb_30.bin").write_bytes((root / "agedb_30.bin").read_bytes())  # wrong size for the real count
    suite = _suite(Member("lfw", ("lfw.bin",)), Member("agedb_30", ("agedb_30.bin",)),
                   Member("cfp_fp", ("cfp_fp.bin",), SMALL_PACK))
    with pytest.raises(SuiteError) as err:
        run_suite(TinyNet(), suite, tmp_path, **FAST)
    text = str(err.value)
    assert "agedb_30.bin: 60 pairs, expected 6000" in text  # the wrong size, naming the file
    assert "lfw" in text and "cfp_fp" in text and "missing" in text  # and both missing members, at once
    assert count_extractions == []


def test_allow_missing_runs_the_rest_and_records_what_was_skipped(root, tmp_path, count_extractions):
    suite = _suite(Member("lfw", ("lfw.bin",), SMALL_PACK), Member("calfw", ("calfw.bin", "calfw")),
                   Member("cfp_fp", ("cfp_fp.bin",), SMALL_PACK), name="partial")
    with pytest.raises(SuiteError, match="calfw"):
        run_suite(TinyNet(), suite, root, **FAST)
    assert count_extractions == []
    run = run_suite(TinyNet(), suite, root, out=tmp_path, allow_missing=True, **FAST)
    assert list(run.evaluations) == ["lfw", "cfp_fp"] and list(run.skipped) == ["calfw"]
    assert "calfw.bin" in run.skipped["calfw"]
    record = json.loads(run.record_path.read_text())
    assert run.record_path == tmp_path / "TinyNet" / "suite-partial.json"
    assert record["skipped"] == run.skipped and list(record["members"]) == ["lfw", "cfp_fp"]
    for protocol, member in record["members"].items():
        stored = json.loads(open(member["result_file"]).read())
        assert stored["protocol"]["name"] == protocol
        assert member["headline"]["accuracy"] == stored["result"]["metrics"]["accuracy"]
    assert [e["protocols"] for e in record["extractions"]] == [["lfw"], ["cfp_fp"]]
    assert record["preflight"]["n_images"] == 240 and "skipped" in record["preflight"]["report"]


def test_protocol_options_are_refused_for_a_suite(root):
    with pytest.raises(ValueError, match="suite file"):
        run_suite(TinyNet(), PACKS, root, protocol_options={"aligned": True}, **FAST)


def test_a_checked_preflight_is_reused_not_run_again(root, monkeypatch):
    from fr_bench.suites import preflight as preflight_module

    checked = preflight_module.preflight(PACKS, root)
    calls = []
    monkeypatch.setattr(preflight_module, "preflight", lambda *a, **k: calls.append(1))
    run = run_suite(TinyNet(), PACKS, root, checked=checked, **FAST)
    assert calls == [] and run.preflight is checked and list(run.evaluations) == PACKS.protocols
    assert run.evaluations["lfw"].protocol is checked.ok[0][2]  # the protocol the preflight loaded
    with pytest.raises(ValueError, match="not of"):
        run_suite(TinyNet(), MIXED, root, checked=checked, **FAST)
