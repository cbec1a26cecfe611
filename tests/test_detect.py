"""fr_bench.detect and `frbench landmarks`: YuNet landmarks for unaligned photos, on the real faces of ../shared."""

from __future__ import annotations

import json
import shutil
import sys

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import REPO, shared_path
from PIL import Image

from fr_bench.align import align_face
from fr_bench.protocols import load_protocol
from fr_bench.protocols.base import ProtocolError
from fr_bench.protocols.images import read_landmarks

cv2 = pytest.importorskip("cv2", reason="OpenCV is the optional 'detect' extra (pip install 'fr-bench[detect]')")

from fr_bench.cli import main  # noqa: E402
from fr_bench.detect import (  # noqa: E402
    YuNet,
    detect_landmarks,
    missing_path_for,
    nearest_to_centre,
    write_landmark_file,
)

MODEL = REPO / "reference_models" / "yunet" / "face_detection_yunet_2023mar.onnx"


@pytest.fixture(scope="module")
def detector():
    if not MODEL.is_file():
        pytest.skip(f"{MODEL} absent from this checkout")
    return YuNet()


@pytest.fixture(scope="module")
def johns(tmp_path_factory, detector):
    """johns_raw, its shipped YuNet landmark file, and our landmark file for it (written once)."""
    raw = shared_path("data", "johns_raw")
    out = tmp_path_factory.mktemp("johns_lm") / "johns_5pts.txt"
    summary = write_landmark_file(raw, out, progress=False, detector=detector)
    return raw, raw.parent / "johns_raw_5pts_score.txt", out, summary


