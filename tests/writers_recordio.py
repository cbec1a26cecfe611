"""Fixture writer for MXNet IndexedRecordIO packs in their real binary format (no mxnet, independent of the reader).

Layout written (dmlc-core recordio + MXNet IRHeader + the insightface conventions):

* each record's bytes are cut at every 4-byte-aligned occurrence of the magic number ``0xced7230a``; each piece is
  written as ``magic | lrec | piece | zero padding to 4 bytes`` with ``lrec = cflag << 29 | len(piece)`` and cflag
  0 (whole record), 1 (first piece), 2 (middle), 3 (last); the magic occurrences themselves are not written;
* a record is ``struct.pack('<IfQQ', flag, label, id, id2)`` [+ ``flag`` float32 labels] + encoded image;
* :func:`write_pack`: ``train.rec`` with header record 0 (labels ``(n_images + 1, n_images + 1 + n_classes)``),
  image records ``1..n``, one identity record per class (labels ``(first key, last key + 1)``); ``train.idx``
  (``key\\toffset`` lines); ``property`` (``num_classes,h,w``).
"""

from __future__ import annotations

import io
import struct
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

MAGIC_WORD = 0xCED7230A


def encode_parts(record: bytes) -> bytes:
    """The on-disk bytes of one record (its parts, each with magic, lrec and padding)."""
    magic = struct.pack("<I", MAGIC_WORD)
    cuts = [i for i in range(0, len(record) - len(record) % 4, 4) if record[i:i + 4] == magic]
    pieces, start = [], 0
    for i in cuts:
        pieces.append(record[start:i])
        start = i + 4
    pieces.append(record[start:])
    out = bytearray()
    for n, piece in enumerate(pieces):
        if len(pieces) == 1:
            cflag = 0
        else:
            cflag = 1 if n == 0 else (3 if n == len(pieces) - 1 else 2)
        out += magic + struct.pack("<I", (cflag << 29) | len(piece)) + piece
        out += b"\0" * (-len(piece) % 4)
    return bytes(out)


def ir_record(label: float | Sequence[float], payload: bytes, *, rid: int = 0) -> bytes:
    """``IRHeader`` (+ float32 labels when ``label`` is a sequence) followed by ``payload``."""
    if isinstance(label, (int, float)):
        return struct.pack("<IfQQ", 0, float(label), rid, 0) + payload
    labels = np.asarray(label, dtype="<f4")
    return struct.pack("<IfQQ", labels.size, 0.0, rid, 0) + labels.tobytes() + payload


def encode_image(img: np.ndarray, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format=fmt, **({"quality": 95} if fmt == "JPEG" else {}))
    return buf.getvalue()


def write_records(rec_path: Path, idx_path: Path, records: Sequence[tuple[int, bytes]]) -> dict[int, int]:
    """Write ``(key, record bytes)`` in order to ``rec_path`` and the index; returns ``{key: offset}``."""
    offsets = {}
    with open(rec_path, "wb") as rec, open(idx_path, "w") as idx:
        for key, record in records:
            offsets[key] = rec.tell()
            idx.write(f"{key}\t{offsets[key]}\n")
            rec.write(encode_parts(record))
    return offsets


def write_pack(
    folder: str | Path,
    images: Sequence[np.ndarray],
    labels: Sequence[int],
    *,
    num_classes: int | None = None,
    header: bool = True,
    write_property: bool = True,
    label_arrays: bool = False,
    fmt: str = "PNG",
    extra_payload: dict[int, bytes] | None = None,
) -> Path:
    """An insightface-style pack ``folder/train.rec``, ``train.idx`` [, ``property``]; returns the folder.

    ``label_arrays`` stores each label as a float32 array ``[label, 0]`` (flag 2); ``extra_payload[i]`` is appended
    to image ``i``'s encoded bytes (e.g. to plant the magic number at an aligned position).
    """
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    n = len(images)
    c = num_classes if num_classes is not None else (max(labels) + 1 if n else 0)
    records: list[tuple[int, bytes]] = []
    if header:
        records.append((0, ir_record([n + 1, n + 1 + c], b"")))
    first_key = 1 if header else 0
    for i, (img, lab) in enumerate(zip(images, labels)):
        payload = encode_image(img, fmt) + (extra_payload or {}).get(i, b"")
        label = [float(lab), 0.0] if label_arrays else float(lab)
        records.append((first_key + i, ir_record(label, payload, rid=i)))
    if header:
        keys = np.arange(first_key, first_key + n)
        lab_arr = np.asarray(labels)
        for cls in range(c):
            members = keys[lab_arr == cls]
            lo, hi = (int(members[0]), int(members[-1]) + 1) if members.size else (0, 0)
            records.append((n + 1 + cls, ir_record([lo, hi], b"")))
    write_records(out / "train.rec", out / "train.idx", records)
    if write_property:
        h, w = images[0].shape[:2] if n else (112, 112)
        (out / "property").write_text(f"{c},{h},{w}\n")
    return out
