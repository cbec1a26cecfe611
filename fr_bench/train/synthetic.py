"""Synthetic identity-labelled face-like images, generated on the fly from a seed (no download, any size).

An identity is a random vector (face width and height, skin tone, hair colour and volume, eye spacing, height, size
and colour, brow thickness and tilt, nose length and width, mouth position, width and lip colour, beard strength,
a low-frequency skin texture). An image of it is a stack of soft-edged ellipses in a canonical face frame, drawn
through a per-image similarity transform, then degraded:

* intra-class variation, every amount scaled by ``intra_class`` (0: the face is identical in every image of an
  identity before degradation, only the background differs): roll rotation (sd 7 deg), shift (sd 5% of the frame),
  scale (sd 5%), a yaw-like shift of the inner features, expressions (mouth opening, smile, eye closure, brow
  raise), skin-colour jitter, a lighting gradient; the background colour is random per image;
* quality degradations, each applied with probability ``degrade_prob`` with an amount uniform in its range in
  ``quality``: ``blur`` (Gaussian sigma in pixels of a 64-pixel image, scaled with ``image_size``), ``noise``
  (Gaussian sd on the 0..255 scale), ``occlusion`` (a flat rectangle over that fraction of the image), ``brightness``
  (a gain factor). The amounts are recorded per image (``quality[i]``, 0 or gain 1 where not applied) with one
  score ``quality_score[i] = prod_k (1 - severity_k / 2)`` in ``[1/16, 1]`` (1 = clean), where severities are
  ``min(1, blur / 2)``, ``min(1, noise / 20)``, ``min(1, occlusion / 0.3)``, ``min(1, |ln brightness| / ln 2)``.

Class sizes follow a power law (long tail): class ``c`` has ``max(min_images, round(images_per_class * (c + 1) **
-imbalance))`` images (``imbalance = 0``: balanced; class 0 is the largest). With ``label_noise = p`` each image's
label is replaced, with probability ``p``, by a uniformly drawn *other* class (``true_labels`` keeps the truth;
draws from ``default_rng([seed, split code, 2])``).

Determinism: image ``i`` is a pure function of ``(seed, split, i)`` and the options: its nuisance and degradation
draws come from ``numpy.random.default_rng([seed, split code, 0, i])`` in a fixed order (switching one degradation
off changes nothing else); identity ``c`` is row ``c`` of one uniform matrix drawn from ``default_rng([seed, split
code, 1])`` (so it does not depend on ``num_classes``). The train and test splits draw their identities from
different streams: no identity is shared. :func:`write_test_protocol` writes a test split that the ``folder``
protocol reads.

Held-out images of the same identities: ``nuisance_stream = k > 0`` keeps the identities, class sizes and labels
and draws every image's nuisances and degradations from ``default_rng([seed, split code, 2 + k, i])`` instead
(the study's held-out set for IR-Softmax's tail-class claim is ``split="train", nuisance_stream=1``).

Speed: about 1-1.7 ms of CPU per 64x64 image, measured on a busy shared 2-core machine (per-feature windows,
channels-first float32 blending). Rendered images are kept in memory as they are read when the split fits in
:data:`CACHE_LIMIT_BYTES`, so epochs after the first (and every recipe of a study sharing one dataset object) cost
nothing to generate.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageFilter

from fr_bench.train.data import TrainDataset, resize_uint8

SPLITS = {"train": 0, "test": 1}
#: Default degradation ranges (see the module docstring for units).
DEFAULT_QUALITY: dict[str, tuple[float, float]] = {
    "blur": (0.5, 2.0), "noise": (2.0, 16.0), "occlusion": (0.05, 0.25), "brightness": (0.55, 1.6)}
#: Rendered images are kept in memory (filled as they are read) when the split takes at most this many bytes.
CACHE_LIMIT_BYTES = 512 * 1024 * 1024
_SEVERITY_SCALE = {"blur": 2.0, "noise": 20.0, "occlusion": 0.3}
_N_ID = 36   # identity parameters (uniform draws)
_N_IMG = 48  # per-image uniform draws: 0-7 pose, 8-19 expression, 20-27 degradations, 28-41 the rest


def _lerp(u: np.ndarray | float, lo: float, hi: float) -> Any:
    return lo + (hi - lo) * u


def quality_score(quality: Mapping[str, float]) -> float:
    """The scalar quality of one image from its recorded degradations (definition in the module docstring)."""
    sev = [min(1.0, quality.get(k, 0.0) / s) for k, s in _SEVERITY_SCALE.items()]
    sev.append(min(1.0, abs(math.log(quality.get("brightness", 1.0))) / math.log(2.0)))
    return float(np.prod([1.0 - s / 2.0 for s in sev]))


def class_sizes(num_classes: int, images_per_class: int, imbalance: float, min_images: int) -> np.ndarray:
    """Images per class: ``max(min_images, round(images_per_class * (c + 1) ** -imbalance))``."""
    c = np.arange(num_classes, dtype=np.float64)
    return np.maximum(min_images, np.round(images_per_class * (c + 1.0) ** -float(imbalance))).astype(np.int64)


def _normals(u: list[float], i: int, j: int, n: int) -> list[float]:
    """``n`` standard normals from uniforms ``u[i:i+n]``, ``u[j:j+n]`` (Box-Muller)."""
    return [math.sqrt(-2.0 * math.log(max(a, 1e-12))) * math.cos(2.0 * math.pi * b) for a, b in zip(u[i:i + n], u[j:j + n])]


class SyntheticFaces(TrainDataset):
    """Synthetic face-like identities (see the module docstring): ``(uint8 HWC RGB tensor, label)`` items.

    ``quality`` maps ``blur``/``noise``/``occlusion``/``brightness`` to ``(low, high)`` ranges (missing keys take
    :data:`DEFAULT_QUALITY`; ``(0, 0)`` or gain ``(1, 1)`` disables one); ``quality=None`` disables them all.
    """

    def __init__(
        self,
        split: str = "train",
        num_classes: int = 100,
        images_per_class: int = 20,
        image_size: int = 64,
        seed: int = 0,
        *,
        intra_class: float = 1.0,
        quality: Mapping[str, tuple[float, float]] | None = DEFAULT_QUALITY,
        degrade_prob: float = 0.3,
        imbalance: float = 0.0,
        min_images: int = 2,
        label_noise: float = 0.0,
        nuisance_stream: int = 0,
        cache: bool | None = None,
    ) -> None:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {sorted(SPLITS)}, got {split!r}")
        if int(nuisance_stream) < 0:
            raise ValueError(f"nuisance_stream must be >= 0, got {nuisance_stream}")
        if num_classes < 1 or images_per_class < 1 or min_images < 1 or image_size < 16:
            raise ValueError("num_classes, images_per_class and min_images must be >= 1 and image_size >= 16")
        if not 0.0 <= label_noise <= 1.0 or not 0.0 <= degrade_prob <= 1.0 or intra_class < 0 or imbalance < 0:
            raise ValueError("label_noise and degrade_prob must lie in [0, 1]; intra_class and imbalance >= 0")
        q = {k: (0.0, 0.0) for k in ("blur", "noise", "occlusion")} | {"brightness": (1.0, 1.0)}
        if quality is not None:
            unknown = set(quality) - set(DEFAULT_QUALITY)
            if unknown:
                raise ValueError(f"unknown quality keys {sorted(unknown)}; expected {sorted(DEFAULT_QUALITY)}")
            q = {k: tuple(float(v) for v in quality.get(k, DEFAULT_QUALITY[k])) for k in DEFAULT_QUALITY}
            bad = [k for k, (lo, hi) in q.items() if not (0 <= lo <= hi and (k != "brightness" or lo > 0))]
            if bad:
                raise ValueError(f"quality ranges must be (low, high) with 0 <= low <= high (brightness > 0): {bad}")
        self.options: dict[str, Any] = {
            "split": split, "num_classes": int(num_classes), "images_per_class": int(images_per_class),
            "image_size": int(image_size), "seed": int(seed), "intra_class": float(intra_class),
            "quality": {k: list(v) for k, v in q.items()}, "degrade_prob": float(degrade_prob),
            "imbalance": float(imbalance), "min_images": int(min_images), "label_noise": float(label_noise)}
        if nuisance_stream:
            self.options["nuisance_stream"] = int(nuisance_stream)
        self.nuisance_stream = int(nuisance_stream)
        self.split, self.seed, self.image_size = split, int(seed), int(image_size)
        self.intra_class, self.degrade_prob = float(intra_class), float(degrade_prob)
        self.quality_ranges = q
        self._code = SPLITS[split]
        self.num_classes = int(num_classes)
        self.sizes = class_sizes(num_classes, images_per_class, imbalance, min_images)
        self.true_labels = np.repeat(np.arange(num_classes, dtype=np.int64), self.sizes)
        u = np.random.default_rng([self.seed, self._code, 2]).random((self.true_labels.size, 2))
        flip = u[:, 0] < label_noise if num_classes > 1 else np.zeros(len(u), bool)
        other = (self.true_labels + 1 + np.floor(u[:, 1] * (num_classes - 1)).astype(np.int64)) % num_classes
        self.labels = np.where(flip, other, self.true_labels)
        self.identities = np.random.default_rng([self.seed, self._code, 1]).random((num_classes, _N_ID))
        s = self.image_size
        g = (np.arange(s, dtype=np.float32) + 0.5) / s * 2.0 - 1.0
        self._grid = np.meshgrid(g, g)  # x (right), y (down), in [-1, 1]
        self._quality: list[dict[str, float]] | None = None
        n_bytes = len(self.true_labels) * self.image_size ** 2 * 3
        self.cache = bool(n_bytes <= CACHE_LIMIT_BYTES) if cache is None else bool(cache)
        self._images: np.ndarray | None = None  # rendered images, filled lazily when caching
        self._done: np.ndarray | None = None

    # -- per-image parameters ---------------------------------------------------------------------------------------
    def _rng(self, index: int) -> np.random.Generator:
        stream = 0 if self.nuisance_stream == 0 else 2 + self.nuisance_stream
        return np.random.default_rng([self.seed, self._code, stream, int(index)])

    def _degradations(self, u: list[float] | np.ndarray) -> dict[str, float]:
        """Recorded degradation amounts from the image's uniform draws ``u[20:28]``."""
        out = {}
        for j, k in enumerate(("blur", "noise", "occlusion", "brightness")):
            lo, hi = self.quality_ranges[k]
            on = u[20 + 2 * j] < self.degrade_prob
            rest = 1.0 if k == "brightness" else 0.0
            out[k] = float(_lerp(u[21 + 2 * j], lo, hi)) if on else rest
        return out

    @property
    def quality(self) -> list[dict[str, float]]:
        """Per image: the recorded ``blur``, ``noise``, ``occlusion`` (0 = none) and ``brightness`` (1 = none)."""
        if self._quality is None:
            self._quality = [self._degradations(self._rng(i).random(_N_IMG).tolist()) for i in range(len(self))]
        return self._quality

    @property
    def quality_score(self) -> np.ndarray:
        """Per image: :func:`quality_score` of ``quality[i]`` (1 = clean)."""
        return np.asarray([quality_score(q) for q in self.quality])

    # -- rendering --------------------------------------------------------------------------------------------------
    def _blobs(self, p: list[float], u: list[float]) -> list[tuple[float, ...]]:
        """Ellipses ``(cx, cy, rx, ry, angle, opacity, r, g, b)``, back to front, in the canonical face frame
        (``p``: identity draws, ``u``: the image's draws; plain floats, this runs once per image)."""
        ic = self.intra_class
        z = _normals(u, 8, 14, 6)
        yaw = min(1.0, max(-1.0, 0.35 * ic * z[0]))
        mouth_open = min(1.0, ic * u[33] ** 2)
        smile = min(1.0, max(-1.0, 0.5 * ic * z[1]))
        eye_open = min(1.0, max(0.15, 1.0 - 0.6 * ic * u[34] ** 3))
        brow_up = 0.02 * ic * z[2]
        fw, fh = _lerp(p[0], 0.38, 0.54) * (1 - 0.12 * abs(yaw)), _lerp(p[1], 0.52, 0.70)
        red = _lerp(p[3], -15.0, 15.0)
        skin = [(b + p[2] * d + red * r) * (1 + 0.05 * ic * zz)
                for b, d, r, zz in zip((95, 60, 42), (150, 140, 128), (1, -0.3, -0.6), z[3:6])]
        hair = [20 + p[4] * 150, 15 + p[4] * 100 * _lerp(p[5], 0.5, 1), 10 + p[4] * 50 * _lerp(p[6], 0.2, 1)]
        iris = [_lerp(p[14], 30, 120), _lerp(p[15], 30, 110), _lerp(p[16], 20, 110)]
        lips = [skin[0] * _lerp(p[25], 0.75, 1.0), skin[1] * _lerp(p[26], 0.45, 0.7), skin[2] * _lerp(p[26], 0.45, 0.7)]
        ox = 0.12 * fw * yaw
        ex, ey, erx = _lerp(p[10], 0.14, 0.24), _lerp(p[11], -0.20, -0.05), _lerp(p[12], 0.06, 0.10)
        ery = erx * _lerp(p[13], 0.4, 0.7) * eye_open
        bth, bgap, btilt = _lerp(p[17], 0.015, 0.04), _lerp(p[18], 0.06, 0.12), _lerp(p[19], -0.3, 0.3)
        nl, nw = _lerp(p[20], 0.10, 0.22), _lerp(p[21], 0.035, 0.07)
        my, mw, lip = _lerp(p[22], 0.22, 0.36), _lerp(p[23], 0.10, 0.20) * (1 + 0.15 * smile), _lerp(p[24], 0.02, 0.05)
        beard = max(0.0, 2.0 * p[27] - 1.4) / 0.6
        hv, hl = _lerp(p[8], 0.0, 0.14), _lerp(p[9], 0.10, 0.25)
        by = ey - bgap - brow_up
        iry = min(ery, erx * 0.45)
        brow = [0.8 * c for c in hair]
        white = (235.0, 235.0, 230.0)
        return [
            (0.0, -0.12 - hv / 2, fw + 0.06 + hv, fh * 0.85 + hv, 0.0, 1.0, *hair),   # hair behind the head
            (0.0, fh * 0.9, fw * 0.55, 0.35, 0.0, 1.0, *(0.85 * c for c in skin)),     # neck
            (0.0, 0.05, fw, fh, 0.0, 1.0, *skin),                                      # face (textured)
            (0.0, -fh + 0.02 + hl / 2, fw * 0.98, hl, 0.0, 1.0, *hair),                # hairline
            (-ex + ox, ey, erx, ery, 0.0, 1.0, *white), (ex + ox, ey, erx, ery, 0.0, 1.0, *white),
            (-ex + ox * 1.3, ey, erx * 0.45, iry, 0.0, 1.0, *iris), (ex + ox * 1.3, ey, erx * 0.45, iry, 0.0, 1.0, *iris),
            (-ex + ox, by, erx * 1.2, bth, btilt - 0.15 * smile, 1.0, *brow),
            (ex + ox, by, erx * 1.2, bth, -btilt + 0.15 * smile, 1.0, *brow),
            (ox * 1.5, ey + 0.05 + nl / 2, nw, nl / 2, 0.0, 1.0, *(0.78 * c for c in skin)),  # nose
            (ox, my + 0.1, mw * 1.6, 0.16, 0.0, beard, *(0.9 * c for c in hair)),         # beard
            (ox, my, mw, lip * (1 + 1.5 * mouth_open), 0.0, 1.0, *lips),                   # mouth
            (ox, my, mw * 0.8, lip * 1.5 * mouth_open + 1e-3, 0.0, min(1.0, 2 * mouth_open), 40.0, 20.0, 25.0),
        ]

    def render(self, index: int) -> np.ndarray:
        """Image ``index`` as an ``(image_size, image_size, 3)`` ``uint8`` RGB array."""
        if self._done is not None and self._done[index]:
            return self._images[index]
        img = self._render(index)
        if self.cache:
            if self._images is None:
                self._images = np.empty((len(self), self.image_size, self.image_size, 3), dtype=np.uint8)
                self._done = np.zeros(len(self), dtype=bool)
            self._images[index] = img
            self._done[index] = True
        return img

    def _render(self, index: int) -> np.ndarray:
        rng = self._rng(index)
        ua = rng.random(_N_IMG)
        u = ua.tolist()
        p = self.identities[self.true_labels[index]].tolist()
        ic, s = self.intra_class, self.image_size
        z = _normals(u, 0, 4, 4)
        th, sc = math.radians(7.0) * ic * z[0], math.exp(0.05 * ic * z[1])
        tx, ty = 0.05 * ic * z[2], 0.05 * ic * z[3]
        x, y = self._grid
        c, sn = math.cos(th), math.sin(th)
        xs, ys = x - tx, y - ty
        cu, cv = (c / sc) * xs + (sn / sc) * ys, (c / sc) * ys - (sn / sc) * xs  # canonical coordinates
        img = np.empty((3, s, s), dtype=np.float32)  # channels first: contiguous rows make the blending fast
        img[:] = np.asarray([_lerp(v, 40.0, 200.0) for v in u[28:31]], dtype=np.float32)[:, None, None]
        half = s / 2.0
        for k, (bx, by, rx, ry, ang, op, *colour) in enumerate(self._blobs(p, u)):
            if op <= 0:
                continue
            # the blob's pixel window: its centre mapped to the image, its largest radius plus a margin
            px = (sc * (c * bx - sn * by) + tx + 1.0) * half - 0.5
            py = (sc * (sn * bx + c * by) + ty + 1.0) * half - 0.5
            r = max(rx, ry) * sc * half + 2.0
            y0, y1 = max(0, int(py - r)), min(s, int(py + r) + 2)
            x0, x1 = max(0, int(px - r)), min(s, int(px + r) + 2)
            if y0 >= y1 or x0 >= x1:
                continue
            du, dv = cu[y0:y1, x0:x1] - bx, cv[y0:y1, x0:x1] - by
            if ang:
                ca, sa = math.cos(ang), math.sin(ang)
                du, dv = du * ca + dv * sa, dv * ca - du * sa
            du *= 1.0 / rx
            dv *= 1.0 / ry
            du *= du
            dv *= dv
            du += dv
            # alpha = clip((1 - d2) * sharpness, 0, 1) * opacity: an edge about 2.5 pixels wide
            sharp = min(rx, ry) * s / 5.0 + 1.0
            alpha = np.minimum(np.maximum(sharp - sharp * du, 0.0, out=du), 1.0, out=du)
            if op < 1:
                alpha *= op
            col = np.asarray(colour, dtype=np.float32)[:, None, None]
            if k == 2:  # the face: identity skin texture, a product of two low-frequency sinusoids
                tex = np.sin(_lerp(p[28], 3, 9) * cu[y0:y1, x0:x1] + _lerp(p[29], 0, 6.3))
                tex *= np.sin(_lerp(p[30], 3, 9) * cv[y0:y1, x0:x1] + _lerp(p[31], 0, 6.3))
                tex *= _lerp(p[33], 0.0, 0.12)
                tex += 1.0
                col = tex * col
            win = img[:, y0:y1, x0:x1]
            d = col - win
            d *= alpha
            win += d
        g, phi = 0.35 * ic * u[31], 6.3 * u[32]
        light = (g * math.cos(phi)) * x + (g * math.sin(phi)) * y
        light += 1.0
        img *= light
        return self._degrade(img, u, rng)

    def _degrade(self, img: np.ndarray, u: list[float], rng: np.random.Generator) -> np.ndarray:
        """Brightness, occlusion, blur, noise (in that order) as ``quality[i]`` records them; -> uint8."""
        q = self._degradations(u)
        s = self.image_size
        if q["brightness"] != 1.0:
            img *= q["brightness"]
        if q["occlusion"] > 0:
            area = q["occlusion"] * s * s
            aspect = math.exp(_lerp(u[35], -0.7, 0.7))
            h = int(round(min(s, math.sqrt(area / aspect))))
            w = int(round(min(s, area / max(h, 1))))
            y0 = int(_lerp(u[36], 0.15, 0.85) * s - h / 2)
            x0 = int(_lerp(u[37], 0.15, 0.85) * s - w / 2)
            fill = np.asarray([_lerp(v, 0.0, 255.0) for v in u[38:41]], dtype=np.float32)[:, None, None]
            img[:, max(0, y0):max(0, y0 + h), max(0, x0):max(0, x0 + w)] = fill
        np.clip(img, 0, 255, out=img)
        out = np.empty((s, s, 3), dtype=np.uint8)
        out[...] = np.rint(img).transpose(1, 2, 0)
        if q["blur"] > 0:  # Pillow's Gaussian blur (extended box filter), sigma in pixels of this image
            out = np.array(Image.fromarray(out).filter(ImageFilter.GaussianBlur(q["blur"] * s / 64.0)))
        if q["noise"] > 0:
            noise = rng.standard_normal(out.shape, dtype=np.float32)
            noise *= q["noise"]
            noise += out
            np.rint(noise, out=noise)
            np.clip(noise, 0, 255, out=noise)
            out = noise.astype(np.uint8)
        return out

    def load_image(self, index: int) -> np.ndarray:
        return self.render(index)

    def materialize(self) -> np.ndarray:
        """Render every image into the in-memory cache now (``(N, S, S, 3)`` uint8, caching switched on)."""
        self.cache = True
        for i in range(len(self)):
            self.render(i)
        assert self._images is not None
        return self._images

    def describe(self) -> dict[str, Any]:
        return {"kind": "synthetic", "path": None, "num_classes": self.num_classes, "num_images": len(self),
                "min_per_class": int(self.sizes.min()), "max_per_class": int(self.sizes.max()),
                "seed": self.seed, "options": dict(self.options)}


