"""The suite preflight: every problem at once (wrong-size pack, missing member, colour-space conflict, unwritable
output folder), allow_missing, and the estimate of images to embed over distinct image sets."""

from __future__ import annotations

import pytest
import torch
from writers import tiny_face, write_bin
from writers_ijb import write_1n_csv, write_ijb_release

from fr_bench.models import load_model
from fr_bench.models.preprocess import Preprocessing
from fr_bench.protocols.base import Protocol
from fr_bench.suites import Member, Suite, SuiteError, load_suite
from fr_bench.suites.preflight import preflight

N_PAIRS = 10
ANY_SIZE = {"expected_pairs": None}  # tiny packs: the loader's count check off


@pytest.fixture(scope="module")
def images():
    return [tiny_face(i) for i in range(2 * N_PAIRS)]


def _pack(path, images, n_pairs=N_PAIRS):
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_bin(path, images[:2 * n_pairs], [k % 2 == 0 for k in range(n_pairs)])


def _sphereface_shaped_model():
    net = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
    return load_model(net, input_size=[112, 96])  # the model option input_size=112,96 (SphereFace's crops)


def test_every_problem_at_once(tmp_path, images):
    _pack(tmp_path / "lfw.bin", images)                    # the default check wants 6000 pairs: wrong size
    _pack(tmp_path / "agedb_30.bin", images)               # fine, but square crops for a 112x96 model
    out = tmp_path / "taken"
    out.write_text("a file, not a folder")                 # unwritable output folder
    suite = Suite("s", "S", "", (Member("lfw", ("lfw.bin",)), Member("cfp_fp", ("cfp_fp.bin", "CFP")),
                                 Member("agedb_30", ("agedb_30.bin",), ANY_SIZE)))
    pf = preflight(suite, tmp_path, embedder=_sphereface_shaped_model(), out_dir=out)
    assert len(pf.problems) == 5, pf.report()
    size, lfw_conflict, missing, conflict, outp = pf.problems
    assert str(tmp_path / "lfw.bin") in size and f"{N_PAIRS} pairs, expected 6000" in size
    # the pack that does not load is still checked against the model
    assert str(tmp_path / "lfw.bin") in lfw_conflict and "input-size conflict" in lfw_conflict
    assert missing == f"cfp_fp: missing under {tmp_path} (tried cfp_fp.bin, CFP)"
    assert str(tmp_path / "agedb_30.bin") in conflict and "input-size conflict" in conflict
    assert "112x96" in conflict and "112x112" in conflict and "agedb_30.toml" in conflict
    assert str(out) in outp and "is a file" in outp
    assert pf.ok == [] and pf.skipped == [] and not pf.passed
    report = pf.report()
    assert all(p in report for p in pf.problems) and "0 of 3 members ready" in report
    with pytest.raises(SuiteError) as info:
        pf.raise_for_problems()
    assert str(info.value) == report


def test_out_dir_under_a_file(tmp_path):
    (tmp_path / "f").write_text("x")
    pf = preflight(load_suite("demo"), None, out_dir=tmp_path / "f" / "results")
    assert len(pf.problems) == 1 and "cannot write there" in pf.problems[0] and str(tmp_path / "f") in pf.problems[0]


def test_allow_missing_skips_with_the_reason(tmp_path, images):
    _pack(tmp_path / "lfw.bin", images)
    suite = Suite("s", "S", "", (Member("lfw", ("lfw.bin",), ANY_SIZE), Member("calfw", ("calfw.bin",)),
                                 Member("cplfw", ("cplfw.bin",), required=False)))
    strict = preflight(suite, tmp_path)
    assert strict.problems == [f"calfw: missing under {tmp_path} (tried calfw.bin)"]
    assert [(m.protocol, why) for m, why in strict.skipped] == [
        ("cplfw", f"missing under {tmp_path} (tried cplfw.bin) (not required)")]
    pf = preflight(suite, tmp_path, out_dir=tmp_path / "new" / "out", allow_missing=True)
    assert pf.passed, pf.report()
    assert [m.protocol for m, _ in pf.skipped] == ["calfw", "cplfw"]
    assert "tried calfw.bin" in pf.skipped[0][1] and "allow_missing" in pf.skipped[0][1]
    ((member, path, protocol),) = pf.ok
    assert member.protocol == "lfw" and path == tmp_path / "lfw.bin" and isinstance(protocol, Protocol)
    assert len(protocol.images) == 2 * N_PAIRS and pf.n_images == 2 * N_PAIRS
    assert not (tmp_path / "new").exists()  # the writability probe creates nothing
    pf.raise_for_problems()


def test_broken_pack_is_not_missing(tmp_path):
    (tmp_path / "lfw.bin").write_bytes(b"not a pickle")
    pf = preflight(Suite("s", "S", "", (Member("lfw", ("lfw.bin",)),)), tmp_path, allow_missing=True)
    assert pf.skipped == [] and len(pf.problems) == 1 and str(tmp_path / "lfw.bin") in pf.problems[0]


def test_ambiguity_and_misnamed_packs_are_reported(tmp_path, images):
    _pack(tmp_path / "lfw.bin", images)
    (tmp_path / "LFW").mkdir()
    _pack(tmp_path / "cfp-fp.bin", images)
    pf = preflight(load_suite("quick"), tmp_path, allow_missing=True)
    text = "\n".join(pf.problems)
    assert str(tmp_path / "lfw.bin") in text and str(tmp_path / "LFW") in text  # two candidates: a problem
    skipped = dict((m.protocol, why) for m, why in pf.skipped)
    assert f"{tmp_path / 'cfp-fp.bin'} looks like cfp_fp" in skipped["cfp_fp"]


