"""``folder``: pair verification over any ``root/<identity>/<image>`` tree of aligned 112x112 crops.

Pairs, by default generated (option ``pairs=PATH`` reads them instead):

* every genuine pair: all unordered pairs (i, j), i < j, of images of one identity;
* impostor pairs: a uniform sample without replacement of the unordered pairs of images of different identities,
  ``impostors_per_genuine`` (default 1) times the genuine count, or exactly ``n_impostors``; drawn with
  ``numpy.random.default_rng(seed)``. If fewer impostor pairs exist, all are used (flagged).

Images are indexed in sorted order (identity folder name, then file name); a pair list file has lines
``<relative path A> <relative path B> <label 1|0>`` (``#`` comments allowed, paths relative to root).

Folds: with at least 10 pairs, the pairs are put in a seeded random order (``default_rng(seed).permutation``; with
``shuffle=False`` a given pair list keeps its file order) and split into 10 contiguous folds of
``numpy.array_split`` sizes; ``protocol.order[k]`` is the original index (generation order or file line order) of
evaluated pair k. Under 10 pairs there is no k-fold accuracy: only ``best-threshold``, flagged optimistic.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from fr_bench.protocols.base import ProtocolError, file_error, require_root, text_records
from fr_bench.protocols.images import FileImageSource, check_inside_root, list_image_tree, read_landmarks
from fr_bench.protocols.options import as_bool, as_count
from fr_bench.protocols.pair_loading import contiguous_folds, drop_pairs_of_missing
from fr_bench.protocols.pairs import PairProtocol

#: Folds used when there are enough pairs.
N_FOLDS = 10
#: Above this many unordered pairs, impostors are drawn by rejection instead of enumerating every pair.
_ENUMERATE_LIMIT = 4_000_000


def read_pair_list(path: str | Path) -> tuple[list[str], list[str], np.ndarray, list[int]]:
    """Parse ``<relpath A> <relpath B> <label 1|0>`` lines: ``(rel_a, rel_b, labels, line numbers)``."""
    p = Path(path)
    rel_a, rel_b, labels, linenos = [], [], [], []
    for lineno, fields in text_records(p, 3, "'<image A> <image B> <label 1|0>'", what="pair list", comments=True):
        if fields[2] not in ("0", "1"):
            raise file_error(p, lineno, f"label must be 1 (genuine) or 0 (impostor), got {fields[2]!r}")
        rel_a.append(fields[0].replace("\\", "/"))
        rel_b.append(fields[1].replace("\\", "/"))
        labels.append(fields[2] == "1")
        linenos.append(lineno)
    if not labels:
        raise ProtocolError(f"{p}: no pairs found")
    return rel_a, rel_b, np.asarray(labels, dtype=bool), linenos


def genuine_pairs(identity_codes: np.ndarray) -> np.ndarray:
    """All (i, j), i < j, with equal identity, in lexicographic order (images sorted by identity)."""
    out = []
    for code in np.unique(identity_codes):
        members = np.flatnonzero(identity_codes == code)
        if members.size >= 2:
            i, j = np.triu_indices(members.size, k=1)
            out.append(np.stack([members[i], members[j]], axis=1))
    return np.concatenate(out) if out else np.zeros((0, 2), dtype=np.int64)


def sample_impostor_pairs(identity_codes: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` distinct unordered impostor pairs (i < j), uniform without replacement, sorted lexicographically."""
    m = identity_codes.size
    counts = np.bincount(identity_codes)
    total = (m * (m - 1) - int((counts * (counts - 1)).sum())) // 2
    n = min(n, total)
    if n == 0:
        return np.zeros((0, 2), dtype=np.int64)
    if m * (m - 1) // 2 <= _ENUMERATE_LIMIT:
        i, j = np.triu_indices(m, k=1)
        impostor = identity_codes[i] != identity_codes[j]
        i, j = i[impostor], j[impostor]
        pick = np.sort(rng.choice(i.size, size=n, replace=False))
        return np.stack([i[pick], j[pick]], axis=1).astype(np.int64)
    chosen: set[tuple[int, int]] = set()
    while len(chosen) < n:
        need = n - len(chosen)
        a = rng.integers(0, m, size=2 * need + 16)
        b = rng.integers(0, m, size=2 * need + 16)
        for x, y in zip(a.tolist(), b.tolist()):
            if identity_codes[x] != identity_codes[y]:
                chosen.add((min(x, y), max(x, y)))
                if len(chosen) == n:
                    break
    return np.asarray(sorted(chosen), dtype=np.int64)


