"""``frbench evaluate -p a,b,c`` / ``-p suite:NAME`` end to end with a tiny torch model: the preflight report, the
combined table, one result file per protocol plus the suite record, the extraction count with --no-cache, preflight
errors, --allow-missing, --json and --quality."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from suite_fixtures import write_suite_root

from fr_bench import extract as fr_extract
from fr_bench.cli import main

MODEL = "embed_fixtures:TinyNet"  # tests/ is on sys.path: a 'module:function' spec returning an nn.Module
pytestmark = [pytest.mark.filterwarnings("ignore:TPIR at FPIR"), pytest.mark.usefixtures("one_torch_thread")]

SUITE_TOML = """display_name = "Small"
description = "fixture packs of 60 pairs"
{members}
"""
MEMBER = """
[[members]]
protocol = "{protocol}"
candidates = ["{candidate}"]
options = {{{options}}}
"""


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    base = tmp_path_factory.mktemp("cli_suite_root")
    write_suite_root(base)
    return base


def _suite_file(folder, members: list[tuple[str, str, str]], name: str = "small") -> str:
    text = SUITE_TOML.format(members="".join(MEMBER.format(protocol=p, candidate=c, options=o) for p, c, o in members))
    path = folder / f"{name}.toml"
    path.write_text(text)
    return f"suite:{path}"


PACKS = [("lfw", "lfw.bin", "expected_pairs = 60"), ("cfp_fp", "cfp_fp.bin", "expected_pairs = 60"),
         ("agedb_30", "agedb_30.bin", "expected_pairs = 60")]
IJB = [("ijbc", "IJBC", "check_counts = false"), ("ijbc_1n", "IJBC", "check_counts = false")]


def _evaluate(*args: str):
    return CliRunner().invoke(main, ["evaluate", "-m", MODEL, "--name", "TinyNet", "--no-cache", "-q", "--workers", "0",
                                     *args])


def test_suite_prints_the_preflight_and_one_combined_table(root, tmp_path):
    out = tmp_path / "out"
    res = _evaluate("-p", _suite_file(tmp_path, PACKS), "-r", str(root), "--out", str(out))
    assert res.exit_code == 0, res.output
    text = res.output
    assert "3 of 3 members ready" in text and "Images to embed: 360 in 3 distinct image sets" in text
    assert text.index("Images to embed") < text.index("| LFW")  # the preflight comes before the table
    header = next(line for line in text.splitlines() if "| LFW" in line)
    assert "CFP-FP" in header and "AgeDB-30" in header
    row = next(line for line in text.splitlines() if line.startswith("TinyNet"))
    cells = [c.strip() for c in row.split("|")[1:]]
    for protocol, cell in zip(("lfw", "cfp_fp", "agedb_30"), cells):
        stored = json.loads((out / "TinyNet" / f"{protocol}.json").read_text())
        assert cell == f"{100 * stored['result']['metrics']['accuracy']:.2f}"
    record = json.loads((out / "TinyNet" / "suite-small.json").read_text())
    assert list(record["members"]) == ["lfw", "cfp_fp", "agedb_30"] and record["skipped"] == {}
    assert f"suite record: {out / 'TinyNet' / 'suite-small.json'}" in text


def test_suite_numbers_equal_the_one_protocol_command(root, tmp_path):
    res = _evaluate("-p", _suite_file(tmp_path, PACKS[:1] + IJB), "-r", str(root), "--out", str(tmp_path / "s"),
                    "--json")
    assert res.exit_code == 0, res.output
    record = json.loads(res.output[res.output.index("{"):])
    for protocol, where, option in PACKS[:1] + IJB:
        one = _evaluate("-p", protocol, "-r", str(root / where), "-o", option.replace(" ", ""),
                        "--out", str(tmp_path / "one"), "--json")
        assert one.exit_code == 0, one.output
        alone = json.loads(one.output[one.output.index("{"):])
        suite_file = json.loads(open(record["members"][protocol]["result_file"]).read())
        assert suite_file["result"]["metrics"] == alone["result"]["metrics"]
        assert suite_file["result"]["operating_points"] == alone["result"]["operating_points"]
        assert suite_file["result"]["conventions"] == alone["result"]["conventions"]
    assert [e["protocols"] for e in record["extractions"]] == [["lfw"], ["ijbc", "ijbc_1n"]]


def test_no_cache_extracts_each_distinct_image_set_once(root, tmp_path, monkeypatch):
    calls: list[int] = []
    real = fr_extract.extract
    monkeypatch.setattr(fr_extract, "extract", lambda images, model, **kw: calls.append(len(images)) or real(
        images, model, **kw))
    res = _evaluate("-p", _suite_file(tmp_path, IJB + PACKS[1:2]), "-r", str(root), "--out", str(tmp_path))
    assert res.exit_code == 0, res.output
    assert len(calls) == 2 and calls[1] == 120  # IJB-C 1:1 and 1:N: one extraction; CFP-FP: one
    assert "ijbc and ijbc_1n share one" in res.output


def test_preflight_errors_stop_before_extraction_and_name_every_file(root, tmp_path, monkeypatch):
    calls: list[int] = []
    monkeypatch.setattr(fr_extract, "extract", lambda *a, **k: calls.append(1))
    res = _evaluate("-p", "lfw,cfp_fp,calfw", "-r", str(root), "--out", str(tmp_path / "o"))
    assert res.exit_code == 1
    assert str(root / "lfw.bin") in res.output and "60 pairs, expected 6000" in res.output
    assert str(root / "cfp_fp.bin") in res.output and "calfw" in res.output
    assert "nothing was embedded" in res.output and "--allow-missing" in res.output
    assert calls == [] and not (tmp_path / "o").exists()


def test_an_unwritable_out_is_one_of_the_preflight_problems_not_a_first_error(root, tmp_path, monkeypatch):
    calls: list[int] = []
    monkeypatch.setattr(fr_extract, "extract", lambda *a, **k: calls.append(1))
    (tmp_path / "taken").write_text("a file, not a folder")
    res = _evaluate("-p", "lfw,calfw", "-r", str(root), "--out", str(tmp_path / "taken"))
    assert res.exit_code == 1 and calls == []
    # every problem in one report: the wrong-size pack, the missing member and the output folder
    assert "60 pairs, expected 6000" in res.output and "calfw: missing" in res.output
    assert f"--out {tmp_path / 'taken'}: is a file" in res.output and "nothing was embedded" in res.output


def test_allow_missing_runs_the_rest_and_says_what_was_skipped(root, tmp_path):
    suite = _suite_file(tmp_path, PACKS[:1] + [("calfw", "calfw.bin", "expected_pairs = 60")], name="withcalfw")
    res = _evaluate("-p", suite, "-r", str(root), "--out", str(tmp_path))
    assert res.exit_code == 1 and "calfw" in res.output
    res = _evaluate("-p", suite, "-r", str(root), "--out", str(tmp_path), "--allow-missing")
    assert res.exit_code == 0, res.output
    assert "skipped calfw:" in res.output and "skipped" in next(
        line for line in res.output.splitlines() if line.startswith("TinyNet"))
    record = json.loads((tmp_path / "TinyNet" / "suite-withcalfw.json").read_text())
    assert list(record["skipped"]) == ["calfw"] and list(record["members"]) == ["lfw"]


def test_quality_is_forwarded_to_every_member(root, tmp_path):
    res = _evaluate("-p", _suite_file(tmp_path, PACKS[:2]), "-r", str(root), "--out", str(tmp_path),
                    "--quality", "norm", "--quality-pair", "mean")
    assert res.exit_code == 0, res.output
    for protocol in ("lfw", "cfp_fp"):
        stored = json.loads((tmp_path / "TinyNet" / f"{protocol}.json").read_text())
        assert any(k.startswith("edc_") for k in stored["result"]["metrics"]), stored["result"]["metrics"].keys()


def test_help_shows_the_suite_examples():
    res = CliRunner().invoke(main, ["evaluate", "--help"])
    assert res.exit_code == 0
    assert "-p suite:quick" in res.output and "--allow-missing" in res.output and "--quality-pair" in res.output
    assert "ISO/IEC 29794-1" in res.output  # --quality's help comes from fr_bench.protocols.quality


def test_combined_table_groups_columns_by_protocol_with_the_published_conventions():
    from fr_bench.report.suite_table import suite_table
    from fr_bench.results import ProtocolResult, StoredResult

    def stored(protocol, display, metrics, intervals=None, flags=()):
        res = ProtocolResult(protocol=protocol, metrics=metrics, conventions={"tar": "nearest"},
                             intervals=intervals or {}, flags=list(flags))
        return StoredResult(model={"name": "m1"}, protocol={"name": protocol, "display_name": display}, result=res,
                            extraction={"images": 10, "from_cache": False})

    records = {
        "lfw": stored("lfw", "LFW", {"accuracy": 0.9983, "tar@far=1e-3": 0.5},
                      {"accuracy": {"low": 0.9971, "high": 0.999, "level": 0.95, "unit": "pair"}}),
        "ijbc": stored("ijbc", "IJB-C 1:1 template verification",
                       {"tar@far=1e-6": 0.9, "tar@far=1e-5": 0.95, "tar@far=0.0001": 0.9712}, flags=["beware"]),
    }
    text = suite_table(records, {"cplfw": "cplfw: missing"}, order=["lfw", "cplfw", "ijbc"], title="t")
    lines = text.splitlines()
    groups, labels, row = (line.split(" | ") for line in lines[1:4])
    assert [g.strip() for g in groups[1:]] == ["LFW", "cplfw", "IJB-C 1:1 template verification"]
    assert labels[1].strip() == "accuracy" and labels[3].split() == ["TAR@1e-6", "TAR@1e-5", "TAR@1e-4"]
    assert row[0].strip() == "m1" and row[1].strip() == "99.83 [99.71, 99.90]"  # percent, interval in brackets
    assert row[2].strip() == "skipped"
    assert row[3].split() == ["90.00", "95.00", "97.12"]  # tar@far=0.0001 is the 1e-4 column, published order
    assert "    ! beware" in lines and "  skipped cplfw: cplfw: missing" in lines
    assert any(line.startswith("  ijbc: tar = nearest") for line in lines)


def test_every_member_skipped_is_an_error_not_an_empty_table(tmp_path):
    res = _evaluate("-p", "lfw,calfw", "-r", str(tmp_path), "--out", str(tmp_path / "o"), "--allow-missing")
    assert res.exit_code == 1
    assert "no member to evaluate" in res.output and "skipped: lfw, calfw" in res.output


def test_suite_flags_are_refused_for_one_protocol(tmp_path):
    res = _evaluate("-p", "demo", "--out", str(tmp_path), "--allow-missing")
    assert res.exit_code == 2 and "--allow-missing applies to suites" in res.output