def _impostor_pairs(labels: np.ndarray, n: int, rng: np.random.Generator) -> list[tuple[int, int]]:
    """``n`` distinct unordered pairs ``(i < j)`` with different labels, uniform (all of them if fewer exist)."""
    m = labels.size
    counts = np.bincount(labels)
    total = (m * (m - 1) - int((counts * (counts - 1)).sum())) // 2
    if n >= total:
        i, j = np.triu_indices(m, k=1)
        keep = labels[i] != labels[j]
        return list(zip(i[keep].tolist(), j[keep].tolist()))
    chosen: set[tuple[int, int]] = set()
    while len(chosen) < n:
        a, b = rng.integers(0, m, size=2).tolist()
        if labels[a] != labels[b]:
            chosen.add((min(a, b), max(a, b)))
    return sorted(chosen)


def write_test_protocol(out_dir: str | Path, *, crop_size: int = 112, impostors_per_genuine: float = 1.0,
                        **options: Any) -> Path:
    """Write the synthetic **test** split (``SyntheticFaces(split="test", **options)``) as a ``folder`` protocol
    root and return it: ``frbench evaluate -m CKPT -p folder -r OUT_DIR -o pairs=pairs.txt`` scores it.

    * ``id<class:05d>/<image index:06d>.png``: each image upsampled to ``crop_size`` (the folder protocol reads
      aligned 112x112 crops) by :func:`fr_bench.train.data.resize_uint8`; folders follow the true identity (label
      noise, a training nuisance, is ignored here);
    * ``pairs.txt``: ``<image A> <image B> <1|0>``: every genuine pair, then ``impostors_per_genuine`` times as many
      impostor pairs drawn uniformly without replacement (``default_rng([seed, 1, 3])``);
    * ``quality.csv``: ``image,score`` (keys as the protocol names images: the relative paths; score =
      ``quality_score[i]``); ``degradations.csv``: the recorded amounts; ``synthetic.json``: the generator options.

    The tree is written to a temporary folder and renamed into place: nothing half-written is left. Re-running with
    the same options on an existing output returns it unchanged; different content there is an error.
    """
    if "split" in options:
        raise TypeError("write_test_protocol always writes the test split; do not pass split")
    ds = SyntheticFaces(split="test", **options)
    out = Path(out_dir)
    meta = {"generator": "fr_bench.train.synthetic", "crop_size": int(crop_size),
            "impostors_per_genuine": float(impostors_per_genuine), **ds.describe()}
    if out.exists():
        old = out / "synthetic.json"
        if old.is_file() and json.loads(old.read_text()) == json.loads(json.dumps(meta)):
            return out
        if any(out.iterdir()):
            raise FileExistsError(f"{out}: exists and does not hold this synthetic test split; choose another folder")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        labels = ds.true_labels
        rels = [f"id{c:05d}/{i:06d}.png" for i, c in enumerate(labels.tolist())]
        for c in range(ds.num_classes):
            (tmp / f"id{c:05d}").mkdir()
        for i, rel in enumerate(rels):
            img = resize_uint8(torch.from_numpy(ds.render(i))[None], (crop_size, crop_size))[0].numpy()
            Image.fromarray(img).save(tmp / rel)
        starts = np.concatenate([[0], np.cumsum(ds.sizes)[:-1]]).tolist()
        genuine: list[tuple[int, int]] = []
        for c, n_c in enumerate(ds.sizes.tolist()):  # images of a class are contiguous
            i, j = np.triu_indices(n_c, k=1)
            genuine += zip((starts[c] + i).tolist(), (starts[c] + j).tolist())
        rng = np.random.default_rng([ds.seed, SPLITS["test"], 3])
        impostor = _impostor_pairs(labels, int(round(impostors_per_genuine * len(genuine))), rng)
        lines = [f"{rels[a]} {rels[b]} 1" for a, b in genuine] + [f"{rels[a]} {rels[b]} 0" for a, b in impostor]
        (tmp / "pairs.txt").write_text("# synthetic test split: <image A> <image B> <1 genuine | 0 impostor>\n"
                                       + "\n".join(lines) + "\n")
        scores = ds.quality_score
        (tmp / "quality.csv").write_text("image,score\n" + "".join(f"{r},{float(scores[i])!r}\n" for i, r in enumerate(rels)))
        rows = "".join(f"{r},{labels[i]},{q['blur']!r},{q['noise']!r},{q['occlusion']!r},{q['brightness']!r}\n"
                       for i, (r, q) in enumerate(zip(rels, ds.quality)))
        (tmp / "degradations.csv").write_text("image,identity,blur,noise,occlusion,brightness\n" + rows)
        (tmp / "synthetic.json").write_text(json.dumps(meta, indent=1) + "\n")
        if out.exists():
            out.rmdir()
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out
