"""Image sources shared by the protocol loaders: image files on disk (optionally 5-point aligned) and ``.bin`` packs.

Both are columnar (one list of relative paths, one optional ``(N, 5, 2)`` landmark array), so that an IJB-C-sized
list (470k images) costs a few tens of MB, and picklable, so that DataLoader workers decode in parallel.

Landmark files (:func:`read_landmarks`) use the layout of IJB-B/C ``*_name_5pts_score.txt``: one line per image,
``<relative path> x1 y1 x2 y2 x3 y3 x4 y4 x5 y5 [score]``, whitespace-separated, points in the docs/FORMATS.md order.

Decoding (:func:`read_image_file`, :func:`decode_image`) is guarded twice:

* the header's width x height is checked against :data:`MAX_IMAGE_PIXELS` before any pixel is decoded, so a small
  file announcing a huge image (a decompression bomb) costs nothing;
* high-bit-depth images are scaled to 8 bits, never clipped: 16-bit grey (Pillow modes ``I;16*``, and ``I`` from
  PNG or PGM, whose values are 0..65535) becomes ``round(v / 257)``; 16-bit RGB(A) is reduced by Pillow itself to
  its high byte (``floor(v / 256)``, at most one level from ``v / 257``); 32-bit integer and float images (modes
  ``I`` from other formats, ``F``) have no defined 8-bit scale and are refused with a clear error.

Image paths come from list files: a path that leaves the root (absolute, or climbing out with ``..``) is refused by
:class:`FileImageSource` (:func:`check_inside_root` names the list file and line) unless the protocol allows it;
when allowed, those images' bytes are fingerprinted into the cache identity (:meth:`FileImageSource.recipe_digest`),
since the data fingerprint covers only the tree under the root.
"""

from __future__ import annotations

import hashlib
import io
import posixpath
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PureWindowsPath

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


#: Largest image decoded (width x height, read from the header first): 50 megapixels, far above any face
#: benchmark's photos, and a bounded ~150 MB as RGB. Raise it here if your data truly need more.
MAX_IMAGE_PIXELS = 50_000_000

#: Pillow formats whose 32-bit integer mode ``I`` holds 16-bit samples (0..65535).
_SIXTEEN_BIT_I_FORMATS = ("PNG", "PPM")


