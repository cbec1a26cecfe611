"""Image sources shared by the protocol loaders: image files on disk (optionally 5-point aligned) and ``.bin`` packs.

Both are columnar (one list of relative paths, one optional ``(N, 5, 2)`` landmark array), so that an IJB-C-sized
list (470k images) costs a few tens of MB, and picklable, so that DataLoader workers decode in parallel.

Landmark files (:func:`read_landmarks`) use the layout of IJB-B/C ``*_name_5pts_score.txt``: one line per image,
``<relative path> x1 y1 x2 y2 x3 y3 x4 y4 x5 y5 [score]``, whitespace-separated, points in the FORMATS.md order.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from fr_bench.align import align_face
from fr_bench.protocols.base import (
    CROP_SIZE,
    ImageRef,
    ImageSource,
    ProtocolError,
    file_error,
    landmarks_digest,
)

#: File name endings recognised as images when scanning folders.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


def decode_image(data: bytes | bytearray | memoryview | np.ndarray, where: str) -> np.ndarray:
    """Encoded image bytes (JPEG, PNG, ...) as an HxWx3 ``uint8`` RGB array; ``where`` names it in errors."""
    raw = data.tobytes() if isinstance(data, np.ndarray) else bytes(data)
    try:
        with Image.open(io.BytesIO(raw)) as im:
            return np.asarray(im.convert("RGB"))
    except Exception as exc:  # PIL raises several exception types for corrupt data
        raise ProtocolError(f"{where}: cannot decode the image ({exc})") from exc


def read_image_file(path: str | Path) -> np.ndarray:
    """The image file at ``path`` as an HxWx3 ``uint8`` RGB array (clear error if missing or unreadable)."""
    p = Path(path)
    if not p.is_file():
        raise ProtocolError(f"{p}: image file not found")
    try:
        with Image.open(p) as im:
            return np.asarray(im.convert("RGB"))
    except Exception as exc:
        raise ProtocolError(f"{p}: cannot decode the image ({exc})") from exc


def check_crop(img: np.ndarray, where: str, hint: str = "") -> np.ndarray:
    """``img`` if it is a ``CROP_SIZE x CROP_SIZE x 3`` crop, else a :class:`ProtocolError` naming ``where``."""
    if img.shape != (CROP_SIZE, CROP_SIZE, 3):
        h, w = img.shape[:2]
        msg = f"expected an aligned {CROP_SIZE}x{CROP_SIZE} RGB crop, got {w}x{h}"
        raise ProtocolError(f"{where}: {msg}" + (f"; {hint}" if hint else ""))
    return img


@dataclass(frozen=True)
class LandmarkTable:
    """Parsed landmark file: relative path -> row index into ``points`` ``(N, 5, 2)`` and ``scores`` ``(N,)``.

    ``scores`` is NaN where a line has no score column.
    """

    path: str
    index: dict[str, int]
    points: np.ndarray
    scores: np.ndarray

    def __len__(self) -> int:
        return len(self.index)

    def lookup(self, *candidates: str) -> int | None:
        """Row of the first candidate relative path present in the file, else None."""
        for cand in candidates:
            row = self.index.get(cand)
            if row is not None:
                return row
        return None


def read_landmarks(path: str | Path) -> LandmarkTable:
    """Read a ``<relpath> x1 y1 ... x5 y5 [score]`` landmark file (see module docstring).

    Errors name the file and line: wrong number of columns, non-numeric or non-finite values, duplicate paths.
    """
    p = Path(path)
    if not p.is_file():
        raise ProtocolError(f"{p}: landmark file not found")
    index: dict[str, int] = {}
    first_line: dict[str, int] = {}
    rows: list[list[float]] = []
    scores: list[float] = []
    with open(p, encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            fields = line.split()
            if not fields or fields[0].startswith("#"):
                continue
            if len(fields) not in (11, 12):
                raise file_error(
                    p, lineno,
                    f"expected '<relative path> x1 y1 ... x5 y5 [score]' (11 or 12 fields), got {len(fields)}",
                )
            try:
                values = [float(v) for v in fields[1:]]
            except ValueError:
                raise file_error(p, lineno, f"landmark coordinates must be numbers: {' '.join(fields[1:])!r}") from None
            if not all(np.isfinite(values)):
                raise file_error(p, lineno, "landmark values must be finite")
            key = fields[0].replace("\\", "/")
            if key in index:
                raise file_error(p, lineno, f"duplicate entry for {key!r} (first on line {first_line[key]})")
            first_line[key] = lineno
            index[key] = len(rows)
            rows.append(values[:10])
            scores.append(values[10] if len(values) == 11 else float("nan"))
    if not rows:
        raise ProtocolError(f"{p}: no landmark lines found")
    return LandmarkTable(
        path=str(p),
        index=index,
        points=np.asarray(rows, dtype=np.float32).reshape(-1, 5, 2),
        scores=np.asarray(scores, dtype=np.float32),
    )


class FileImageSource(ImageSource):
    """Image files under ``root``: ``relpaths[i]`` is image ``i`` and its stable key.

    With ``landmarks`` (``(N, 5, 2)`` in image coordinates), each image is warped to the template on load
    (:func:`fr_bench.align.align_face`); without, each file must already be a 112x112 aligned crop (checked on load).
    ``key_prefix`` is prepended to the keys (e.g. the benchmark name) without changing the paths read.
    """

    def __init__(
        self,
        root: str | Path,
        relpaths: Sequence[str],
        landmarks: np.ndarray | None = None,
        *,
        key_prefix: str = "",
        unaligned_hint: str = "give a landmark file (landmarks=PATH; make one with `frbench landmarks ROOT -o FILE`) or use the "
        "benchmark's aligned .bin pack",
    ) -> None:
        self.root = str(root)
        self.relpaths = list(relpaths)
        if landmarks is not None:
            landmarks = np.asarray(landmarks, dtype=np.float32)
            if landmarks.shape != (len(self.relpaths), 5, 2):
                raise ValueError(f"landmarks must have shape ({len(self.relpaths)}, 5, 2), got {landmarks.shape}")
        self.landmarks = landmarks
        self.key_prefix = key_prefix
        self.unaligned_hint = unaligned_hint

    def __len__(self) -> int:
        return len(self.relpaths)

    def path(self, i: int) -> Path:
        return Path(self.root) / self.relpaths[i]

    def ref(self, i: int) -> ImageRef:
        lm = None
        if self.landmarks is not None:
            lm = tuple((float(x), float(y)) for x, y in self.landmarks[i])
        return ImageRef(key=self.key_prefix + self.relpaths[i], source=str(self.path(i)), landmarks=lm)

    def recipe_digest(self) -> str:
        """The landmarks every image is warped with (see :meth:`ImageSource.recipe_digest`)."""
        return landmarks_digest(self.landmarks)

    def load(self, i: int) -> np.ndarray:
        img = read_image_file(self.path(i))
        if self.landmarks is not None:
            return align_face(img, self.landmarks[i])
        return check_crop(img, str(self.path(i)), self.unaligned_hint)

    def check_first(self) -> None:
        """Fail early if image 0 is not a 112x112 crop while no landmarks are given (reads the header only)."""
        if self.landmarks is not None or not self.relpaths:
            return
        p = self.path(0)
        try:
            with Image.open(p) as im:
                size = im.size
        except FileNotFoundError:
            raise ProtocolError(f"{p}: image file not found") from None
        except Exception as exc:
            raise ProtocolError(f"{p}: cannot read the image ({exc})") from exc
        if size != (CROP_SIZE, CROP_SIZE):
            raise ProtocolError(
                f"{p}: expected an aligned {CROP_SIZE}x{CROP_SIZE} crop, got {size[0]}x{size[1]}; {self.unaligned_hint}"
            )


class BinPackImageSource(ImageSource):
    """Members of an insightface ``.bin`` pack (see :mod:`fr_bench.protocols.binpack`), decoded on demand.

    The pack is read once per process on first use (the pickled source carries only the path, so spawned
    DataLoader workers re-read it instead of receiving the bytes). Keys are ``<pack file name>#<index>``.
    """

    def __init__(self, path: str | Path, n_images: int, *, bins: list | None = None) -> None:
        self.path = str(path)
        self.n_images = int(n_images)
        self._bins = bins

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_bins"] = None
        return state

    def __len__(self) -> int:
        return self.n_images

    def _members(self) -> list:
        if self._bins is None:
            from fr_bench.protocols.binpack import read_bin

            bins, _ = read_bin(self.path)
            if len(bins) != self.n_images:
                raise ProtocolError(
                    f"{self.path}: the pack changed on disk: {len(bins)} images, expected {self.n_images}"
                )
            self._bins = bins
        return self._bins

    def ref(self, i: int) -> ImageRef:
        return ImageRef(key=f"{Path(self.path).name}#{i}", source=self.path, member=i)

    def recipe_digest(self) -> str:
        """sha256 of the members' encoded bytes: keys (``lfw.bin#i``) cannot tell two different copies of one pack
        apart, so the embedding cache must see the content (the crops need no alignment)."""
        h = hashlib.sha256(b"binpack")
        for item in self._members():
            raw = item.tobytes() if isinstance(item, np.ndarray) else bytes(item)
            h.update(len(raw).to_bytes(8, "little"))
            h.update(raw)
        return h.hexdigest()

    def load(self, i: int) -> np.ndarray:
        where = f"{self.path}#{i}"
        img = decode_image(self._members()[i], where)
        return check_crop(img, where, "the .bin packs hold aligned 112x112 crops; this pack is not in that layout")


def list_image_tree(root: str | Path) -> list[tuple[str, str]]:
    """``(identity, relative path)`` of every image in a ``root/<identity>/<image>`` tree, sorted by identity then
    file name (hidden files and non-image files skipped; image files directly under ``root`` are an error)."""
    base = Path(root)
    if not base.is_dir():
        raise ProtocolError(f"{base}: not a folder")
    out: list[tuple[str, str]] = []
    for entry in sorted(base.iterdir(), key=lambda p: p.name):
        if entry.name.startswith("."):
            continue
        if entry.is_file() and entry.suffix.lower() in IMAGE_SUFFIXES:
            raise ProtocolError(f"{entry}: image directly under the root; expected root/<identity>/<image>")
        if not entry.is_dir():
            continue
        for f in sorted(entry.iterdir(), key=lambda p: p.name):
            if f.is_file() and not f.name.startswith(".") and f.suffix.lower() in IMAGE_SUFFIXES:
                out.append((entry.name, f"{entry.name}/{f.name}"))
    return out
