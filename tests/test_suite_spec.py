"""Suite declarations: the shipped TOMLs, parsing errors naming file and key, ad-hoc suites from ``-p a,b,c``."""

from __future__ import annotations

import pytest

from fr_bench.protocols import list_protocols
from fr_bench.suites import (Member, Suite, SuiteError, list_suites, load_suite, parse_protocols_arg,
                             suite_from_protocols)
from fr_bench.suites.spec import DEFAULT_CANDIDATES, default_candidates, suites_dir

PAIR_SETS = ["lfw", "cfp_fp", "agedb_30", "calfw", "cplfw"]


def test_shipped_suites_and_their_members():
    assert {"quick", "full", "demo"} <= set(list_suites())
    assert load_suite("quick").protocols == PAIR_SETS
    assert load_suite("full").protocols == PAIR_SETS + ["ijbb", "ijbc", "ijbb_1n", "ijbc_1n"]
    demo = load_suite("demo")
    assert demo.protocols == ["demo"] and not demo.members[0].needs_root


@pytest.mark.parametrize("name", ["quick", "full", "demo"])
def test_shipped_suites_are_complete(name):
    suite = load_suite(name)
    assert suite.display_name and suite.description and suite.source.endswith(f"{name}.toml")
    for m in suite.members:
        assert m.protocol in list_protocols() and m.required and dict(m.options) == {}
        # the TOMLs and the ad-hoc defaults agree on where people keep each protocol
        assert m.candidates == DEFAULT_CANDIDATES[m.protocol]


def test_candidates_of_the_usual_names():
    full = {m.protocol: m.candidates for m in load_suite("full").members}
    assert full["lfw"] == ("lfw.bin", "lfw", "LFW")
    assert full["ijbc"] == ("IJBC", "IJB_release/IJBC", "ijbc") == full["ijbc_1n"]
    assert full["ijbb"] == full["ijbb_1n"]
    assert all(c.endswith(".bin") for c in (full[p][0] for p in PAIR_SETS))


def _write(tmp_path, text, name="mine.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_load_suite_from_a_path(tmp_path):
    path = _write(tmp_path, 'display_name = "Mine"\n[[members]]\nprotocol = "lfw"\n'
                            '[[members]]\nprotocol = "cfp_fp"\ncandidates = ["packs/cfp_fp.bin"]\nrequired = false\n'
                            '[members.options]\nexpected_pairs = 10\n')
    suite = load_suite(path)
    assert suite.name == "mine" and suite.display_name == "Mine" and suite.protocols == ["lfw", "cfp_fp"]
    assert suite.members[0].candidates == default_candidates("lfw")  # omitted candidates: the defaults
    assert suite.members[1] == Member("cfp_fp", ("packs/cfp_fp.bin",), {"expected_pairs": 10}, False)
    assert load_suite(str(path)) == suite
    assert parse_protocols_arg(f"suite:{path}") == suite


def test_unknown_suite_lists_the_available_ones():
    with pytest.raises(SuiteError, match="unknown suite 'nope'.*demo, full, quick"):
        load_suite("nope")
    with pytest.raises(SuiteError, match="not found"):
        load_suite("/no/such/suite.toml")


@pytest.mark.parametrize("text, key", [
    ('[[members]]\nprotocol = "lfw"\ncandidates = [', "invalid TOML"),
    ('[[members]]\nprotocol = "lfw"\n[[members]]\nprotocol = "lfx"\n',
     r"members\[1\]\.protocol: unknown protocol 'lfx'"),
    ('[[members]]\nprotocl = "lfw"\n', r"members\[0\]: unknown key\(s\) protocl"),
    ('[[members]]\ncandidates = ["a.bin"]\n', r"members\[0\]: missing the 'protocol' key"),
    ('[[members]]\nprotocol = "lfw"\ncandidates = []\n', r"members\[0\]\.candidates: empty"),
    ('[[members]]\nprotocol = "lfw"\ncandidates = ["/abs/lfw.bin"]\n', r"members\[0\]\.candidates: .* relative"),
    ('[[members]]\nprotocol = "lfw"\ncandidates = ["../lfw.bin"]\n', r"members\[0\]\.candidates: .* relative"),
    ('[[members]]\nprotocol = "lfw"\nrequired = "yes"\n', r"members\[0\]\.required"),
    ('[[members]]\nprotocol = "lfw"\noptions = 3\n', r"members\[0\]\.options"),
    ('[[members]]\nprotocol = "lfw"\n[[members]]\nprotocol = "lfw"\n', r"members\[1\]\.protocol: 'lfw' appears twice"),
    ('display_name = "x"\n', "at least one"),
    ('title = "x"\n[[members]]\nprotocol = "lfw"\n', r"unknown key\(s\) title"),
])
def test_malformed_suite_names_file_and_key(tmp_path, text, key):
    path = _write(tmp_path, text)
    with pytest.raises(SuiteError, match=key) as info:
        load_suite(path)
    assert str(path) in str(info.value)


def test_parse_protocols_arg():
    assert parse_protocols_arg("lfw") is None  # one protocol: the CLI keeps its single path
    suite = parse_protocols_arg("lfw, cfp_fp,agedb_30")
    assert isinstance(suite, Suite) and suite.protocols == ["lfw", "cfp_fp", "agedb_30"]
    assert [m.candidates for m in suite.members] == [default_candidates(p) for p in suite.protocols]
    assert parse_protocols_arg("suite:quick") == load_suite("quick")
    with pytest.raises(SuiteError, match="item 2: unknown protocol 'nope'"):
        parse_protocols_arg("lfw,nope")
    with pytest.raises(SuiteError, match="appears twice"):
        parse_protocols_arg("lfw,lfw")
    with pytest.raises(SuiteError, match="unknown suite"):
        parse_protocols_arg("suite:nope")


def test_default_candidates_of_an_unlisted_protocol_come_from_its_spec():
    assert "kface" not in DEFAULT_CANDIDATES
    assert default_candidates("kface") == ("kface", "KFACE")
    assert suite_from_protocols(["demo", "kface"]).members[1].candidates == ("kface", "KFACE")
    with pytest.raises(SuiteError, match="no protocol"):
        suite_from_protocols([" ", ""])


def test_members_are_hashable_and_suites_live_beside_the_protocol_specs():
    suite = load_suite("full")
    assert len({m for m in suite.members}) == len(suite.members)
    assert suites_dir().parent.joinpath("lfw.toml").is_file()


def test_installed_suites_are_found_inside_the_package(tmp_path, monkeypatch):
    """A wheel carries protocols/suites/ as fr_bench/_data/protocols/suites/ (test_install checks the wheel holds
    every file of protocols/); the lookup finds the suites there like the protocol specs."""
    from fr_bench import _paths

    monkeypatch.delenv("FRBENCH_HOME", raising=False)
    shipped = tmp_path / "_data" / "protocols" / "suites"
    shipped.mkdir(parents=True)
    (shipped / "only_here.toml").write_text('[[members]]\nprotocol = "demo"\ncandidates = []\n')
    monkeypatch.setattr(_paths, "SHIPPED_DIR", tmp_path / "_data")
    assert suites_dir() == shipped and list_suites() == ["only_here"]
