"""The insightface .bin pack reader: layouts, the restricted unpickler, validation, lazy decoding."""

from __future__ import annotations

import io
import pickle
import pickletools

import numpy as np
import pytest
from writers import encode, tiny_face, write_bin

from fr_bench.protocols.base import ProtocolError
from fr_bench.protocols.binpack import read_bin
from fr_bench.protocols.images import BinPackImageSource


def _images(n_pairs: int) -> list[np.ndarray]:
    return [tiny_face(i) for i in range(2 * n_pairs)]


@pytest.mark.parametrize("item_type", ["bytes", "bytearray", "ndarray"])
@pytest.mark.parametrize("label_type", ["bool", "numpy", "array"])
@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_layouts_read_back(tmp_path, item_type, label_type, protocol):
    imgs = _images(3)
    issame = [True, False, True]
    path = write_bin(tmp_path / "x.bin", imgs, issame, "png", protocol, item_type, label_type)
    bins, labels = read_bin(path, expected_pairs=3)
    assert labels.dtype == bool and labels.tolist() == issame
    assert len(bins) == 6
    src = BinPackImageSource(path, 6, bins=bins)
    for i in (0, 5):
        np.testing.assert_array_equal(src.load(i), imgs[i])  # PNG: lossless


def test_jpeg_pack_decodes_close_to_the_original(tmp_path):
    imgs = _images(2)
    path = write_bin(tmp_path / "j.bin", imgs, [True, False], encoding="jpg")
    bins, _ = read_bin(path)
    got = BinPackImageSource(path, 4, bins=bins).load(1)
    assert got.shape == (112, 112, 3) and np.abs(got.astype(int) - imgs[1]).mean() < 3


def test_python2_style_pack(tmp_path):
    """A protocol-2 pickle with the image bytes as Python-2 ``str`` (SHORT_BINSTRING), read with encoding='bytes'."""
    data = encode(tiny_face(1))
    # Hand-assemble: PROTO 2, a tuple ([str, str], [True]) with the byte strings as BINSTRING opcodes.
    def binstring(b: bytes) -> bytes:
        return b"T" + len(b).to_bytes(4, "little") + b

    images = b"]" + b"(" + binstring(data) + binstring(data) + b"e"  # EMPTY_LIST, MARK, items, APPENDS
    labels = b"]" + b"(" + b"\x88" + b"e"  # [True]
    body = b"\x80\x02" + b"(" + images + labels + b"t" + b"."  # PROTO 2, MARK, ..., TUPLE, STOP
    pickletools.dis(body, out=io.StringIO())  # a valid pickle stream
    path = tmp_path / "py2.bin"
    path.write_bytes(body)
    bins, labels = read_bin(path)
    assert labels.tolist() == [True] and bins[0] == data and bins[1] == data


class _Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_restricted_unpickler_refuses_other_globals(tmp_path, capsys):
    path = tmp_path / "evil.bin"
    with open(path, "wb") as f:
        pickle.dump(([_Evil(), b"x"], [True]), f)
    with pytest.raises(ProtocolError, match=r"evil\.bin.*refused.*builtins\.print"):
        read_bin(path)
    assert "pwned" not in capsys.readouterr().out


def test_refuses_os_system(tmp_path):
    path = tmp_path / "os.bin"
    path.write_bytes(b"cos\nsystem\n(S'echo hi'\ntR.")
    with pytest.raises(ProtocolError, match=r"os\.system"):
        read_bin(path)


def test_count_and_layout_errors(tmp_path):
    imgs = _images(3)
    path = write_bin(tmp_path / "a.bin", imgs, [True, False, True])
    with pytest.raises(ProtocolError, match=r"a\.bin: 3 pairs, expected 6000"):
        read_bin(path, expected_pairs=6000)
    bad = write_bin(tmp_path / "b.bin", imgs[:5], [True, False, True])
    with pytest.raises(ProtocolError, match=r"b\.bin: 5 images for 3 labels"):
        read_bin(bad)
    lab = tmp_path / "c.bin"
    with open(lab, "wb") as f:
        pickle.dump(([b"a", b"b"], ["yes"]), f)
    with pytest.raises(ProtocolError, match=r"c\.bin: label 0"):
        read_bin(lab)
    notpair = tmp_path / "d.bin"
    with open(notpair, "wb") as f:
        pickle.dump([b"a"], f)
    with pytest.raises(ProtocolError, match=r"d\.bin: expected a pickled 2-tuple"):
        read_bin(notpair)
    garbage = tmp_path / "e.bin"
    garbage.write_bytes(b"not a pickle at all")
    with pytest.raises(ProtocolError, match=r"e\.bin: not a readable"):
        read_bin(garbage)
    with pytest.raises(ProtocolError, match="not found"):
        read_bin(tmp_path / "missing.bin")


def test_wrong_item_type_and_undecodable_and_wrong_size(tmp_path):
    path = tmp_path / "f.bin"
    with open(path, "wb") as f:
        pickle.dump(([b"a", 3], [True]), f)
    with pytest.raises(ProtocolError, match=r"f\.bin: image 1 is a int"):
        read_bin(path)
    junk = write_bin(tmp_path / "g.bin", [b"junk", b"junk"], [True])
    src = BinPackImageSource(junk, 2)
    with pytest.raises(ProtocolError, match=r"g\.bin#0: cannot decode"):
        src.load(0)
    small = write_bin(tmp_path / "h.bin", [tiny_face(1, 64), tiny_face(2, 64)], [True])
    with pytest.raises(ProtocolError, match=r"h\.bin#1: expected an aligned 112x112.*64x64"):
        BinPackImageSource(small, 2).load(1)


