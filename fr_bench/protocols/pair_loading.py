"""Building pair protocols from files: insightface ``.bin`` packs, official layouts, image pair lists.

* :func:`bin_protocol`: a pack's pairs (images 2k, 2k+1) in contiguous folds;
* :func:`pack_or_official`: the one rule for benchmarks shipped both ways (LFW, CFP, AgeDB/CALFW/CPLFW);
* :func:`file_pair_protocol`: pairs of image files listed by a pair file, aligned by a landmark file or declared
  aligned; images that are missing (or have no landmarks) drop their pairs, flagged, with ``allow_missing``
  (:func:`drop_pairs_of_missing`, the one implementation of that path).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fr_bench.protocols.base import ProtocolError, file_error
from fr_bench.protocols.options import FROM_SPEC, expected_count
from fr_bench.protocols.pairs import PairProtocol


def contiguous_folds(n_pairs: int, n_folds: int) -> np.ndarray:
    """Fold id per pair for ``n_folds`` contiguous folds, sizes as ``np.array_split`` (the first ``n % k`` folds
    one larger), which is also scikit-learn ``KFold(shuffle=False)``'s layout."""
    if n_folds <= 0:
        return np.zeros(n_pairs, dtype=np.int64)
    sizes = [len(c) for c in np.array_split(np.arange(n_pairs), n_folds)]
    return np.repeat(np.arange(n_folds, dtype=np.int64), sizes)


def bin_protocol(
    path: Path,
    spec: Mapping[str, Any],
    *,
    expected_pairs: Any = FROM_SPEC,
    n_folds: int | None = None,
) -> PairProtocol:
    """A :class:`PairProtocol` over an insightface ``.bin`` pack: pair k = images 2k, 2k+1; contiguous folds."""
    from fr_bench.protocols.binpack import read_bin
    from fr_bench.protocols.images import BinPackImageSource

    bins, issame = read_bin(path, expected_count(spec, expected_pairs))
    n = len(issame)
    k = int(spec.get("counts", {}).get("folds", 10)) if n_folds is None else n_folds
    images = BinPackImageSource(path, 2 * n, bins=bins)
    pairs = np.arange(2 * n, dtype=np.int64).reshape(n, 2)
    return PairProtocol(
        spec, images, pairs, issame, contiguous_folds(n, k), n_folds=k, data_files=[str(path)], source="bin"
    )


def pack_or_official(
    base: Path,
    spec: Mapping[str, Any],
    format: str,
    *,
    official_found: bool,
    official_what: str,
    landmarks: str | None,
    aligned: bool,
    expected_pairs: Any,
    build_official: Callable[[], PairProtocol],
) -> PairProtocol:
    """The one rule for benchmarks shipped both as an official layout and as an insightface ``.bin`` pack.

    ``format``: ``"bin"``, ``"official"`` or ``"auto"``, which takes the official layout when it is present
    (``official_found``) and either ``landmarks``/``aligned`` says how to align its images or no pack exists, and the
    pack otherwise. ``official_what`` names the official files in error messages; ``build_official`` builds that
    protocol. Packs are looked up under the spec's ``[files] bin`` names.
    """
    if format not in ("auto", "official", "bin"):
        raise ValueError(f"option format={format!r}: choose auto, official or bin")
    bin_names = spec.get("files", {}).get("bin", [])
    bin_names = [bin_names] if isinstance(bin_names, str) else list(bin_names)
    pack = find_bin(base, bin_names)
    if format == "auto":
        if base.is_file() and pack is None:
            raise ProtocolError(f"{base}: a {spec.get('name', 'protocol')} root file must be a .bin pack")
        format = "official" if official_found and (landmarks is not None or aligned or pack is None) else "bin"
        if format == "bin" and pack is None:
            wanted = f"{official_what} (official layout) nor " if official_what else ""
            raise ProtocolError(f"{base}: found neither {wanted}{', '.join(bin_names)} (insightface pack)"
                                if wanted else f"{base}: no {' or '.join(bin_names)} found")
    if format == "bin":
        if pack is None:
            raise ProtocolError(f"{base}: no {' or '.join(bin_names)} found")
        if landmarks is not None or aligned:
            raise ValueError("options landmarks/aligned apply to the official layout, not to a .bin pack")
        return bin_protocol(pack, spec, expected_pairs=expected_pairs)
    if not official_found:
        raise ProtocolError(f"{base}: {official_what or 'no official layout is supported for this benchmark'}"
                            f"{' not found' if official_what else '; use the .bin pack'}")
    return build_official()


def find_bin(root: Path, names: Sequence[str]) -> Path | None:
    """``root`` itself if it is a ``.bin`` file, else the first ``root/<name>`` that exists, else None."""
    if root.is_file():
        if root.suffix.lower() == ".bin":
            return root
        return None
    for name in names:
        cand = root / name
        if cand.is_file():
            return cand
    return None


def drop_pairs_of_missing(index_a: np.ndarray, index_b: np.ndarray, missing: np.ndarray, *, n_total: int,
                          why: str = "images missing") -> tuple[np.ndarray, np.ndarray, np.ndarray, str | None]:
    """Drop every pair that uses a missing image and compact the image list to the images kept pairs use.

    ``index_a``/``index_b``: image index of each pair's sides; ``missing``: one flag per image. Returns
    ``(keep_pair, kept_images, new_pairs, flag)``: which pairs stay, the indices (in order) of the images they use,
    the kept pairs re-indexed into those images (``(K, 2)``), and the flag a result must carry (None when nothing
    was dropped). ``n_total`` is the benchmark's pair count, for the flag.
    """
    index_a, index_b = np.asarray(index_a, dtype=np.int64), np.asarray(index_b, dtype=np.int64)
    missing = np.asarray(missing, dtype=bool)
    keep = ~(missing[index_a] | missing[index_b])
    used = np.zeros(missing.size, dtype=bool)
    used[index_a[keep]] = True
    used[index_b[keep]] = True
    new_index = np.cumsum(used) - 1
    pairs = np.stack([new_index[index_a[keep]], new_index[index_b[keep]]], axis=1).reshape(-1, 2)
    flag = None
    if not keep.all():
        flag = (f"allow_missing: {int((~keep).sum())} of {n_total} pairs dropped ({int(missing.sum())} {why}); "
                f"scored {int(keep.sum())} pairs")
    return keep, np.flatnonzero(used), pairs, flag