def test_contract_checks(tmp_path, images):
    _pack(tmp_path / "lfw.bin", images)
    suite = Suite("s", "S", "", (Member("lfw", ("lfw.bin",), ANY_SIZE), Member("demo")))
    rgb = preflight(suite, tmp_path, embedder=Preprocessing(channel_order="RGB", source="model card"))
    assert rgb.passed and rgb.warnings == [], rgb.report()
    # a declared BGR contract is served BGR by the extractor: not a conflict
    bgr = preflight(suite, tmp_path, embedder=Preprocessing(channel_order="BGR", source="model card"))
    assert bgr.passed and bgr.warnings == [], bgr.report()
    # another aspect ratio than the square crops would squash the faces: a problem on every member
    narrow = preflight(suite, tmp_path, embedder=Preprocessing(input_size=(112, 96), source="model card"))
    assert len(narrow.problems) == 2 and "lfw" in narrow.problems[0] and "demo (built in)" in narrow.problems[1]
    assert all("input-size conflict" in p for p in narrow.problems)
    small = preflight(suite, tmp_path, embedder={"channel_order": "RGB", "input_size": [96, 96]})
    assert small.passed and sum("resized to the model's 96x96" in w for w in small.warnings) == 2
    assumed = preflight(suite, tmp_path, embedder=Preprocessing(assumed=True, source="guess"))
    assert assumed.passed and any("assumed (guess)" in w for w in assumed.warnings)


def _ijb_release(root):
    """4 subjects x 2 templates, 1-2 images per template; the 1:N CSVs of the same images."""
    templates, medias, subjects = [], [], {}
    for s in range(4):
        for k in range(2):
            t = 10 * s + k + 1
            subjects[t] = s
            for j in range(1 + (s + k) % 2):
                templates.append(t)
                medias.append(100 * t + j)
    ts = sorted(subjects)
    pairs = [(a, b, int(subjects[a] == subjects[b])) for i, a in enumerate(ts) for b in ts[i + 1:]]
    fx = write_ijb_release(root, "ijbc", templates, medias, pairs)
    rows = {"G1": [], "G2": [], "probe": []}
    for i, t in enumerate(templates):
        s = subjects[t]
        rows[("G1" if s < 2 else "G2") if t % 10 == 1 else "probe"].append((t, s, f"img/{i}.jpg"))
    for name, part in (("G1", "gallery_G1"), ("G2", "gallery_G2"), ("probe", "probe_mixed")):
        write_1n_csv(root / "meta" / f"ijbc_1N_{part}.csv", rows[name])
    return len(fx.templates)


def test_image_estimate_counts_each_distinct_image_set_once(tmp_path, images):
    _pack(tmp_path / "lfw.bin", images)
    _pack(tmp_path / "agedb_30.bin", images, n_pairs=6)
    n_ijb = _ijb_release(tmp_path / "IJBC")
    no_counts = {"check_counts": False}
    suite = Suite("s", "S", "", (
        Member("lfw", ("lfw.bin",), ANY_SIZE),
        Member("cfp_fp", ("lfw.bin",), ANY_SIZE),       # the very same pack under another protocol: same images
        Member("agedb_30", ("agedb_30.bin",), ANY_SIZE),
        Member("ijbc", ("IJBC",), no_counts),
        Member("ijbc_1n", ("IJBC",), no_counts),         # 1:1 and 1:N of one release embed the same images
        Member("demo"),
    ))
    pf = preflight(suite, tmp_path)
    assert pf.passed, pf.report()
    assert pf.image_sets == [["lfw", "cfp_fp"], ["agedb_30"], ["ijbc", "ijbc_1n"], ["demo"]]
    assert pf.n_images == 2 * N_PAIRS + 2 * 6 + n_ijb + 55
    assert pf.n_images < sum(len(p.images) for _, _, p in pf.ok)
    assert f"Images to embed: {pf.n_images:,} in 4 distinct image sets" in pf.report()


def test_image_set_id_tells_folders_apart_and_its_shortcut_equals_keys(tmp_path):
    import numpy as np

    from fr_bench.protocols.array_images import ArrayImageSource
    from fr_bench.protocols.images import FileImageSource
    from fr_bench.suites.preflight import _keys, image_set_id

    rel = [f"loose_crop/{i}.jpg" for i in range(1, 6)]
    lm = np.zeros((5, 5, 2), np.float32)
    files = FileImageSource(tmp_path / "IJBC", rel, lm, key_prefix="ijbc/")
    assert _keys(files) == [files.ref(i).key for i in range(5)]  # the shortcut is the generic definition

    class _P:
        def __init__(self, images):
            self.images = images

    same = [_P(ArrayImageSource(tmp_path / "IJBC", np.array(rel), lm)) for _ in range(2)]
    other_root = _P(ArrayImageSource(tmp_path / "IJBB", np.array(rel), lm))
    fewer = _P(ArrayImageSource(tmp_path / "IJBC", np.array(rel[:4]), lm[:4]))
    ids = [image_set_id(p) for p in (*same, other_root, fewer)]
    assert ids[0] == ids[1] and len(set(ids)) == 3
