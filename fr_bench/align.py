"""The one 5-point similarity alignment to the 112x112 ArcFace template.

Five landmarks, in this order: right eye (image left), left eye, nose tip, right mouth corner, left mouth corner,
in image pixel coordinates (pixel centres at integer coordinates, as OpenCV and the landmark files use them).

* :func:`estimate_similarity` fits the least-squares similarity (rotation, uniform scale, translation; Umeyama
  1991, no reflection) mapping the detected points onto the template.
* :func:`align_face` warps the image with it: ``dst(x, y) = src(M^-1 (x, y))`` for every output pixel centre,
  bilinear interpolation, pixels outside the source read as 0 -- the convention of
  ``cv2.warpAffine(img, M, (112, 112), borderValue=0)``, which the published aligned crops were made with.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

#: The ArcFace 112x112 reference positions of the five landmarks (docs/FORMATS.md), x then y.
ARCFACE_TEMPLATE = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ],
    dtype=np.float64,
)

#: Side of the crop the template is defined for.
TEMPLATE_SIZE = 112


def _as_points(points: np.ndarray, name: str) -> np.ndarray:
    p = np.asarray(points, dtype=np.float64)
    if p.ndim == 1 and p.size % 2 == 0:
        p = p.reshape(-1, 2)
    if p.ndim != 2 or p.shape[1] != 2 or p.shape[0] < 2:
        raise ValueError(f"{name} must be an (N, 2) array of x, y points with N >= 2, got shape {np.shape(points)}")
    if not np.isfinite(p).all():
        raise ValueError(f"{name} contains NaN or inf")
    return p


def estimate_similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The 2x3 similarity matrix ``M`` minimising ``sum ||M [src_i; 1] - dst_i||^2`` (Umeyama, no reflection).

    ``M = [s R | t]`` with ``R`` a rotation (det +1), ``s > 0`` a uniform scale and ``t`` a translation. With the
    centred point sets ``X = src - mean(src)``, ``Y = dst - mean(dst)`` and the SVD ``Y^T X / N = U S V^T``:
    ``R = U D V^T`` with ``D = diag(1, sign(det U V^T))``, ``s = trace(S D) / var(X)``, ``t = mean(dst) - s R
    mean(src)`` where ``var(X)`` is the mean squared norm of the centred source points.
    """
    src = _as_points(src, "src")
    dst = _as_points(dst, "dst")
    if src.shape != dst.shape:
        raise ValueError(f"src and dst must have the same shape, got {src.shape} and {dst.shape}")
    n = src.shape[0]
    mu_src, mu_dst = src.mean(axis=0), dst.mean(axis=0)
    x, y = src - mu_src, dst - mu_dst
    var_src = (x**2).sum() / n
    if var_src <= 0:
        raise ValueError("src points are all identical: no similarity transform is defined")
    cov = y.T @ x / n
    u, s, vt = np.linalg.svd(cov)
    d = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[1] = -1.0
    rot = u @ np.diag(d) @ vt
    scale = float((s * d).sum() / var_src)
    t = mu_dst - scale * rot @ mu_src
    return np.hstack([scale * rot, t[:, None]])


def template(size: int = TEMPLATE_SIZE) -> np.ndarray:
    """The template scaled to a ``size x size`` crop (``size == 112`` gives :data:`ARCFACE_TEMPLATE`)."""
    return ARCFACE_TEMPLATE * (size / TEMPLATE_SIZE)


def warp_affine(image: np.ndarray, matrix: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``cv2.warpAffine(image, matrix, size)`` semantics: bilinear, border constant 0, ``size = (width, height)``.

    Output pixel ``(x, y)`` (integer pixel centres) reads the source at ``M^-1 (x, y)``; samples falling partly
    outside the source interpolate with zeros. Values are rounded to the nearest integer for ``uint8`` input.
    """
    img = np.asarray(image)
    if img.ndim == 2:
        img = img[:, :, None]
    if img.ndim != 3:
        raise ValueError(f"image must be HxW or HxWxC, got shape {np.shape(image)}")
    h, w = img.shape[:2]
    out_w, out_h = size
    m = np.asarray(matrix, dtype=np.float64)
    full = np.vstack([m, [0.0, 0.0, 1.0]])
    inv = np.linalg.inv(full)[:2]
    xs, ys = np.meshgrid(np.arange(out_w, dtype=np.float64), np.arange(out_h, dtype=np.float64))
    src_x = inv[0, 0] * xs + inv[0, 1] * ys + inv[0, 2]
    src_y = inv[1, 0] * xs + inv[1, 1] * ys + inv[1, 2]
    # grid_sample with align_corners=True puts -1 / +1 on the first / last pixel centres: integer-centre coordinates.
    gx = 2.0 * src_x / max(w - 1, 1) - 1.0
    gy = 2.0 * src_y / max(h - 1, 1) - 1.0
    grid = torch.from_numpy(np.stack([gx, gy], axis=-1)[None])
    src = torch.from_numpy(np.ascontiguousarray(img, dtype=np.float64)).permute(2, 0, 1)[None]
    out = F.grid_sample(src, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
    out = out[0].permute(1, 2, 0).numpy()
    if img.dtype == np.uint8:
        out = np.clip(np.rint(out), 0, 255).astype(np.uint8)
    else:
        out = out.astype(img.dtype, copy=False)
    return out if np.asarray(image).ndim == 3 else out[:, :, 0]


def align_face(image: np.ndarray, landmarks: np.ndarray, size: int = TEMPLATE_SIZE) -> np.ndarray:
    """``image`` (HxWx3 ``uint8`` RGB) warped so that its five ``landmarks`` (5x2, x/y) land on the template.

    Returns a ``size x size x 3`` ``uint8`` crop (bilinear, border 0). ``size`` other than 112 scales the template.
    """
    img = np.asarray(image)
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"image must be HxWx3 RGB, got shape {img.shape}")
    pts = _as_points(landmarks, "landmarks")
    if pts.shape != (5, 2):
        raise ValueError(f"landmarks must be 5x2 (x, y of the five points), got shape {pts.shape}")
    matrix = estimate_similarity(pts, template(size))
    return warp_affine(img, matrix, (size, size))