def _rgb(path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def test_landmarks_match_the_shipped_yunet_file(johns, detector):
    """Same detector and recipe: agreement to the shipped file's printed rounding (0.01 px, 1e-4 in score).

    Measured: max |difference| 0.0050 px and 5e-5 in score over the 55 images (OpenCV 4.14 and 5.0 alike). The
    tolerances leave 10x that for other OpenCV builds, and still catch any change of recipe: detecting without the
    border, or with another border, moves landmarks by 2 to 11 px on these tight 150x150 chips.
    """
    raw, shipped, _out, _ = johns
    ref = read_landmarks(shipped)
    assert len(ref) == 55
    worst_px, worst_score = 0.0, 0.0
    for rel, row in ref.index.items():
        found = detect_landmarks(_rgb(raw / rel), detector)
        assert found is not None, rel
        points, score = found
        assert points.shape == (5, 2)
        worst_px = max(worst_px, float(np.abs(points - ref.points[row]).max()))
        worst_score = max(worst_score, abs(score - float(ref.scores[row])))
    assert worst_px < 0.05, worst_px
    assert worst_score < 1e-3, worst_score


def test_written_file_round_trips_and_aligns_like_the_shipped_crops(johns):
    raw, shipped, out, summary = johns
    assert summary.n_images == summary.n_found == 55 and summary.missing == []
    mine, ref = read_landmarks(out), read_landmarks(shipped)
    assert set(mine.index) == set(ref.index)
    for rel, row in mine.index.items():
        np.testing.assert_allclose(mine.points[row], ref.points[ref.index[rel]], atol=0.011)  # both printed to 0.01
    lines = out.read_text().splitlines()
    assert lines == sorted(lines) and all(len(line.split()) == 12 for line in lines)
    assert missing_path_for(out).read_text().startswith("#")  # written, empty but for its header

    # The folder protocol aligns the raw photos with our file; crops match johns_aligned112 (JPEG q95 of the
    # same warp). <Name>_NNNN.jpg is the NNNN-th raw file of <Name> in sorted order (see test_align.py).
    aligned = shared_path("data", "johns_aligned112")
    proto = load_protocol("folder", raw, landmarks=str(out))
    assert len(proto.images) == 55
    diffs = []
    for i, rel in enumerate(proto.images.relpaths):
        person, name = rel.split("/")
        nth = sorted(p.name for p in (raw / person).glob("*.jpg")).index(name) + 1
        target = _rgb(aligned / person / f"{person}_{nth:04d}.jpg").astype(float)
        crop = proto.images.load(i)
        np.testing.assert_array_equal(crop, align_face(_rgb(raw / rel), mine.points[mine.index[rel]]))
        diffs.append(np.abs(crop.astype(float) - target).mean())
    assert max(diffs) < 3.0 and np.mean(diffs) < 2.0, diffs


def test_cli_two_steps_end_to_end(tmp_path, detector):
    raw = shared_path("data", "johns_raw")
    people = sorted(p.name for p in raw.iterdir() if p.is_dir())[:3]
    copy = tmp_path / "photos"
    for person in people:
        shutil.copytree(raw / person, copy / person)
    lm = tmp_path / "photos_5pts.txt"
    runner = CliRunner()
    res = runner.invoke(main, ["landmarks", str(copy), "-o", str(lm), "-q"])
    assert res.exit_code == 0, res.output
    n = sum(1 for _ in copy.glob("*/*.jpg"))
    assert f"{n} of {n} images" in res.output and len(read_landmarks(lm)) == n
    res = runner.invoke(main, ["evaluate", "-m", "sface", "-p", "folder", "-r", str(copy), "-o", f"landmarks={lm}",
                               "--out", str(tmp_path / "results"), "--no-cache", "--json", "-q"])
    assert res.exit_code == 0, res.output
    record = json.loads(res.output[res.output.index("{"):])
    # SFace separates these people perfectly on the shipped aligned crops (shared/README.md: min genuine 0.55 >
    # max impostor 0.35), and our crops are those crops up to JPEG noise.
    assert record["result"]["metrics"]["auc"] == 1.0
    assert record["extraction"]["images"] == n


def test_cli_help_teaches_the_two_steps():
    res = CliRunner().invoke(main, ["landmarks", "--help"])
    assert res.exit_code == 0
    assert "frbench landmarks /data/lfw -o lfw_5pts.txt" in res.output
    assert "frbench evaluate -m sface -p lfw -r /data/lfw -o landmarks=lfw_5pts.txt" in res.output
    assert "landmarks" in CliRunner().invoke(main, ["--help"]).output


def test_image_without_a_face_is_reported_never_dropped(tmp_path, detector):
    raw = shared_path("data", "johns_raw")
    person = sorted(p.name for p in raw.iterdir() if p.is_dir())[0]
    tree = tmp_path / "tree"
    shutil.copytree(raw / person, tree / person)
    Image.fromarray(np.full((150, 150, 3), 128, np.uint8)).save(tree / person / "zz_grey.jpg", quality=95)
    out = tmp_path / "lm.txt"
    summary = write_landmark_file(tree, out, progress=False, detector=detector)
    grey = f"{person}/zz_grey.jpg"
    assert summary.n_images == 12 and summary.n_found == 11
    assert [rel for rel, _why in summary.missing] == [grey]
    assert grey not in read_landmarks(out).index
    listed = [line.split("\t")[0] for line in missing_path_for(out).read_text().splitlines()
              if not line.startswith("#")]
    assert listed == [grey]
    assert "1 images without landmarks" in summary.describe()
    # Downstream, the loader stops on the image without landmarks and names it.
    with pytest.raises(ProtocolError, match="zz_grey.jpg"):
        load_protocol("folder", tree, landmarks=str(out))
    # With allow_missing the faceless image is left out before pairs are generated, and the result says so.
    proto = load_protocol("folder", tree, landmarks=str(out), allow_missing=True)
    assert len(proto.images) == 11 and grey not in proto.images.keys()
    assert any("1 images without landmarks" in flag for flag in proto.load_flags)


def test_portraits_faces_found_and_same_person_closer(detector):
    """The four unaligned portraits (1-2 Mpx): a face in each; aligned with our landmarks, SFace puts the three
    Obama photos closer to each other than to Biden (measured: 0.73..0.78 vs at most 0.27)."""
    from fr_bench.models import load_model

    folder = shared_path("data", "portraits_raw")
    names = ["biden.jpg", "obama.jpg", "obama2.jpg", "obama3.jpg"]
    crops = []
    for name in names:
        img = _rgb(folder / name)
        found = detect_landmarks(img, detector)
        assert found is not None, name
        points, score = found
        assert score >= 0.6
        h, w = img.shape[:2]
        assert ((points >= 0) & (points < [w, h])).all(), name
        assert points[0, 0] < points[1, 0] and points[3, 0] < points[4, 0]  # right eye/mouth on the image left
        assert points[:2, 1].max() < points[2, 1] < points[3:, 1].min()  # eyes above the nose above the mouth
        crops.append(align_face(img, points))
    emb = load_model("sface").embed(np.stack(crops)).numpy()
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    sim = emb @ emb.T
    obama = [1, 2, 3]
    genuine = [sim[i, j] for i in obama for j in obama if i < j]
    impostor = [sim[0, j] for j in obama]
    assert min(genuine) > max(impostor) + 0.2, sim


def test_face_nearest_the_centre_is_kept(detector):
    """Two real faces side by side: the centred one is kept, whatever the other's size or score."""
    raw = shared_path("data", "johns_raw")
    files = sorted(raw.glob("*/*.jpg"))
    centre_face, side_face = _rgb(files[0]), _rgb(files[20])
    canvas = np.full((300, 700, 3), 90, np.uint8)
    canvas[75:225, 275:425] = centre_face
    canvas[0:300, 0:300] = np.asarray(Image.fromarray(side_face).resize((300, 300)))  # larger, off-centre
    faces = detector.detect(canvas)
    assert len(faces) == 2
    points, score = detect_landmarks(canvas, detector)
    assert (points[:, 0] > 275).all() and (points[:, 0] < 425).all()  # inside the centred chip
    assert (points[:, 1] > 75).all() and (points[:, 1] < 225).all()
    kept = [k for k in range(2) if np.array_equal(faces[k, 4:14].reshape(5, 2), points)]
    assert len(kept) == 1 and faces[kept[0], 14] == score
    other = faces[1 - kept[0]]
    assert other[2] * other[3] > faces[kept[0], 2] * faces[kept[0], 3]  # the bystander is the larger face


def test_nearest_to_centre_rule():
    # rows: x, y, w, h, 10 landmark values, score; image 100x100, centre (49.5, 49.5)
    faces = np.zeros((3, 15))
    faces[:, :4] = [[0, 0, 40, 40], [30, 30, 40, 40], [29, 29, 42, 42]]
    faces[:, 14] = [0.99, 0.7, 0.8]
    assert nearest_to_centre(faces, 100, 100) == 2  # rows 1 and 2 tie at distance 0.5: higher score
    faces[2, 14] = 0.6
    assert nearest_to_centre(faces, 100, 100) == 1
    assert nearest_to_centre(faces[:1], 100, 100) == 0


def test_downscaled_detection_maps_back_to_image_coordinates(detector):
    """A chip upscaled 4x by pixel replication, detected with max_side 1/4 of its padded size: the area-downscaled
    canvas is exactly the original padded chip, so the landmarks must be the original ones mapped through the
    pixel-centre convention x_big = 4 (x + 0.5) - 0.5."""
    img = _rgb(sorted(shared_path("data", "johns_raw").glob("*/*.jpg"))[0])
    small, small_score = detect_landmarks(img, detector)
    big = np.repeat(np.repeat(img, 4, axis=0), 4, axis=1)
    coarse = YuNet(max_side=2 * 150)  # padded 4x canvas is 1200 px long: downscaled by exactly 4
    points, score = detect_landmarks(big, coarse)
    np.testing.assert_allclose(points, 4 * (small + 0.5) - 0.5, atol=1e-3)
    assert abs(score - small_score) < 1e-6


def test_missing_opencv_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "cv2", None)
    with pytest.raises(ImportError, match=r"pip install 'fr-bench\[detect\]'"):
        YuNet()


