"""MXNet IndexedRecordIO packs (``train.rec`` + ``train.idx`` [+ ``property``]) read without mxnet.

The format, as dmlc-core's ``recordio`` and MXNet's ``python/mxnet/recordio.py`` define it (all little-endian):

* ``train.rec`` is a sequence of parts, each ``magic (uint32 0xced7230a) | lrec (uint32) | data | zero padding to
  a multiple of 4 bytes``; ``lrec`` holds the data length in its lower 29 bits and a continuation flag in its upper
  3 bits: 0 a whole record, 1 the first part, 2 a middle part, 3 the last part of a record that was split where the
  magic number occurred at a 4-byte-aligned position of its bytes (the magic itself is dropped from the parts and
  put back between them on reading).
* A record's bytes start with an ``IRHeader`` ``struct '<IfQQ'`` = ``(flag, label, id, id2)``; when ``flag > 0``,
  ``flag`` float32 labels follow it (and the header's ``label`` field is 0); the rest is the encoded image.
* ``train.idx`` is text, one ``key<TAB>byte offset`` line per record.
* insightface packs (MS1MV2, MS1MV3, Glint360K, WebFace...) put a header record at key 0 whose labels are
  ``(a, b)``: image records are keys ``1 .. a-1``, identity records ``a .. b-1``; the image label is the record's
  label (its first label when ``flag > 0``). Packs without that header use every key of the index, in its order.
* ``property`` is one text line ``num_classes,height,width``.

Every check names the file and the record key: a bad magic number, an index offset past the end of the ``.rec``,
a record running past the end (a truncated pack), a label that is not a class index.
"""

from __future__ import annotations

import mmap
import struct
from pathlib import Path
from typing import Any

import numpy as np

from fr_bench.train.data import DataError, TrainDataset, decode_image

#: The magic number opening every part of a record.
MAGIC = 0xCED7230A
_MAGIC_BYTES = struct.pack("<I", MAGIC)
#: ``lrec``: length in the lower 29 bits, continuation flag in the upper 3.
_LENGTH_BITS = 29
_LENGTH_MASK = (1 << _LENGTH_BITS) - 1
#: ``IRHeader`` layout: flag (uint32), label (float32), id (uint64), id2 (uint64).
IR_FORMAT = "<IfQQ"
IR_SIZE = struct.calcsize(IR_FORMAT)
_CHUNK = 1 << 20


class RecordIOError(DataError):
    """A malformed RecordIO pack; the message names the file and the record key."""


def _pad4(n: int) -> int:
    return (n + 3) & ~3