def _listed_pairs(base: Path, pairs: str, *, allow_missing: bool, allow_outside_root: bool,
                  faceless: Callable[[list[str]], set[str]]
                  ) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray, int, list[str], list[str]]:
    """Pairs read from a pair list: ``(image paths, pair indices, labels, original order, pair count, flags, data
    files)``. Missing images (and, with ``allow_missing``, images without landmarks) drop their pairs, flagged, or
    raise at the first pair that uses one."""
    pair_path = Path(pairs)
    if not pair_path.is_absolute() and not pair_path.is_file():
        pair_path = base / pairs
    rel_a, rel_b, labels, linenos = read_pair_list(pair_path)
    check_inside_root(base, rel_a + rel_b, list_file=pair_path, lines=linenos + linenos, allow=allow_outside_root)
    rels = list(dict.fromkeys(r for pair in zip(rel_a, rel_b) for r in pair))
    index = {r: i for i, r in enumerate(rels)}
    missing = np.array([not (base / r).is_file() for r in rels], dtype=bool)
    if allow_missing:  # an image without landmarks is as good as missing: its pairs go, flagged
        no_face = faceless(rels)
        missing |= np.array([r in no_face for r in rels], dtype=bool)
    index_a = np.array([index[a] for a in rel_a], dtype=np.int64)
    index_b = np.array([index[b] for b in rel_b], dtype=np.int64)
    if missing.any() and not allow_missing:
        first = int(np.flatnonzero(missing[index_a] | missing[index_b])[0])
        absent = rel_a[first] if missing[index_a[first]] else rel_b[first]
        raise file_error(pair_path, linenos[first], f"image not found: {base / absent} ({int(missing.sum())} missing "
                         "in all; allow_missing=True drops their pairs)")
    keep, kept, pair_idx, flag = drop_pairs_of_missing(index_a, index_b, missing, n_total=len(labels))
    return ([rels[i] for i in kept], pair_idx, labels[keep], np.flatnonzero(keep), len(labels),
            [flag] if flag else [], [str(pair_path)])


def _generated_pairs(base: Path, rng: np.random.Generator, *, allow_missing: bool,
                     faceless: Callable[[list[str]], set[str]], impostors_per_genuine: Any, n_impostors: Any
                     ) -> tuple[list[str], np.ndarray, np.ndarray, list[str], str]:
    """Pairs generated from the tree (module docstring): ``(image paths, pair indices, labels, flags, source)``."""
    tree = list_image_tree(base)
    if not tree:
        raise ProtocolError(f"{base}: no images found in root/<identity>/<image>")
    flags = []
    no_face = faceless([t[1] for t in tree]) if allow_missing else set()
    if no_face:
        tree = [t for t in tree if t[1] not in no_face]
        flags.append(f"allow_missing: {len(no_face)} images without landmarks (no face found) left out before "
                     f"the pairs were generated, e.g. {sorted(no_face)[0]}")
    _, codes = np.unique(np.asarray([t[0] for t in tree]), return_inverse=True)
    genuine = genuine_pairs(codes)
    if len(genuine) == 0:
        raise ProtocolError(f"{base}: no identity has two images: no genuine pairs")
    if n_impostors is not None and impostors_per_genuine is not None:
        raise ValueError("give impostors_per_genuine or n_impostors, not both")
    if n_impostors is not None:
        want = as_count(n_impostors, "n_impostors")
    else:
        per = 1.0 if impostors_per_genuine is None else float(impostors_per_genuine)
        if not per >= 0:
            raise ValueError(f"option impostors_per_genuine={impostors_per_genuine!r} must be >= 0")
        want = int(round(per * len(genuine)))
    impostor = sample_impostor_pairs(codes, want, rng)
    if len(impostor) < want:
        flags.append(f"only {len(impostor)} impostor pairs exist; {want} were requested: all are used")
    pair_idx = np.concatenate([genuine, impostor]).astype(np.int64)
    labels = np.concatenate([np.ones(len(genuine), bool), np.zeros(len(impostor), bool)])
    return [t[1] for t in tree], pair_idx, labels, flags, f"{len(genuine)} genuine, {len(impostor)} impostor"


