"""Image input that cannot mislead: high bit depths scaled (not clipped), oversized headers refused before decoding,
and image paths that leave the root refused (or, when allowed, fingerprinted so the cache cannot serve stale rows)."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from embed_fixtures import TinyNet
from fr_bench import runner
from fr_bench.protocols import ProtocolError
from fr_bench.protocols.images import (
    MAX_IMAGE_PIXELS,
    FileImageSource,
    decode_image,
    leaves_root,
    read_image_file,
)



def _cv2():
    return pytest.importorskip("cv2")  # OpenCV is an optional extra: it writes the 16-bit files its own way


def _ramp16(seed: int = 0) -> np.ndarray:
    """A 112x112 uint16 image using the whole 16-bit range (so a clip to 255 would be obvious)."""
    rng = np.random.default_rng(seed)
    v = rng.integers(0, 65536, (112, 112), dtype=np.int64)
    v[0, :4] = [0, 255, 65535, 32896]  # edge values: 0, a value a clip keeps, the top, 128 * 257
    return v.astype(np.uint16)


def _expected8(v: np.ndarray) -> np.ndarray:
    """round(v / 257) computed in floating point, independently of the decoder's integer arithmetic."""
    return np.floor(v.astype(np.float64) / 257.0 + 0.5).astype(np.uint8)


# -- bit depth ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("writer", ["pillow", "opencv"])
def test_16bit_grey_png_is_scaled_not_clipped(tmp_path, writer):
    v = _ramp16()
    path = tmp_path / f"{writer}.png"
    if writer == "pillow":
        Image.fromarray(v).save(path)
    else:
        assert _cv2().imwrite(str(path), v)
    with Image.open(path) as im:
        assert im.mode.startswith("I")  # really a 16-bit file
    img = read_image_file(path)
    assert img.dtype == np.uint8 and img.shape == (112, 112, 3)
    want = _expected8(v)
    for c in range(3):
        np.testing.assert_array_equal(img[..., c], want)
    assert abs(float(img.mean()) - float(v.mean()) / 257) < 0.5  # a clip would put the mean near 255


def test_16bit_rgb_png_keeps_its_levels(tmp_path):
    v = np.stack([_ramp16(1), _ramp16(2), _ramp16(3)], axis=-1)
    path = tmp_path / "rgb16.png"
    assert _cv2().imwrite(str(path), v[..., ::-1])  # OpenCV writes BGR
    img = read_image_file(path)
    diff = img.astype(np.int64) - _expected8(v).astype(np.int64)
    assert np.abs(diff).max() <= 1  # Pillow keeps the high byte: floor(v / 256), within one level of v / 257


def test_16bit_pgm_and_bytes_are_scaled(tmp_path):
    v = _ramp16(4)
    path = tmp_path / "grey.pgm"
    assert _cv2().imwrite(str(path), v)
    np.testing.assert_array_equal(read_image_file(path)[..., 0], _expected8(v))
    buf = io.BytesIO()
    Image.fromarray(v).save(buf, format="PNG")
    np.testing.assert_array_equal(decode_image(buf.getvalue(), "pack.bin#3")[..., 1], _expected8(v))


def test_float_and_32bit_images_are_refused_clearly(tmp_path):
    path = tmp_path / "float.tif"
    Image.fromarray(np.full((112, 112), 0.5, np.float32)).save(path)
    with pytest.raises(ProtocolError, match=r"float.tif: floating-point image.*mode F.*no defined 8-bit scale"):
        read_image_file(path)
    path = tmp_path / "int32.tif"
    Image.fromarray(np.full((112, 112), 70000, np.int32)).save(path)
    with pytest.raises(ProtocolError, match=r"int32.tif: 32-bit integer image"):
        read_image_file(path)


# -- decompression bombs ------------------------------------------------------------------------------------------
def _png_claiming(width: int, height: int) -> bytes:
    """A tiny valid PNG (1x1 grey) whose header is rewritten to claim ``width`` x ``height``."""
    buf = io.BytesIO()
    Image.new("L", (1, 1)).save(buf, format="PNG")
    data = bytearray(buf.getvalue())
    assert data[12:16] == b"IHDR"
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])) & 0xFFFFFFFF)
    return bytes(data)


