"""Finding suite members under a root: exact candidates, two candidates, misnamed packs, missing members, the
one-member root, the demo. Empty placeholder files are enough: discovery never opens them."""

from __future__ import annotations

import pytest

from fr_bench.suites import Member, Suite, discover_all, load_suite
from fr_bench.suites.discover import discover, name_key


def _touch(root, *names):
    for n in names:
        p = root / n
        if n.endswith("/"):
            p.mkdir(parents=True, exist_ok=True)
        else:
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(b"")
    return root


def _by_protocol(found):
    return {f.member.protocol: f for f in found}


def test_all_five_packs_found(tmp_path):
    _touch(tmp_path, "lfw.bin", "cfp_fp.bin", "agedb_30.bin", "calfw.bin", "cplfw.bin", "notes.txt", "models/")
    result = discover_all(load_suite("quick"), tmp_path)
    assert [f.path for f in result.found] == [tmp_path / f"{p}.bin" for p in
                                              ["lfw", "cfp_fp", "agedb_30", "calfw", "cplfw"]]
    assert all(f.problem is None and not f.warnings for f in result.found)
    assert result.warnings == []


def test_folders_and_nested_candidates(tmp_path):
    _touch(tmp_path, "LFW/", "IJB_release/IJBC/meta/", "IJBB/")
    found = _by_protocol(discover(load_suite("full"), tmp_path))
    assert found["lfw"].path == tmp_path / "LFW"
    assert found["ijbc"].path == found["ijbc_1n"].path == tmp_path / "IJB_release" / "IJBC"
    assert found["ijbb"].path == found["ijbb_1n"].path == tmp_path / "IJBB"
    assert found["cfp_fp"].missing and found["cfp_fp"].path is None


def test_two_candidates_name_both(tmp_path):
    _touch(tmp_path, "lfw.bin", "LFW/")
    f = _by_protocol(discover(load_suite("quick"), tmp_path))["lfw"]
    assert f.path is None and not f.missing
    assert str(tmp_path / "lfw.bin") in f.problem and str(tmp_path / "LFW") in f.problem
    assert "2 candidates" in f.problem


def test_letter_case_is_exact(tmp_path):
    _touch(tmp_path, "Lfw/")  # neither lfw nor LFW: reported, with the expected folder name
    f = _by_protocol(discover(load_suite("quick"), tmp_path))["lfw"]
    assert f.missing
    assert f"{tmp_path / 'Lfw'} looks like lfw" in f.problem and f"rename it to {tmp_path / 'lfw'}" in f.problem


def test_missing_member_names_the_candidates_tried(tmp_path):
    _touch(tmp_path, "lfw.bin")
    f = _by_protocol(discover(load_suite("quick"), tmp_path))["calfw"]
    assert f.missing and f.path is None
    assert f.problem == f"calfw: missing under {tmp_path} (tried calfw.bin, calfw, CALFW)"


@pytest.mark.parametrize("name, protocol, expected", [
    ("lfw_112.bin", "lfw", "lfw.bin"),
    ("cfp-fp.bin", "cfp_fp", "cfp_fp.bin"),
    ("AgeDB.bin", "agedb_30", "agedb_30.bin"),
    ("calfw_aligned.bin", "calfw", "calfw.bin"),  # calfw, not lfw
    ("CPLFW.BIN", "cplfw", "cplfw.bin"),
])
def test_misnamed_pack_of_a_missing_member(tmp_path, name, protocol, expected):
    _touch(tmp_path, name)
    found = _by_protocol(discover(load_suite("quick"), tmp_path))
    f = found[protocol]
    assert f.missing and f"{tmp_path / name} looks like {protocol}" in f.problem
    assert f"rename it to {tmp_path / expected}" in f.problem
    others = [g for p, g in found.items() if p != protocol]
    assert all(name not in g.problem for g in others)  # attached to one member only


def test_misnamed_extra_pack_beside_a_found_member_is_a_warning(tmp_path):
    _touch(tmp_path, "lfw.bin", "lfw_old.bin")
    f = _by_protocol(discover(load_suite("quick"), tmp_path))["lfw"]
    assert f.path == tmp_path / "lfw.bin" and f.problem is None
    assert len(f.warnings) == 1 and str(tmp_path / "lfw_old.bin") in f.warnings[0] and "ignored" in f.warnings[0]


def test_stray_packs_that_belong_to_no_member(tmp_path):
    _touch(tmp_path, "lfw.bin", "vgg2_fp.bin", "cfp_ff.bin", "random.bin")
    result = discover_all(Suite("s", "s", "", (Member("lfw", ("lfw.bin",)), Member("cfp_fp", ("cfp_fp.bin",)))),
                          tmp_path)
    text = "\n".join(result.warnings)
    assert f"{tmp_path / 'random.bin'}: a .bin pack that no member of suite s names" in text
    assert f"{tmp_path / 'cfp_ff.bin'}: looks like the protocol cfp_ff" in text  # another protocol, not cfp_fp
    assert "cfp_ff" not in (_by_protocol(result.found)["cfp_fp"].problem or "")
    assert "vgg2_fp.bin" in text


def test_misnamed_ijb_folder_is_suggested_for_both_of_its_members(tmp_path):
    _touch(tmp_path, "IJB-C/")
    found = _by_protocol(discover(load_suite("full"), tmp_path))
    for p in ("ijbc", "ijbc_1n"):
        assert f"{tmp_path / 'IJB-C'} looks like {p}" in found[p].problem
        assert f"rename it to {tmp_path / 'IJBC'}" in found[p].problem
    assert "IJB-C" not in found["ijbb"].problem


def test_one_member_suite_accepts_the_root_itself(tmp_path):
    suite = Suite("one", "one", "", (Member("lfw", ("lfw.bin", "lfw", "LFW")),))
    pack = _touch(tmp_path, "x/my_lfw_copy.bin") / "x" / "my_lfw_copy.bin"
    assert discover(suite, pack)[0].path == pack
    _touch(tmp_path, "IJBC/meta/")
    assert discover(suite, tmp_path / "IJBC")[0].path == tmp_path / "IJBC"
    quick = discover(load_suite("quick"), pack)  # several members: a file is not a suite root
    assert all(f.missing and "is a file" in f.problem for f in quick)


def test_no_root_and_a_root_that_does_not_exist(tmp_path):
    assert all(f.missing and "no suite root" in f.problem for f in discover(load_suite("quick"), None))
    gone = tmp_path / "nowhere"
    assert all(f.missing and str(gone) in f.problem for f in discover(load_suite("quick"), gone))


def test_demo_needs_no_root(tmp_path):
    for root in (None, tmp_path):
        (f,) = discover(load_suite("demo"), root)
        assert f.path is None and f.problem is None


def test_name_key():
    assert name_key("CFP-FP.bin") == "cfpfp" == name_key("cfp_fp")
    assert name_key("IJB_release") == "ijbrelease"
