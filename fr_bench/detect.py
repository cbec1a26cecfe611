"""Five-point landmarks for unaligned photos (YuNet), written as the landmark file the protocol loaders read.

Official benchmark releases (LFW 250x250 photos, CFP, CALFW/CPLFW, any ``folder`` tree of raw photos) ship
unaligned images. The loaders stay model-free: they align with a landmark file (``-o landmarks=PATH``, layout of
:func:`fr_bench.protocols.images.read_landmarks`). This module makes that file, as a separate step::

    frbench landmarks /data/lfw -o lfw_5pts.txt
    frbench evaluate -m sface -p lfw -r /data/lfw -o landmarks=lfw_5pts.txt

Detection recipe (the one ``shared/data/johns_raw_5pts_score.txt`` was made with; reproduced to its rounding):

* the RGB image is converted to BGR (OpenCV's order) and padded on every side with a black border of
  ``round(pad * max(h, w))`` pixels (``pad=0.5``): benchmark photos are often tight crops whose face touches the
  frame, where YuNet without context misses the face or misplaces the landmarks by several pixels;
* if the padded canvas is longer than ``max_side`` pixels it is downscaled (area interpolation) for detection only;
  landmarks are mapped back to the original image coordinates;
* ``cv2.FaceDetectorYN`` runs with NMS IoU 0.3 and keeps detections scoring at least ``score_threshold`` (0.6);
* the face kept is the detection whose box centre is **nearest the image centre** (ties: the higher score).
  Benchmark photos are centred on their subject (LFW's 250x250 images are centred on the detected face of the
  named person; CFP, CALFW and CPLFW likewise), while other faces in the frame are bystanders, often larger or
  sharper, so "highest score" or "largest box" would pick the wrong person.

Images where no face passes the threshold (or that cannot be read) are never silently dropped: the summary lists
them and they are written to the sidecar ``<out>.missing.txt``. The loaders then stop on them as images without
landmarks, or (pair-list protocols, ``-o allow_missing=true``) drop their pairs and flag the result.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fr_bench._paths import reference_models_dir
from fr_bench.protocols.images import read_image_file

#: The shipped YuNet file (see ``reference_models/yunet/MODEL_CARD.md``).
YUNET_FILE = "face_detection_yunet_2023mar.onnx"
#: Default minimum detector score.
DEFAULT_SCORE_THRESHOLD = 0.6
#: NMS IoU threshold (the OpenCV Zoo default).
NMS_THRESHOLD = 0.3
#: Black border added on each side before detection, as a fraction of the image's longer side.
DEFAULT_PAD = 0.5
#: Padded canvases longer than this are downscaled for detection (bounds time and memory on multi-megapixel photos).
DEFAULT_MAX_SIDE = 2048

_INSTALL_HINT = "face detection needs OpenCV: pip install 'fr-bench[detect]' (opencv-python-headless>=4.8)"


def default_model_path() -> Path:
    """``reference_models/yunet/face_detection_yunet_2023mar.onnx``."""
    return reference_models_dir() / "yunet" / YUNET_FILE


def _import_cv2():
    try:
        import cv2
    except ImportError as exc:
        raise ImportError(_INSTALL_HINT) from exc
    if not hasattr(cv2, "FaceDetectorYN"):
        raise ImportError(f"OpenCV {cv2.__version__} has no FaceDetectorYN; {_INSTALL_HINT}")
    return cv2


class YuNet:
    """The YuNet detector (``cv2.FaceDetectorYN``), loaded once and reused for every image.

    :meth:`detect` returns every detection as an ``(n, 15)`` float64 array in the input image's coordinates:
    box ``x, y, w, h``, then the five landmarks ``x, y`` (right eye, left eye, nose tip, right mouth corner, left
    mouth corner -- the order of :mod:`fr_bench.align`), then the score; see the module docstring for the recipe.
    """

    def __init__(
        self,
        model_path: str | Path | None = None,
        *,
        pad: float = DEFAULT_PAD,
        max_side: int | None = DEFAULT_MAX_SIDE,
        nms_threshold: float = NMS_THRESHOLD,
    ) -> None:
        cv2 = _import_cv2()
        path = Path(model_path) if model_path is not None else default_model_path()
        if not path.is_file():
            raise FileNotFoundError(f"{path}: YuNet model file not found")
        if not pad >= 0:
            raise ValueError(f"pad must be >= 0, got {pad!r}")
        if max_side is not None and max_side < 32:
            raise ValueError(f"max_side must be >= 32 (or None), got {max_side!r}")
        self.model_path = path
        self.pad = float(pad)
        self.max_side = max_side
        self._cv2 = cv2
        # Input size and score threshold are set per call; top_k bounds the candidates before NMS. OpenCV 5 warns
        # on every load that its new graph engine ignores the (default) target: silenced here, level restored.
        logging = getattr(getattr(cv2, "utils", None), "logging", None)
        level = logging.getLogLevel() if logging is not None else None
        try:
            if logging is not None:
                logging.setLogLevel(min(level, logging.LOG_LEVEL_ERROR))
            self._net = cv2.FaceDetectorYN.create(str(path), "", (320, 320), 0.0, float(nms_threshold), 5000)
        finally:
            if logging is not None:
                logging.setLogLevel(level)

    def detect(self, image_rgb: np.ndarray, score_threshold: float = DEFAULT_SCORE_THRESHOLD) -> np.ndarray:
        """All faces scoring ``>= score_threshold`` in an HxWx3 ``uint8`` RGB image, ``(n, 15)`` (``n`` may be 0)."""
        cv2 = self._cv2
        img = np.asarray(image_rgb)
        if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
            raise ValueError(f"expected an HxWx3 uint8 RGB image, got shape {img.shape} and dtype {img.dtype}")
        h, w = img.shape[:2]
        border = int(round(self.pad * max(h, w)))
        bgr = np.ascontiguousarray(img[:, :, ::-1])
        canvas = cv2.copyMakeBorder(bgr, border, border, border, border, cv2.BORDER_CONSTANT, value=(0, 0, 0))
        longest = max(canvas.shape[:2])
        if self.max_side is not None and longest > self.max_side:
            factor = self.max_side / longest
            size = (max(1, round(canvas.shape[1] * factor)), max(1, round(canvas.shape[0] * factor)))
            canvas = cv2.resize(canvas, size, interpolation=cv2.INTER_AREA)
        # Per-axis scale of the detection canvas relative to the padded image (exactly 1 without downscaling).
        sx, sy = canvas.shape[1] / (w + 2 * border), canvas.shape[0] / (h + 2 * border)
        self._net.setScoreThreshold(float(score_threshold))
        self._net.setInputSize((canvas.shape[1], canvas.shape[0]))
        _, faces = self._net.detect(canvas)
        if faces is None or len(faces) == 0:
            return np.zeros((0, 15), dtype=np.float64)
        out = np.asarray(faces, dtype=np.float64).reshape(-1, 15).copy()
        xs = np.r_[0, 4:14:2]
        ys = np.r_[1, 5:14:2]
        # cv2.resize maps pixel centres as x_canvas + 0.5 = (x_padded + 0.5) * sx; then undo the border.
        out[:, xs] = (out[:, xs] + 0.5) / sx - 0.5 - border
        out[:, ys] = (out[:, ys] + 0.5) / sy - 0.5 - border
        out[:, 2] /= sx
        out[:, 3] /= sy
        return out[out[:, 14] >= score_threshold]


def nearest_to_centre(faces: np.ndarray, width: int, height: int) -> int:
    """Row of ``faces`` (``(n, 15)``, ``n >= 1``) whose box centre is nearest the image centre (ties: higher score).

    Pixel centres sit at integer coordinates, so the image centre is ``((width - 1) / 2, (height - 1) / 2)``.
    """
    cx = faces[:, 0] + faces[:, 2] / 2
    cy = faces[:, 1] + faces[:, 3] / 2
    dist2 = (cx - (width - 1) / 2) ** 2 + (cy - (height - 1) / 2) ** 2
    return int(np.lexsort((-faces[:, 14], dist2))[0])


def detect_landmarks(
    image_rgb_uint8: np.ndarray,
    detector: YuNet | None = None,
    *,
    score_threshold: float = DEFAULT_SCORE_THRESHOLD,
) -> tuple[np.ndarray, float] | None:
    """The five landmarks ``(5, 2)`` (x, y; :mod:`fr_bench.align` order) and score of the face nearest the image
    centre, or ``None`` when no face scores ``>= score_threshold``.

    ``detector`` defaults to a new :class:`YuNet` on the shipped model; pass one to reuse it over many images.
    """
    det = detector if detector is not None else YuNet()
    img = np.asarray(image_rgb_uint8)
    faces = det.detect(img, score_threshold)
    if len(faces) == 0:
        return None
    row = faces[nearest_to_centre(faces, img.shape[1], img.shape[0])]
    return row[4:14].reshape(5, 2).copy(), float(row[14])


@dataclass
class LandmarkSummary:
    """What :func:`write_landmark_file` did: images seen, faces written, and every image without landmarks."""

    root: str
    out_path: str
    missing_path: str
    n_images: int
    n_found: int
    #: ``(relative path, reason)`` of each image with no line in the landmark file.
    missing: list[tuple[str, str]] = field(default_factory=list)
    score_threshold: float = DEFAULT_SCORE_THRESHOLD
    model: str = ""

    def describe(self) -> str:
        """One paragraph for the terminal."""
        text = (f"{self.n_found} of {self.n_images} images with a face (score >= {self.score_threshold:g}): "
                f"{self.out_path}")
        if self.missing:
            text += (f"\n{len(self.missing)} images without landmarks, listed in {self.missing_path}; the protocols "
                     "stop on them, or with -o allow_missing=true (pair-list protocols) drop their pairs and flag it")
        return text


def list_images(root: str | Path, pattern: str = "**/*.jpg") -> list[str]:
    """Relative POSIX paths of the files under ``root`` matching ``pattern``, sorted; hidden files and folders
    (a path part starting with '.') are skipped."""
    base = Path(root)
    rels = []
    for p in base.glob(pattern):
        rel = p.relative_to(base)
        if any(part.startswith(".") for part in rel.parts) or not p.is_file():
            continue
        rels.append(rel.as_posix())
    return sorted(rels)


def _atomic_write(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.writelines(line + "\n" for line in lines)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def missing_path_for(out_path: str | Path) -> Path:
    """The sidecar listing the images without landmarks: ``<out>.missing.txt``."""
    p = Path(out_path)
    return p.with_name(p.name + ".missing.txt")


def write_landmark_file(
    root: str | Path,
    out_path: str | Path,
    *,
    pattern: str = "**/*.jpg",
    progress: bool = True,
    score_threshold: float = DEFAULT_SCORE_THRESHOLD,
    detector: YuNet | None = None,
) -> LandmarkSummary:
    """Detect the face of every image under ``root`` matching ``pattern`` and write the landmark file.

    Lines: ``<relative path> x1 y1 ... x5 y5 score`` (coordinates to 0.01 px, score to 1e-4; paths relative to
    ``root``, '/'-separated), the layout :func:`fr_bench.protocols.images.read_landmarks` parses. Both files are
    written atomically (temporary file + ``os.replace``). The sidecar ``<out>.missing.txt`` is always written
    (``<relative path><TAB><reason>`` per image without landmarks, after ``#`` header lines), so a stale list from
    an earlier run never survives.
    """
    from tqdm.auto import tqdm

    base = Path(root)
    if not base.is_dir():
        raise FileNotFoundError(f"{base}: not a folder")
    rels = list_images(base, pattern)
    if not rels:
        raise FileNotFoundError(f"{base}: no files match {pattern!r}")
    det = detector if detector is not None else YuNet()
    lines: list[str] = []
    missing: list[tuple[str, str]] = []
    for rel in tqdm(rels, desc="landmarks", unit="img", disable=not progress):
        if any(ch.isspace() for ch in rel):
            missing.append((rel, "the path contains whitespace, which the landmark file layout cannot hold"))
            continue
        try:
            img = read_image_file(base / rel)
        except Exception as exc:  # a corrupt file is reported, not fatal to the other images
            missing.append((rel, f"unreadable: {exc}"))
            continue
        found = detect_landmarks(img, det, score_threshold=score_threshold)
        if found is None:
            missing.append((rel, f"no face with score >= {score_threshold:g}"))
            continue
        points, score = found
        lines.append(rel + " " + " ".join(f"{v:.2f}" for v in points.ravel()) + f" {score:.4f}")
    out = Path(out_path)
    side = missing_path_for(out)
    _atomic_write(out, lines)
    header = [
        f"# images under {base} matching {pattern!r} without a line in {out.name} ({len(missing)} of {len(rels)})",
        "# <relative path><TAB><reason>",
    ]
    _atomic_write(side, header + [f"{rel}\t{why}" for rel, why in missing])
    return LandmarkSummary(
        root=str(base), out_path=str(out), missing_path=str(side), n_images=len(rels), n_found=len(lines),
        missing=missing, score_threshold=float(score_threshold), model=str(det.model_path),
    )
