"""Fixture writers for the pair benchmarks, in their real on-disk formats (docs/FORMATS.md).

* :func:`write_bin`: an insightface ``.bin`` pack (a real pickle of ``(bins, issame_list)``).
* :func:`write_lfw`: an LFW tree ``lfw/<Name>/<Name>_NNNN.jpg`` + ``pairs.txt`` (``10\\t300`` layout).
* :func:`write_cfp`: a CFP tree ``Data/Images/...`` + ``Protocol/Pair_list_[FP].txt`` + ``Protocol/Split/..``.
* :func:`write_consecutive_pairs`: a CALFW/CPLFW pair list (two lines per pair, ``<image> <label>``).
* :func:`write_landmarks`: a ``<relpath> x1 y1 ... x5 y5 score`` landmark file.

Images are tiny and synthetic (:func:`tiny_face`); the same arrays are encoded once and reused.
"""

from __future__ import annotations

import io
import pickle
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image


def tiny_face(seed: int, size: int = 112) -> np.ndarray:
    """A deterministic ``size x size x 3`` uint8 image (smooth colour gradient + a seeded tint)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size]
    base = np.stack([x * 255 // max(size - 1, 1), y * 255 // max(size - 1, 1), (x + y) * 127 // max(size - 1, 1)], -1)
    tint = rng.integers(0, 64, size=3)
    return np.clip(base + tint, 0, 255).astype(np.uint8)


def encode(image: np.ndarray, encoding: str = "png") -> bytes:
    """``image`` (HxWx3 uint8) as PNG or JPEG (quality 95) bytes."""
    buf = io.BytesIO()
    fmt = {"png": "PNG", "jpg": "JPEG", "jpeg": "JPEG"}[encoding]
    Image.fromarray(image).save(buf, format=fmt, **({"quality": 95} if fmt == "JPEG" else {}))
    return buf.getvalue()


def write_bin(
    path: str | Path,
    images: Sequence[np.ndarray | bytes],
    issame: Sequence[bool],
    encoding: str = "png",
    protocol: int = pickle.HIGHEST_PROTOCOL,
    item_type: str = "bytes",
    label_type: str = "bool",
) -> Path:
    """Write an insightface ``.bin`` pack: ``pickle.dump((bins, issame_list), f, protocol)``.

    ``images``: 2*N uint8 arrays (encoded with ``encoding``; identical array objects are encoded once) or already
    encoded bytes. ``item_type``: how each encoded image is stored: ``"bytes"`` (Python-3 packs; a Python-2 pack's
    ``str`` reads back as bytes too), ``"bytearray"`` or ``"ndarray"`` (1-D uint8 numpy array). ``label_type``:
    ``"bool"`` (Python bools), ``"numpy"`` (``numpy.bool_`` items) or ``"array"`` (one numpy bool array).
    """
    cache: dict[int, bytes] = {}
    bins: list = []
    for img in images:
        if isinstance(img, (bytes, bytearray)):
            data = bytes(img)
        else:
            key = id(img)
            if key not in cache:
                cache[key] = encode(np.asarray(img), encoding)
            data = cache[key]
        if item_type == "bytes":
            bins.append(data)
        elif item_type == "bytearray":
            bins.append(bytearray(data))
        elif item_type == "ndarray":
            bins.append(np.frombuffer(data, dtype=np.uint8).copy())
        else:
            raise ValueError(item_type)
    if label_type == "bool":
        labels: object = [bool(v) for v in issame]
    elif label_type == "numpy":
        labels = [np.bool_(v) for v in issame]
    elif label_type == "array":
        labels = np.asarray(issame, dtype=bool)
    else:
        raise ValueError(label_type)
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    with open(p, "wb") as f:
        pickle.dump((bins, labels), f, protocol=protocol)
    return p


def write_image(path: Path, image: np.ndarray, encoding: str | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(encode(image, encoding or ("png" if path.suffix.lower() == ".png" else "jpg")))


def lfw_pair_lines(
    names: Sequence[str], n_images: int, n_folds: int = 10, per_fold: int = 300, seed: int = 0
) -> list[tuple]:
    """``n_folds`` x (``per_fold`` matched + ``per_fold`` mismatched) pair tuples over ``names`` with
    ``n_images`` images each: matched ``(name, n1, n2)``, mismatched ``(name1, n1, name2, n2)`` (1-based)."""
    rng = np.random.default_rng(seed)
    out: list[tuple] = []
    for _ in range(n_folds):
        for _ in range(per_fold):
            name = names[rng.integers(len(names))]
            a, b = rng.choice(n_images, size=2, replace=False) + 1
            out.append((name, int(a), int(b)))
        for _ in range(per_fold):
            i, j = rng.choice(len(names), size=2, replace=False)
            out.append((names[i], int(rng.integers(n_images)) + 1, names[j], int(rng.integers(n_images)) + 1))
    return out


def write_lfw(
    root: str | Path,
    names: Sequence[str] = ("Alice_A", "Bob_B", "Carol_C", "Dan_D"),
    n_images: int = 3,
    n_folds: int = 10,
    per_fold: int = 300,
    image_dir: str = "lfw",
    size: int = 112,
    pairs: Sequence[tuple] | None = None,
    header: str | None = None,
    seed: int = 0,
) -> tuple[Path, list[tuple]]:
    """Write ``root/pairs.txt`` and ``root/<image_dir>/<Name>/<Name>_NNNN.jpg`` (``size`` square images).

    Returns ``(root, pair tuples in file order)``. ``pairs`` overrides the generated pair tuples, ``header`` the
    first line (default ``f"{n_folds}\\t{per_fold}"``).
    """
    base = Path(root)
    for k, name in enumerate(names):
        for n in range(1, n_images + 1):
            write_image(base / image_dir / name / f"{name}_{n:04d}.jpg", tiny_face(k * 100 + n, size))
    if pairs is None:
        pairs = lfw_pair_lines(names, n_images, n_folds, per_fold, seed)
    lines = [header if header is not None else f"{n_folds}\t{per_fold}"]
    lines += ["\t".join(str(v) for v in p) for p in pairs]
    (base / "pairs.txt").write_text("\n".join(lines) + "\n")
    return base, list(pairs)


def write_cfp(
    root: str | Path,
    n_ids: int = 6,
    n_frontal: int = 3,
    n_profile: int = 2,
    per_file: int = 350,
    size: int = 112,
    seed: int = 0,
) -> tuple[Path, dict]:
    """A CFP tree: ``Data/Images/<id>/frontal|profile/NN.jpg``, ``Protocol/Pair_list_F.txt``/``_P.txt`` (paths
    relative to ``Protocol/``), and ``Protocol/Split/FF|FP/01..10/same.txt, diff.txt`` with ``per_file`` lines.

    Returns ``(root, info)``: ``info["F"]``/``info["P"]`` map index -> relative path from root;
    ``info["FF"]``/``info["FP"]`` are per fold ``(same list, diff list)`` of ``(i, j)``.
    """
    base = Path(root)
    rng = np.random.default_rng(seed)
    f_index: dict[int, str] = {}
    p_index: dict[int, str] = {}
    owner_f: dict[int, int] = {}
    owner_p: dict[int, int] = {}
    for ident in range(1, n_ids + 1):
        for k in range(1, n_frontal + 1):
            rel = f"Data/Images/{ident:03d}/frontal/{k:02d}.jpg"
            write_image(base / rel, tiny_face(ident * 100 + k, size))
            idx = len(f_index) + 1
            f_index[idx], owner_f[idx] = rel, ident
        for k in range(1, n_profile + 1):
            rel = f"Data/Images/{ident:03d}/profile/{k:02d}.jpg"
            write_image(base / rel, tiny_face(ident * 100 + 50 + k, size))
            idx = len(p_index) + 1
            p_index[idx], owner_p[idx] = rel, ident
    proto = base / "Protocol"
    proto.mkdir(parents=True, exist_ok=True)
    (proto / "Pair_list_F.txt").write_text("".join(f"{i} ../{r}\n" for i, r in f_index.items()))
    (proto / "Pair_list_P.txt").write_text("".join(f"{i} ../{r}\n" for i, r in p_index.items()))
    info: dict = {"F": f_index, "P": p_index}
    for split, second, owner2 in (("FF", f_index, owner_f), ("FP", p_index, owner_p)):
        folds = []
        for fold in range(1, 11):
            same, diff = [], []
            while len(same) < per_file or len(diff) < per_file:
                i = int(rng.integers(1, len(f_index) + 1))
                j = int(rng.integers(1, len(second) + 1))
                if owner_f[i] == owner2[j] and len(same) < per_file and (split == "FP" or i != j):
                    same.append((i, j))
                elif owner_f[i] != owner2[j] and len(diff) < per_file:
                    diff.append((i, j))
            d = proto / "Split" / split / f"{fold:02d}"
            d.mkdir(parents=True, exist_ok=True)
            (d / "same.txt").write_text("".join(f"{i},{j}\n" for i, j in same))
            (d / "diff.txt").write_text("".join(f"{i},{j}\n" for i, j in diff))
            folds.append((same, diff))
        info[split] = folds
    return base, info


def write_consecutive_pairs(path: str | Path, pairs: Sequence[tuple[str, str, int, int]]) -> Path:
    """A CALFW/CPLFW list: for each ``(image A, image B, label A, label B)`` two lines ``<image> <label>``."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text("".join(f"{a} {la}\n{b} {lb}\n" for a, b, la, lb in pairs))
    return p


def write_landmarks(path: str | Path, rows: dict[str, np.ndarray], score: float | None = 0.99) -> Path:
    """A landmark file: ``<relpath> x1 y1 ... x5 y5 [score]`` per entry of ``rows`` (5x2 arrays)."""
    p = Path(path)
    lines = []
    for rel, pts in rows.items():
        vals = " ".join(f"{v:.4f}" for v in np.asarray(pts, dtype=float).reshape(-1))
        lines.append(f"{rel} {vals}" + (f" {score}" if score is not None else ""))
    p.write_text("\n".join(lines) + "\n")
    return p