def test_source_is_lazy_and_pickles_without_the_bytes(tmp_path):
    path = write_bin(tmp_path / "l.bin", _images(2), [True, False])
    src = BinPackImageSource(path, 4)
    assert src._bins is None  # nothing read yet
    assert src.ref(3).key == "l.bin#3" and src.ref(3).member == 3
    src.load(0)
    assert src._bins is not None
    clone = pickle.loads(pickle.dumps(src))
    assert clone._bins is None and len(pickle.dumps(src)) < 1000
    np.testing.assert_array_equal(clone.load(2), src.load(2))


# ---------------------------------------------------------------------------------------------------------------
# Crafted packs: every allocation bounded by the file's size
# ---------------------------------------------------------------------------------------------------------------


class _Reduce:
    """Pickles as ``func(*args)`` (the real pickler writes the globals; the restricted unpickler must refuse)."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return (self.func, self.args)


def _np_attr(module_names, attr):
    import importlib

    for name in module_names:
        try:
            return getattr(importlib.import_module(name), attr)
        except (ImportError, AttributeError):
            continue
    raise ImportError(attr)


_RECONSTRUCT = _np_attr(("numpy._core.multiarray", "numpy.core.multiarray"), "_reconstruct")
_SCALAR = _np_attr(("numpy._core.multiarray", "numpy.core.multiarray"), "scalar")
_FROMBUFFER = _np_attr(("numpy._core.numeric", "numpy.core.numeric"), "_frombuffer")
GB = 10**9

#: 33 hand-written bytes: PROTO 2, GLOBAL __builtin__.bytearray, BININT 10**9, TUPLE1, REDUCE, STOP.
BYTEARRAY_OF_A_SIZE = b"\x80\x02c__builtin__\nbytearray\nJ" + GB.to_bytes(4, "little") + b"\x85R."

CRAFTED = {
    "bytearray-int-by-hand": BYTEARRAY_OF_A_SIZE,
    "bytearray-int-p4": pickle.dumps(([_Reduce(bytearray, GB)], [True]), protocol=4),
    "bytearray-of-ints": pickle.dumps(([_Reduce(bytearray, list(range(200)))], [True]), protocol=2),
    "reconstruct-huge-1d": pickle.dumps(([_Reduce(_RECONSTRUCT, np.ndarray, (GB,), b"B")], [True]), protocol=2),
    "reconstruct-huge-2d": pickle.dumps(([_Reduce(_RECONSTRUCT, np.ndarray, (10**5, 10**5), b"b")], [True]), 2),
    "reconstruct-negative": pickle.dumps(([_Reduce(_RECONSTRUCT, np.ndarray, (-1,), b"b")], [True]), protocol=2),
    "frombuffer-huge-shape": pickle.dumps(([_Reduce(_FROMBUFFER, b"x", np.dtype("u1"), (GB,), "C")], [True]), 4),
    "scalar-void-dtype": pickle.dumps(([_Reduce(_SCALAR, np.dtype(("V", 10**6)), b"")], [True]), protocol=4),
    "scalar-object": pickle.dumps(([_Reduce(_SCALAR, np.dtype(object), bytes(8))], [True]), protocol=4),
    "dtype-float": pickle.dumps(([np.zeros(3, dtype=np.float64)], [True]), protocol=4),
    "codecs-other-encoding": pickle.dumps(([_Reduce(__import__("_codecs").encode, "x" * 100, "utf-32")], [True]),
                                          protocol=2),
}


@pytest.mark.parametrize("name", sorted(CRAFTED))
def test_crafted_pack_is_refused_naming_the_file(tmp_path, name):
    path = tmp_path / f"{name}.bin"
    path.write_bytes(CRAFTED[name])
    with pytest.raises(ProtocolError, match=rf"{name}\.bin"):
        read_bin(path)


def test_crafted_packs_allocate_nothing_large(tmp_path):
    """Peak memory of a fresh interpreter reading every crafted pack stays within a few MB of its baseline."""
    import subprocess
    import sys

    for name, data in CRAFTED.items():
        (tmp_path / f"{name}.bin").write_bytes(data)
    code = (
        "import resource, sys, glob\n"
        "from fr_bench.protocols.binpack import read_bin\n"
        "from fr_bench.protocols.base import ProtocolError\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "for path in sorted(glob.glob(sys.argv[1] + '/*.bin')):\n"
        "    try:\n"
        "        read_bin(path)\n"
        "    except ProtocolError:\n"
        "        pass\n"
        "    else:\n"
        "        raise SystemExit(f'{path} was read')\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)\n"
    )
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr + out.stdout
    grown_kib = int(out.stdout.split()[-1])
    assert grown_kib < 50 * 1024, f"peak memory grew by {grown_kib / 1024:.0f} MiB"


def test_real_layouts_still_read_under_the_bounds(tmp_path):
    """A pack of ndarray items and a numpy bool label array, each protocol, reads back at exactly its file size."""
    imgs = _images(2)
    for protocol in (2, 4, 5):
        path = write_bin(tmp_path / f"p{protocol}.bin", imgs, [True, False], "png", protocol, "ndarray", "array")
        bins, labels = read_bin(path)
        assert labels.tolist() == [True, False] and all(b.dtype == np.uint8 and b.ndim == 1 for b in bins)
        assert sum(b.nbytes for b in bins) <= path.stat().st_size
