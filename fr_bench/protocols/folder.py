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

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from fr_bench.protocols.base import ProtocolError, file_error, require_root, text_records
from fr_bench.protocols.images import FileImageSource, check_inside_root, list_image_tree, read_landmarks
from fr_bench.protocols.pairs import PairProtocol, as_bool, as_count, contiguous_folds

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
    rng = np.random.default_rng(seed_i)
    flags: list[str] = []
    data_files = [str(base)]
    table = read_landmarks(landmarks) if landmarks is not None else None
    if table is not None:
        data_files.append(str(table.path))

    def without_landmarks(rel_paths: list[str]) -> set[str]:
        """Images the landmark file has no line for (no face found): dropped only with allow_missing, flagged."""
        return set() if table is None else {r for r in rel_paths if table.lookup(r) is None}
    if pairs is not None:
        if impostors_per_genuine is not None or n_impostors is not None:
            raise ValueError("options impostors_per_genuine/n_impostors apply to generated pairs, not to pairs=PATH")
        pair_path = Path(pairs)
        if not pair_path.is_absolute() and not pair_path.is_file():
            pair_path = base / pairs
        rel_a, rel_b, labels, linenos = read_pair_list(pair_path)
        check_inside_root(base, rel_a + rel_b, list_file=pair_path, lines=linenos + linenos,
                          allow=as_bool(allow_outside_root, "allow_outside_root"))
        data_files.append(str(pair_path))
        rels = list(dict.fromkeys(r for pair in zip(rel_a, rel_b) for r in pair))
        index = {r: i for i, r in enumerate(rels)}
        missing = [r for r in rels if not (base / r).is_file()]
        if allow_b:  # with allow_missing, an image without landmarks is as good as missing: its pairs go, flagged
            missing += sorted(without_landmarks(rels) - set(missing))
        if missing:
            first = next(k for k in range(len(rel_a)) if rel_a[k] in missing or rel_b[k] in missing)
            if not allow_b:
                absent = rel_a[first] if rel_a[first] in missing else rel_b[first]
                raise file_error(
                    pair_path, linenos[first],
                    f"image not found: {base / absent} ({len(missing)} missing in all; allow_missing=True drops their "
                    "pairs)",
                )
        missing_set = set(missing)
        keep = np.array([a not in missing_set and b not in missing_set for a, b in zip(rel_a, rel_b)], dtype=bool)
        n_total = len(labels)
        if not keep.all():
            flags.append(
                f"allow_missing: {int((~keep).sum())} of {n_total} pairs dropped ({len(missing)} images missing)"
            )
        pair_idx = np.array([[index[a], index[b]] for a, b in zip(rel_a, rel_b)], dtype=np.int64)[keep]
        labels = labels[keep]
        order = np.flatnonzero(keep)
        used = sorted(set(pair_idx.ravel().tolist()))
        remap = np.full(len(rels), -1, dtype=np.int64)
        remap[used] = np.arange(len(used))
        pair_idx = remap[pair_idx]
        rels = [rels[i] for i in used]
        source = f"pair list {pair_path.name}"
    else:
        tree = list_image_tree(base)
        if not tree:
            raise ProtocolError(f"{base}: no images found in root/<identity>/<image>")
        faceless = without_landmarks([t[1] for t in tree]) if allow_b else set()
        if faceless:
            tree = [t for t in tree if t[1] not in faceless]
            flags.append(f"allow_missing: {len(faceless)} images without landmarks (no face found) left out before "
                         f"the pairs were generated, e.g. {sorted(faceless)[0]}")
        identities = [t[0] for t in tree]
        rels = [t[1] for t in tree]
        _, codes = np.unique(np.asarray(identities), return_inverse=True)
        genuine = genuine_pairs(codes)
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
        order = np.arange(len(labels))
        n_total = len(labels)
        source = f"generated (seed={seed_i}, {len(genuine)} genuine, {len(impostor)} impostor)"
        if len(genuine) == 0:
            raise ProtocolError(f"{base}: no identity has two images: no genuine pairs")
    n = len(labels)
    if n >= N_FOLDS:
        if shuffle_b:
            perm = rng.permutation(n)
            pair_idx, labels, order = pair_idx[perm], labels[perm], order[perm]
        n_folds = N_FOLDS
    else:
        n_folds = 0
    lm = None
    if table is not None:
        rows = [table.lookup(r) for r in rels]
        absent = [r for r, row in zip(rels, rows) if row is None]
        if absent:
            raise ProtocolError(f"{table.path}: no landmarks for {absent[0]} ({len(absent)} images without landmarks; "
                                f"`frbench landmarks ROOT -o FILE` lists the images where no face was found; "
                                "allow_missing=True leaves them out, flagged)")
        lm = table.points[np.asarray(rows)]
    hint = "the folder protocol expects aligned crops (or pass landmarks=PATH; make one with `frbench landmarks ROOT -o FILE`)"
    images = FileImageSource(base, rels, lm, unaligned_hint=hint,
                             allow_outside_root=as_bool(allow_outside_root, "allow_outside_root"))
    images.check_first()
    protocol = PairProtocol(
        spec, images, pair_idx, labels, contiguous_folds(n, n_folds), n_folds=n_folds, data_files=data_files,
        source=source, n_pairs_total=n_total, flags=flags,
    )
    protocol.order = order
    return protocol