def _rgb8(im: Image.Image, where: str) -> np.ndarray:
    """An opened (not yet decoded) image as an HxWx3 ``uint8`` RGB array: size bound first, then a proper 8-bit
    reduction of high-bit-depth modes (see the module docstring)."""
    w, h = im.size
    if w * h > MAX_IMAGE_PIXELS:
        raise ProtocolError(
            f"{where}: the image header says {w}x{h} ({w * h:,} pixels), above the {MAX_IMAGE_PIXELS:,}-pixel "
            "bound; refused before decoding (a decompression bomb, or not a face image; raise "
            "fr_bench.protocols.images.MAX_IMAGE_PIXELS if it is real)"
        )
    mode = im.mode
    if mode.startswith("I;16") or (mode == "I" and im.format in _SIXTEEN_BIT_I_FORMATS):
        v = np.asarray(im).astype(np.int64)
        if v.size and (v.min() < 0 or v.max() > 65535):
            raise ProtocolError(f"{where}: 16-bit image (mode {mode}) with values outside 0..65535")
        grey = ((v + 128) // 257).astype(np.uint8)  # round(v / 257): 65535 -> 255, no ties (257 is odd)
        return np.repeat(grey[..., None], 3, axis=2)
    if mode in ("I", "F") or mode.startswith(("I;32", "F;")):
        kind = "floating-point" if mode.startswith("F") else "32-bit integer"
        raise ProtocolError(
            f"{where}: {kind} image (Pillow mode {mode}, format {im.format}) has no defined 8-bit scale; "
            "save it as 8-bit (or 16-bit PNG) RGB or grey"
        )
    return np.asarray(im.convert("RGB"))


def decode_image(data: bytes | bytearray | memoryview | np.ndarray, where: str) -> np.ndarray:
    """Encoded image bytes (JPEG, PNG, ...) as an HxWx3 ``uint8`` RGB array; ``where`` names it in errors.

    The header size is checked before decoding and high bit depths are scaled (see the module docstring)."""
    raw = data.tobytes() if isinstance(data, np.ndarray) else bytes(data)
    try:
        with Image.open(io.BytesIO(raw)) as im:
            return _rgb8(im, where)
    except ProtocolError:
        raise
    except Exception as exc:  # PIL raises several exception types for corrupt data
        raise ProtocolError(f"{where}: cannot decode the image ({exc})") from exc


def read_image_file(path: str | Path) -> np.ndarray:
    """The image file at ``path`` as an HxWx3 ``uint8`` RGB array (clear error if missing, unreadable, too large or
    of a bit depth without an 8-bit scale)."""
    p = Path(path)
    if not p.is_file():
        raise ProtocolError(f"{p}: image file not found")
    try:
        with Image.open(p) as im:
            return _rgb8(im, str(p))
    except ProtocolError:
        raise
    except Exception as exc:
        raise ProtocolError(f"{p}: cannot decode the image ({exc})") from exc


def leaves_root(rel: str) -> bool:
    """True when ``rel`` (an image path from a list, meant relative to the root) is absolute or climbs out of the
    root with ``..`` (judged on the text: symbolic links inside the root are the data's own layout)."""
    p = str(rel).replace("\\", "/")
    if p.startswith("/") or PureWindowsPath(p).drive:
        return True
    if ".." not in p:
        return False
    norm = posixpath.normpath(p)
    return norm == ".." or norm.startswith("../")


def check_inside_root(root: str | Path, rels: Sequence[str], *, list_file: str | Path | None = None,
                      lines: Sequence[int] | None = None, allow: bool = False) -> list[str]:
    """The paths of ``rels`` that leave ``root`` (see :func:`leaves_root`); a :class:`ProtocolError` naming the
    first one (with ``list_file`` and its line from ``lines`` when given) unless ``allow``.

    Such images are outside what the data fingerprint covers (the tree under the root), so they are refused by
    default; a protocol option (``allow_outside_root=true``) accepts them, and their bytes are then fingerprinted.
    """
    outside = [k for k, r in enumerate(rels) if leaves_root(r)]
    if outside and not allow:
        k = outside[0]
        where = (f"{list_file}:{lines[k]}" if lines is not None else str(list_file)) if list_file is not None \
            else f"image list under {root}"
        raise ProtocolError(
            f"{where}: image path {rels[k]!r} leaves the root {root} ({len(outside)} such paths in all); the data "
            "fingerprint covers only the root, so such images are refused: move them under the root, or pass the "
            "protocol option allow_outside_root=true where the protocol takes it (folder; their bytes are then "
            "fingerprinted)"
        )
    return [rels[k] for k in outside]


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
        allow_outside_root: bool = False,
    ) -> None:
        self.root = str(root)
        self.relpaths = list(relpaths)
        self.outside = check_inside_root(root, self.relpaths, allow=allow_outside_root)
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
        """The landmarks every image is warped with (see :meth:`ImageSource.recipe_digest`) and, for images outside
        the root (allowed by the protocol), their bytes: the data fingerprint does not cover them."""
        digest = landmarks_digest(self.landmarks)
        if not self.outside:
            return digest
        from fr_bench.provenance import file_sha256

        h = hashlib.sha256(digest.encode() + b"|outside")
        for rel in self.outside:
            path = Path(self.root) / rel
            content = file_sha256(path) if path.is_file() else "missing"  # load() names a missing file
            h.update(f"{rel}\t{content}\n".encode("utf-8", "surrogateescape"))
        return h.hexdigest()

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