def read_index(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """``(keys, offsets)`` (``int64``) from an ``.idx`` file of ``key<TAB>offset`` lines (errors name the line)."""
    p = Path(path)
    if not p.is_file():
        raise RecordIOError(f"{p}: RecordIO index not found (a pack is train.rec + train.idx)")
    keys: list[int] = []
    offsets: list[int] = []
    with open(p, encoding="ascii", errors="replace") as f:
        for lineno, line in enumerate(f, 1):
            fields = line.split()
            if not fields:
                continue
            try:
                if len(fields) != 2:
                    raise ValueError
                key, off = int(fields[0]), int(fields[1])
                if off < 0:
                    raise ValueError
            except ValueError:
                raise RecordIOError(f"{p}:{lineno}: expected '<key>\\t<byte offset>', got {line.rstrip()!r}") from None
            keys.append(key)
            offsets.append(off)
    if not keys:
        raise RecordIOError(f"{p}: the index is empty")
    return np.asarray(keys, dtype=np.int64), np.asarray(offsets, dtype=np.int64)


def read_record(buf: Any, offset: int, where: str) -> bytes:
    """The bytes of the record starting at ``offset`` of ``buf`` (bytes-like: a ``.rec`` file's mmap), its parts
    joined back with the magic number between them. ``where`` (file and key) names it in errors."""
    size = len(buf)
    pos = offset
    parts: list[bytes] = []
    first = True
    while True:
        if pos + 8 > size:
            raise RecordIOError(f"{where}: record runs past the end of the file at byte {pos} of {size} "
                                "(truncated pack?)")
        magic, lrec = struct.unpack_from("<II", buf, pos)
        if magic != MAGIC:
            raise RecordIOError(f"{where}: bad magic number 0x{magic:08x} at byte {pos} (expected 0x{MAGIC:08x}): "
                                "not a RecordIO record (wrong offset in the index, or a corrupt pack)")
        cflag, length = lrec >> _LENGTH_BITS, lrec & _LENGTH_MASK
        if cflag not in ((0, 1) if first else (2, 3)):
            state = "first" if first else "continuation"
            raise RecordIOError(f"{where}: continuation flag {cflag} is invalid for a {state} part at byte {pos}")
        end = pos + 8 + length
        if end > size:
            raise RecordIOError(f"{where}: record of {length} bytes at byte {pos} runs past the end of the file "
                                f"({size} bytes): truncated pack")
        parts.append(bytes(buf[pos + 8:end]))
        if cflag in (0, 3):
            return b"".join(parts)
        parts.append(_MAGIC_BYTES)
        pos += 8 + _pad4(length)
        first = False


def unpack_header(record: bytes, where: str) -> tuple[int, float | np.ndarray, int, int, bytes]:
    """``(flag, label, id, id2, rest)`` of a record: ``label`` a float, or the ``flag`` float32 labels when
    ``flag > 0``; ``rest`` the payload after the header (and labels)."""
    if len(record) < IR_SIZE:
        raise RecordIOError(f"{where}: record of {len(record)} bytes is shorter than its {IR_SIZE}-byte header")
    flag, label, id1, id2 = struct.unpack_from(IR_FORMAT, record, 0)
    start = IR_SIZE
    if flag > 0:
        start += 4 * flag
        if len(record) < start:
            raise RecordIOError(f"{where}: header announces {flag} float labels but the record has "
                                f"{len(record) - IR_SIZE} bytes after its header")
        label = np.frombuffer(record, dtype="<f4", count=flag, offset=IR_SIZE).astype(np.float32)
    return flag, label, id1, id2, record[start:]


def read_property(path: str | Path) -> tuple[int, int, int]:
    """``(num_classes, height, width)`` from an insightface ``property`` file (``C,h,w`` on one line)."""
    p = Path(path)
    text = p.read_text(encoding="ascii", errors="replace").strip()
    try:
        c, h, w = (int(v) for v in text.split(","))
        if min(c, h, w) <= 0:
            raise ValueError
    except ValueError:
        raise RecordIOError(f"{p}: expected one line 'num_classes,height,width' of positive integers, "
                            f"got {text[:80]!r}") from None
    return c, h, w


def _gather_u32(arr: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """The little-endian uint32 at each byte position of ``arr`` (positions in range)."""
    out = np.empty(positions.shape[0], dtype=np.uint32)
    step = np.arange(4)
    for s in range(0, positions.shape[0], _CHUNK):
        p = positions[s:s + _CHUNK]
        out[s:s + _CHUNK] = np.ascontiguousarray(arr[p[:, None] + step]).view("<u4").ravel()
    return out


class RecordIODataset(TrainDataset):
    """An IndexedRecordIO pack as a :class:`~fr_bench.train.data.TrainDataset` (see the module docstring).

    Opening reads the index and every image record's header (vectorised over a memory map): bad magic numbers,
    offsets past the end, truncated records and labels that are not class indices fail here, naming the file and
    key; images are decoded when read. ``num_classes`` comes from ``property`` when present (labels must be below
    it), else ``max(label) + 1``. Picklable: the memory map is reopened lazily in each process.
    """

    def __init__(self, rec_path: str | Path, *, idx_path: str | Path | None = None,
                 property_path: str | Path | None = None, seed: int = 0) -> None:
        rec = Path(rec_path)
        if not rec.is_file():
            raise RecordIOError(f"{rec}: RecordIO file not found")
        self.rec_path = str(rec)
        self.idx_path = str(Path(idx_path) if idx_path is not None else rec.with_suffix(".idx"))
        prop = Path(property_path) if property_path is not None else rec.parent / "property"
        self.property_path = str(prop) if prop.is_file() else None
        self.seed = seed
        self._buf: mmap.mmap | None = None
        self.size = rec.stat().st_size
        if self.size == 0:
            raise RecordIOError(f"{rec}: empty RecordIO file")
        keys, offsets = read_index(self.idx_path)
        past = np.flatnonzero(offsets + 8 > self.size)
        if past.size:
            k = int(past[0])
            raise RecordIOError(f"{self.idx_path}: key {keys[k]} points to byte {offsets[k]}, past the end of "
                                f"{rec} ({self.size} bytes; {past.size} such keys): truncated pack or wrong index")
        self.header_labels: tuple[float, ...] | None = None
        order = np.argsort(keys, kind="stable")
        image_keys = keys
        if keys[order[0]] == 0:
            flag, label, *_ = unpack_header(read_record(self._mmap(), int(offsets[order[0]]), self._where(0)),
                                            self._where(0))
            if flag > 0:
                self.header_labels = tuple(float(v) for v in label)
                end = int(label[0])
                image_keys = np.arange(1, end, dtype=np.int64)
        pos = np.searchsorted(keys, image_keys, sorter=order)
        pos = order[np.minimum(pos, keys.size - 1)]
        absent = np.flatnonzero(keys[pos] != image_keys)
        if absent.size:
            raise RecordIOError(f"{self.idx_path}: no entry for image record key {image_keys[absent[0]]} "
                                f"(the header record at key 0 announces keys 1..{image_keys[-1]}; {absent.size} missing)")
        self.keys = image_keys
        self.offsets = offsets[pos]
        self.labels = self._scan_labels()
        self.property: tuple[int, int, int] | None = None
        if self.property_path is not None:
            self.property = read_property(self.property_path)
            self.num_classes = self.property[0]
            bad = np.flatnonzero(self.labels >= self.num_classes)
            if bad.size:
                raise RecordIOError(f"{self._where(int(self.keys[bad[0]]))}: label {self.labels[bad[0]]} is not "
                                    f"below num_classes={self.num_classes} from {self.property_path}")
        else:
            self.num_classes = int(self.labels.max()) + 1 if self.labels.size else 0

    def _where(self, key: int) -> str:
        return f"{self.rec_path} (record key {key})"

    def _mmap(self) -> mmap.mmap:
        if self._buf is None:
            with open(self.rec_path, "rb") as f:
                self._buf = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        return self._buf

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_buf"] = None
        return state

    def _scan_labels(self) -> np.ndarray:
        """Check each image record's first part and read its label, vectorised; odd records one by one."""
        arr = np.frombuffer(self._mmap(), dtype=np.uint8)
        off = self.offsets
        magic = _gather_u32(arr, off)
        bad = np.flatnonzero(magic != MAGIC)
        if bad.size:
            k = int(bad[0])
            raise RecordIOError(f"{self._where(int(self.keys[k]))}: bad magic number 0x{int(magic[k]):08x} at byte "
                                f"{off[k]} (expected 0x{MAGIC:08x}; {bad.size} records so): wrong offset in "
                                f"{self.idx_path} or a corrupt pack")
        lrec = _gather_u32(arr, off + 4)
        cflag, length = lrec >> _LENGTH_BITS, (lrec & _LENGTH_MASK).astype(np.int64)
        over = np.flatnonzero(off + 8 + length > self.size)
        if over.size:
            k = int(over[0])
            raise RecordIOError(f"{self._where(int(self.keys[k]))}: record of {length[k]} bytes at byte {off[k]} runs "
                                f"past the end of the file ({self.size} bytes): truncated pack")
        simple = (cflag == 0) & (length >= IR_SIZE)
        flag = np.zeros(off.size, dtype=np.uint32)
        flag[simple] = _gather_u32(arr, off[simple] + 8)
        simple &= length >= IR_SIZE + 4 * flag.astype(np.int64)
        label_at = off + 8 + np.where(flag > 0, IR_SIZE, 4)
        raw = np.zeros(off.size, dtype=np.float32)
        raw[simple] = _gather_u32(arr, label_at[simple]).view("<f4")
        for k in np.flatnonzero(~simple):  # multi-part or malformed records: the full reader explains any error
            where = self._where(int(self.keys[k]))
            f, label, *_ = unpack_header(read_record(self._mmap(), int(off[k]), where), where)
            raw[k] = label[0] if f > 0 else label
        labels = raw.astype(np.int64)
        wrong = np.flatnonzero((raw != labels) | (raw < 0))
        if wrong.size:
            k = int(wrong[0])
            raise RecordIOError(f"{self._where(int(self.keys[k]))}: label {raw[k]} is not a class index "
                                "(a non-negative integer)")
        return labels

    def record(self, index: int) -> tuple[int, float | np.ndarray, bytes]:
        """``(key, label(s), encoded image bytes)`` of image ``index``."""
        key = int(self.keys[index])
        where = self._where(key)
        _, label, _, _, payload = unpack_header(read_record(self._mmap(), int(self.offsets[index]), where), where)
        return key, label, payload

    def load_image(self, index: int) -> np.ndarray:
        key, _, payload = self.record(index)
        return decode_image(payload, self._where(key))

    def describe(self) -> dict[str, Any]:
        counts = self.class_counts()
        return {"kind": "recordio", "path": self.rec_path, "index": self.idx_path, "property": self.property_path,
                "num_classes": self.num_classes, "num_images": len(self),
                "image_size": list(self.property[1:]) if self.property else None,
                "min_per_class": int(counts.min()) if counts.size else 0,
                "max_per_class": int(counts.max()) if counts.size else 0,
                "header_record": list(self.header_labels) if self.header_labels else None,
                "seed": self.seed, "options": {}}