def test_an_oversized_header_is_refused_before_decoding(tmp_path, monkeypatch):
    side = int((MAX_IMAGE_PIXELS * 1.3) ** 0.5)  # above our bound, below Pillow's own bomb limits
    assert side * side < Image.MAX_IMAGE_PIXELS
    data = _png_claiming(side, side)
    path = tmp_path / "bomb.png"
    path.write_bytes(data)

    def no_decoding(*args, **kwargs):
        raise AssertionError("pixels were decoded")

    monkeypatch.setattr(Image.Image, "load", no_decoding)
    monkeypatch.setattr(Image.Image, "convert", no_decoding)
    with pytest.raises(ProtocolError, match=rf"bomb.png: the image header says {side}x{side} .*refused before"):
        read_image_file(path)
    with pytest.raises(ProtocolError, match=r"lfw.bin#7: the image header says"):
        decode_image(data, "lfw.bin#7")


# -- paths that leave the root -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("rel", "outside"),
    [("a/b.jpg", False), ("a/../b.jpg", False), ("../x/b.jpg", True), ("a/../../b.jpg", True), ("/abs/b.jpg", True),
     ("C:/data/b.jpg", True), ("..\\x\\b.jpg", True), ("..b/c.jpg", False)],
)
def test_leaves_root(rel, outside):
    assert leaves_root(rel) is outside


def test_image_source_refuses_paths_leaving_the_root(tmp_path):
    with pytest.raises(ProtocolError, match=r"'\.\./other/x\.png' leaves the root.*allow_outside_root=true"):
        FileImageSource(tmp_path, ["a/x.png", "../other/x.png"])
    assert FileImageSource(tmp_path, ["a/x.png", "../other/x.png"], allow_outside_root=True).outside == [
        "../other/x.png"]


def _face(seed: int) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (112, 112, 3), dtype=np.uint8))


@pytest.fixture()
def tree_with_outside_image(tmp_path):
    root = tmp_path / "root"
    for i, ident in enumerate(("p1", "p2")):
        (root / ident).mkdir(parents=True)
        for k in range(2):
            _face(10 * i + k).save(root / ident / f"{k}.png")
    (tmp_path / "elsewhere").mkdir()
    _face(7).save(tmp_path / "elsewhere" / "x.png")
    (root / "pairs.txt").write_text("p1/0.png p1/1.png 1\np2/0.png ../elsewhere/x.png 1\np1/0.png p2/1.png 0\n")
    return root


def test_pair_list_leaving_the_root_is_refused_naming_file_and_line(tree_with_outside_image, tmp_path):
    with pytest.raises(ProtocolError, match=r"pairs.txt:2: image path '\.\./elsewhere/x\.png' leaves the root"):
        runner.prepare(TinyNet(), "folder", tree_with_outside_image, protocol_options={"pairs": "pairs.txt"},
                       num_workers=0, progress=False, cache_dir=tmp_path / "cache")


def test_allowed_outside_image_is_fingerprinted_so_a_replacement_is_not_served(tree_with_outside_image, tmp_path):
    kw = dict(protocol_options={"pairs": "pairs.txt", "allow_outside_root": True}, num_workers=0, progress=False,
              cache_dir=tmp_path / "cache", flip=False)
    root = tree_with_outside_image
    first = runner.prepare(TinyNet(), "folder", root, **kw)
    assert not first.embeddings.from_cache
    assert runner.prepare(TinyNet(), "folder", root, **kw).embeddings.from_cache
    row = first.protocol.images.relpaths.index("../elsewhere/x.png")
    _face(8).save(tmp_path / "elsewhere" / "x.png")  # replaced outside the root: the tree fingerprint cannot see it
    second = runner.prepare(TinyNet(), "folder", root, **kw)
    assert not second.embeddings.from_cache
    assert not np.allclose(second.embeddings.features[row], first.embeddings.features[row])
