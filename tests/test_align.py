"""fr_bench.align: Umeyama similarity fit, cv2-convention bilinear warp, and the real faces of ../shared."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import shared_path
from PIL import Image

from fr_bench.align import ARCFACE_TEMPLATE, align_face, estimate_similarity, template, warp_affine


def similarity(angle: float, scale: float, tx: float, ty: float) -> np.ndarray:
    c, s = np.cos(angle) * scale, np.sin(angle) * scale
    return np.array([[c, -s, tx], [s, c, ty]])


def apply(m: np.ndarray, pts: np.ndarray) -> np.ndarray:
    return pts @ m[:, :2].T + m[:, 2]


def reference_warp(img: np.ndarray, m: np.ndarray, out_size: tuple[int, int]) -> np.ndarray:
    """Independent cv2.warpAffine(BORDER_CONSTANT=0, INTER_LINEAR) semantics, in float: dst(x, y) = src(M^-1 (x, y)),
    the four neighbours outside the image contribute 0."""
    h, w = img.shape[:2]
    inv = np.linalg.inv(np.vstack([m, [0, 0, 1]]))
    out = np.zeros((out_size[1], out_size[0], img.shape[2]))
    padded = np.zeros((h + 2, w + 2, img.shape[2]))
    padded[1:-1, 1:-1] = img
    for y in range(out_size[1]):
        for x in range(out_size[0]):
            u, v, _ = inv @ np.array([x, y, 1.0])
            x0, y0 = int(np.floor(u)), int(np.floor(v))
            fx, fy = u - x0, v - y0
            acc = np.zeros(img.shape[2])
            for dy, wy in ((0, 1 - fy), (1, fy)):
                for dx, wx in ((0, 1 - fx), (1, fx)):
                    xx, yy = x0 + dx, y0 + dy
                    if 0 <= xx < w and 0 <= yy < h:
                        acc += wx * wy * padded[yy + 1, xx + 1]
            out[y, x] = acc
    return out


def test_template_is_the_arcface_reference():
    assert ARCFACE_TEMPLATE.shape == (5, 2)
    np.testing.assert_array_equal(ARCFACE_TEMPLATE[0], [38.2946, 51.6963])
    np.testing.assert_array_equal(ARCFACE_TEMPLATE[4], [70.7299, 92.2041])
    np.testing.assert_allclose(template(224), ARCFACE_TEMPLATE * 2)


@pytest.mark.parametrize("angle,scale,tx,ty", [(0.3, 1.7, 5.0, -3.0), (-2.5, 0.4, 100.0, 20.0), (0.0, 1.0, 0.0, 0.0)])
def test_known_similarity_is_recovered_exactly(angle, scale, tx, ty):
    rng = np.random.default_rng(1)
    src = rng.uniform(0, 200, size=(5, 2))
    m = similarity(angle, scale, tx, ty)
    np.testing.assert_allclose(estimate_similarity(src, apply(m, src)), m, atol=1e-9)


def test_noisy_fit_matches_linear_least_squares():
    # Independent solution: a similarity is x' = a x - b y + tx, y' = b x + a y + ty, linear in (a, b, tx, ty).
    rng = np.random.default_rng(2)
    src = rng.uniform(0, 150, size=(5, 2))
    dst = apply(similarity(0.2, 0.8, 3, 4), src) + rng.normal(0, 2.0, size=(5, 2))
    rows, rhs = [], []
    for (x, y), (u, v) in zip(src, dst):
        rows += [[x, -y, 1, 0], [y, x, 0, 1]]
        rhs += [u, v]
    a, b, tx, ty = np.linalg.lstsq(np.array(rows), np.array(rhs), rcond=None)[0]
    np.testing.assert_allclose(estimate_similarity(src, dst), [[a, -b, tx], [b, a, ty]], atol=1e-9)


def test_fit_never_reflects():
    src = np.array([[0, 0], [1, 0], [0, 1], [1, 1], [0.5, 0.3]], float)
    mirrored = src * [-1, 1]
    m = estimate_similarity(src, mirrored)
    assert np.linalg.det(m[:, :2]) > 0


def test_bad_points_raise():
    with pytest.raises(ValueError, match="identical"):
        estimate_similarity(np.ones((5, 2)), np.zeros((5, 2)))
    with pytest.raises(ValueError, match="5x2"):
        align_face(np.zeros((50, 50, 3), np.uint8), np.zeros((4, 2)))


def test_warp_matches_reference_bilinear_with_zero_border():
    rng = np.random.default_rng(3)
    img = rng.integers(0, 256, size=(40, 50, 3)).astype(np.uint8)
    m = similarity(0.35, 1.3, -6.0, 4.5)
    got = warp_affine(img, m, (32, 36))
    want = reference_warp(img.astype(float), m, (32, 36))
    assert got.dtype == np.uint8 and got.shape == (36, 32, 3)
    assert np.abs(got.astype(float) - want).max() <= 0.5 + 1e-6  # rounding only
    assert (got == 0).any()  # part of the output falls outside the source: constant 0 border


def test_integer_translation_is_an_exact_shift():
    img = np.random.default_rng(4).integers(0, 256, size=(20, 20, 3)).astype(np.uint8)
    got = warp_affine(img, np.array([[1.0, 0, 3], [0, 1.0, -2]]), (20, 20))
    np.testing.assert_array_equal(got[0:18, 3:20], img[2:20, 0:17])
    assert (got[:, :3] == 0).all() and (got[18:] == 0).all()


def test_align_face_puts_landmarks_on_the_template():
    # A synthetic image with bright dots at known landmark positions, warped by a known similarity.
    m = similarity(-0.4, 2.2, 30.0, 60.0)
    pts = apply(m, ARCFACE_TEMPLATE)
    img = np.zeros((300, 300, 3), np.uint8)
    for x, y in np.rint(pts).astype(int):
        img[y - 2 : y + 3, x - 2 : x + 3] = 255
    out = align_face(img, pts)
    assert out.shape == (112, 112, 3) and out.dtype == np.uint8
    for x, y in ARCFACE_TEMPLATE:
        cy, cx = int(round(y)), int(round(x))
        assert out[cy - 1 : cy + 2, cx - 1 : cx + 2].max() > 200


def _johns_landmarks(shared):
    table = {}
    for line in (shared / "data" / "johns_raw_5pts_score.txt").read_text().splitlines():
        f = line.split()
        table[f[0]] = np.array(f[1:11], float).reshape(5, 2)
    return table


def test_real_faces_match_the_shipped_aligned_crops():
    """johns_raw + YuNet landmarks, aligned here, against johns_aligned112 (made with the same landmarks and
    template, saved as JPEG q95). Name mapping: <Name>_NNNN.jpg is the NNNN-th raw file of <Name> in sorted order,
    verified by each crop being closest to its mapped target (ties only for byte-identical raw duplicates)."""
    shared = shared_path("data", "johns_raw").parent.parent
    landmarks = _johns_landmarks(shared)
    diffs = []
    for person in sorted(p.name for p in (shared / "data" / "johns_raw").iterdir()):
        raws = sorted((shared / "data" / "johns_raw" / person).glob("*.jpg"))
        targets = [
            np.asarray(Image.open(shared / "data" / "johns_aligned112" / person / f"{person}_{i + 1:04d}.jpg"), float)
            for i in range(len(raws))
        ]
        raw_pixels = [np.asarray(Image.open(r).convert("RGB")) for r in raws]
        mine = [align_face(px, landmarks[f"{person}/{r.name}"]).astype(float) for px, r in zip(raw_pixels, raws)]
        d = np.array([[np.abs(a - b).mean() for b in targets] for a in mine])
        for i in range(len(raws)):
            j = int(np.argmin(d[i]))
            assert j == i or np.array_equal(raw_pixels[i], raw_pixels[j]), (person, i, j)
        diffs.extend(np.diag(d))
    diffs = np.array(diffs)
    assert len(diffs) == 55
    assert diffs.mean() < 2.0 and diffs.max() < 3.0, diffs