def _unique_images(rel_a: Sequence[str], rel_b: Sequence[str]) -> tuple[list[str], np.ndarray, np.ndarray, list[int]]:
    """``(distinct paths in order of first use, index_a, index_b, first pair using each path)``."""
    unique: dict[str, int] = {}
    first_use: list[int] = []
    for k, rel in enumerate(r for pair in zip(rel_a, rel_b) for r in pair):
        if rel not in unique:
            unique[rel] = len(unique)
            first_use.append(k // 2)
    index_a = np.array([unique[r] for r in rel_a], dtype=np.int64)
    index_b = np.array([unique[r] for r in rel_b], dtype=np.int64)
    return list(unique), index_a, index_b, first_use


def _missing_images(image_dir: Path, rels: Sequence[str], prefix: str, landmarks: str | Path | None
                    ) -> tuple[np.ndarray, list[str], Any, np.ndarray | None]:
    """``(missing flag per image, why each is missing, landmark table or None, table row per image or None)``: an
    image is missing when its file is absent or, with a landmark file, when the file has no line for it."""
    from fr_bench.protocols.images import read_landmarks

    missing = np.array([not (image_dir / rel).is_file() for rel in rels], dtype=bool)
    why = ["image file not found"] * len(rels)
    if landmarks is None:
        return missing, why, None, None
    table = read_landmarks(landmarks)
    rows = np.full(len(rels), -1, dtype=np.int64)
    for i, rel in enumerate(rels):
        row = table.lookup(rel, prefix + rel)
        if row is None:
            if not missing[i]:
                why[i] = f"no landmarks for it in {table.path}"
            missing[i] = True
        else:
            rows[i] = row
    return missing, why, table, rows


def _check_alignment_options(name: str, image_dir: Path, landmarks: Any, aligned: bool) -> None:
    if landmarks is None and not aligned:
        raise ProtocolError(
            f"{image_dir}: {name} images in the official layout are not aligned 112x112 crops. Pass "
            "landmarks=PATH (lines '<relative path> x1 y1 ... x5 y5 [score]'; `frbench landmarks ROOT -o FILE` "
            "makes one with the shipped detector) to align them, aligned=True if this tree already holds aligned "
            "112x112 crops, or use the benchmark's .bin pack"
        )
    if landmarks is not None and aligned:
        raise ValueError(f"{name}: give either landmarks=PATH or aligned=True, not both")


def file_pair_protocol(
    spec: Mapping[str, Any],
    root: Path,
    image_dir: Path,
    rel_a: Sequence[str],
    rel_b: Sequence[str],
    labels: Sequence[bool],
    folds: np.ndarray,
    n_folds: int,
    where: Sequence[tuple[str, int]],
    *,
    landmarks: str | Path | None,
    aligned: bool,
    allow_missing: bool,
    data_files: Sequence[str],
    source: str,
    flags: Sequence[str] = (),
) -> PairProtocol:
    """A :class:`PairProtocol` over image files ``image_dir/<rel>`` listed by a pair file.

    ``where[k]`` is the (file, line) that defined pair ``k``, for errors. Images must come with a landmark file
    (``landmarks``, see :func:`fr_bench.protocols.images.read_landmarks`; paths relative to ``image_dir`` or to
    ``root``) or be declared already aligned (``aligned=True``, 112x112 checked on load). With ``allow_missing``,
    pairs whose image file (or landmark line) is missing are dropped and flagged; otherwise the first one raises.
    """
    from fr_bench.protocols.images import FileImageSource

    name = spec.get("name", "protocol")
    _check_alignment_options(name, image_dir, landmarks, aligned)
    rels, index_a, index_b, first_use = _unique_images(rel_a, rel_b)
    try:
        prefix = image_dir.relative_to(root).as_posix() if image_dir != root else ""
    except ValueError:
        prefix = ""
    prefix = f"{prefix}/" if prefix else ""
    missing, why, table, table_rows = _missing_images(image_dir, rels, prefix, landmarks)
    if table is not None:
        data_files = [*data_files, str(table.path)]
    if missing.any() and not allow_missing:
        i = int(np.flatnonzero(missing)[0])
        file, line = where[first_use[i]]
        raise file_error(
            file, line, f"{why[i]}: {image_dir / rels[i]} ({int(missing.sum())} such images in all; "
            "pass allow_missing=True to drop their pairs)"
        )
    n = len(labels)
    keep, kept, pairs, flag = drop_pairs_of_missing(index_a, index_b, missing, n_total=n,
                                                    why="images missing or without landmarks")
    lm = None if table_rows is None else table.points[table_rows[kept]]
    images = FileImageSource(image_dir, [rels[i] for i in kept], lm, key_prefix=prefix)
    if aligned:
        images.check_first()
    return PairProtocol(
        spec, images, pairs, np.asarray(labels, dtype=bool)[keep], np.asarray(folds)[keep], n_folds=n_folds,
        data_files=[*data_files, str(image_dir)], source=source, n_pairs_total=n,
        flags=[*flags, *([flag] if flag else [])],
    )