def _aligned_images(base: Path, rels: list[str], table: Any, allow_outside_root: bool) -> FileImageSource:
    """The image list, warped with the landmark file's points when one is given (every image must have a line)."""
    lm = None
    if table is not None:
        rows = [table.lookup(r) for r in rels]
        absent = [r for r, row in zip(rels, rows) if row is None]
        if absent:
            raise ProtocolError(f"{table.path}: no landmarks for {absent[0]} ({len(absent)} images without landmarks; "
                                f"`frbench landmarks ROOT -o FILE` lists the images where no face was found; "
                                "allow_missing=True leaves them out, flagged)")
        lm = table.points[np.asarray(rows)]
    hint = ("the folder protocol expects aligned crops (or pass landmarks=PATH; make one with "
            "`frbench landmarks ROOT -o FILE`)")
    images = FileImageSource(base, rels, lm, unaligned_hint=hint, allow_outside_root=allow_outside_root)
    images.check_first()
    return images


def load(
    root: str | Path | None,
    spec: Mapping[str, Any],
    *,
    pairs: str | None = None,
    impostors_per_genuine: Any = None,
    n_impostors: Any = None,
    seed: Any = 0,
    shuffle: Any = True,
    landmarks: str | None = None,
    allow_missing: Any = False,
    allow_outside_root: Any = False,
) -> PairProtocol:
    """The ``folder`` protocol over ``root`` (see the module docstring for the pairs and folds)."""
    base = require_root(root, spec)
    if not base.is_dir():
        raise ProtocolError(f"{base}: the folder protocol needs a folder root/<identity>/<image>")
    seed_i = as_count(seed, "seed")
    shuffle_b = as_bool(shuffle, "shuffle")
    allow_b = as_bool(allow_missing, "allow_missing")
    outside_b = as_bool(allow_outside_root, "allow_outside_root")
    rng = np.random.default_rng(seed_i)
    table = read_landmarks(landmarks) if landmarks is not None else None
    data_files = [str(base)] + ([str(table.path)] if table is not None else [])

    def faceless(rel_paths: list[str]) -> set[str]:
        """Images the landmark file has no line for (no face found)."""
        return set() if table is None else {r for r in rel_paths if table.lookup(r) is None}

    if pairs is not None:
        if impostors_per_genuine is not None or n_impostors is not None:
            raise ValueError("options impostors_per_genuine/n_impostors apply to generated pairs, not to pairs=PATH")
        rels, pair_idx, labels, order, n_total, flags, listed = _listed_pairs(base, pairs, allow_missing=allow_b,
                                                                              allow_outside_root=outside_b,
                                                                              faceless=faceless)
        data_files += listed
        source = f"pair list {Path(listed[0]).name}"
    else:
        rels, pair_idx, labels, flags, counts = _generated_pairs(
            base, rng, allow_missing=allow_b, faceless=faceless, impostors_per_genuine=impostors_per_genuine,
            n_impostors=n_impostors)
        order, n_total = np.arange(len(labels)), len(labels)
        source = f"generated (seed={seed_i}, {counts})"
    n = len(labels)
    n_folds = N_FOLDS if n >= N_FOLDS else 0
    if n_folds and shuffle_b:
        perm = rng.permutation(n)
        pair_idx, labels, order = pair_idx[perm], labels[perm], order[perm]
    protocol = PairProtocol(
        spec, _aligned_images(base, rels, table, outside_b), pair_idx, labels, contiguous_folds(n, n_folds),
        n_folds=n_folds, data_files=data_files, source=source, n_pairs_total=n_total, flags=flags,
    )
    protocol.order = order
    return protocol