def test_bad_inputs(tmp_path, detector):
    with pytest.raises(ValueError, match="HxWx3 uint8"):
        detector.detect(np.zeros((10, 10), np.uint8))
    with pytest.raises(FileNotFoundError, match="no files match"):
        write_landmark_file(tmp_path, tmp_path / "x.txt", progress=False, detector=detector)
    with pytest.raises(FileNotFoundError, match="YuNet model file not found"):
        YuNet(tmp_path / "none.onnx")


def test_lfw_layout_from_the_lfw_root_with_a_faceless_image(tmp_path, detector):
    """`frbench landmarks ROOT` on an LFW root (ROOT/lfw/<Name>/<Name>_NNNN.jpg + a pair file): the lfw loader
    finds every image's line (paths relative to ROOT), and stops on -- or, with allow_missing, drops and flags --
    the pairs of the image where no face was found."""
    raw = shared_path("data", "johns_raw")
    people = sorted(p.name for p in raw.iterdir() if p.is_dir())[:2]
    root = tmp_path / "lfw_root"
    for person in people:
        (root / "lfw" / person).mkdir(parents=True)
        for k, src in enumerate(sorted((raw / person).glob("*.jpg"))[:3], start=1):
            shutil.copy(src, root / "lfw" / person / f"{person}_{k:04d}.jpg")
    a, b = people
    Image.fromarray(np.full((250, 250, 3), 128, np.uint8)).save(root / "lfw" / b / f"{b}_0004.jpg")
    (root / "pairsDevTest.txt").write_text(
        f"2\n{a}\t1\t2\n{b}\t1\t4\n{a}\t3\t{b}\t2\n{a}\t2\t{b}\t3\n"
    )
    out = tmp_path / "lfw_5pts.txt"
    summary = write_landmark_file(root, out, progress=False, detector=detector)
    assert [rel for rel, _ in summary.missing] == [f"lfw/{b}/{b}_0004.jpg"]
    options = {"pairs_file": "pairsDevTest.txt", "landmarks": str(out), "expected_pairs": None}
    with pytest.raises(ProtocolError, match=f"{b}_0004.jpg"):
        load_protocol("lfw", root, **options)
    proto = load_protocol("lfw", root, allow_missing=True, **options)
    assert len(proto.pairs) == 3 and any("allow_missing" in flag for flag in proto.load_flags)
    crop = proto.images.load(0)
    assert crop.shape == (112, 112, 3)
