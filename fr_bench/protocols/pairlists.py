"""AgeDB-30, CALFW and CPLFW.

* ``agedb_30``: the insightface ``agedb_30.bin`` pack only. AgeDB's 30-year-gap pair protocol is not widely
  distributed as a text list (the raw AgeDB release names files ``<id>_<name>_<age>_<gender>.jpg`` without pairs),
  so the pack is the reference.
* ``calfw`` / ``cplfw``: ``calfw.bin`` / ``cplfw.bin``, or the official list ``pairs_CALFW.txt`` /
  ``pairs_CPLFW.txt`` + images (``aligned images/<Name>_NNNN.jpg``).

The official CALFW/CPLFW list, as documented (docs/FORMATS.md: "verify on real files"): consecutive lines form a pair,
each line ``<image name> <label>``; a genuine pair has the same non-zero label on both lines (the identity number;
a 0/1 labelling, 1 on both lines, reads the same), an impostor pair 0 on both lines. Any other combination is
refused with a file:line error naming this assumption. Folds (also an assumption, documented in the specs): the
genuine pairs in file order are cut into 10 equal contiguous blocks, the impostor pairs likewise, and fold k =
genuine block k then impostor block k -- this reproduces LFW-style per-fold ordering and also works for a list
sorted by class. Pairs are evaluated in fold order.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from fr_bench.protocols.base import ProtocolError, file_error, require_root, text_records
from fr_bench.protocols.options import FROM_SPEC, as_bool, expected_count
from fr_bench.protocols.pair_loading import file_pair_protocol, pack_or_official
from fr_bench.protocols.pairs import PairProtocol

N_FOLDS = 10
#: Image folders tried, in order, for the CALFW/CPLFW list layout.
IMAGE_DIRS = ("aligned images", "aligned_images", "images")


def read_consecutive_pairs(path: str | Path) -> tuple[list[str], list[str], np.ndarray, list[int]]:
    """Parse a CALFW/CPLFW list (see the module docstring): ``(image A, image B, genuine, line of A)``."""
    p = Path(path)
    entries: list[tuple[str, int, int]] = []
    for lineno, fields in text_records(p, 2, "'<image name> <label>'", what="pair list"):
        try:
            label = int(fields[1])
        except ValueError:
            raise file_error(p, lineno, f"label must be a whole number, got {fields[1]!r}") from None
        if label < 0:
            raise file_error(p, lineno, f"label must be >= 0, got {label}")
        entries.append((fields[0], label, lineno))
    if not entries:
        raise ProtocolError(f"{p}: no lines")
    if len(entries) % 2:
        raise file_error(
            p, entries[-1][2], f"{len(entries)} image lines: consecutive lines form pairs, so the count must be even"
        )
    rel_a, rel_b, labels, lines = [], [], [], []
    for k in range(0, len(entries), 2):
        (a, la, line_a), (b, lb, line_b) = entries[k], entries[k + 1]
        if la == lb == 0:
            genuine = False
        elif la == lb:
            genuine = True
        else:
            raise file_error(
                p, line_b,
                f"lines {line_a}-{line_b} form a pair with labels {la} and {lb}; the documented layout has equal "
                "non-zero labels (genuine) or 0 on both lines (impostor). This file does not follow it: please report "
                "its layout, or use the .bin pack",
            )
        rel_a.append(a)
        rel_b.append(b)
        labels.append(genuine)
        lines.append(line_a)
    return rel_a, rel_b, np.asarray(labels, dtype=bool), lines


def class_block_folds(labels: np.ndarray, n_folds: int = N_FOLDS) -> tuple[np.ndarray, np.ndarray]:
    """``(order, folds)``: genuine and impostor pairs each cut (in file order) into ``n_folds`` contiguous equal
    blocks; ``order`` lists pair indices fold by fold (genuine block, then impostor block); ``folds`` the fold of
    each position in ``order``."""
    order, folds = [], []
    gen_blocks = np.array_split(np.flatnonzero(labels), n_folds)
    imp_blocks = np.array_split(np.flatnonzero(~labels), n_folds)
    for k in range(n_folds):
        block = np.concatenate([gen_blocks[k], imp_blocks[k]])
        order.append(block)
        folds.append(np.full(block.size, k, dtype=np.int64))
    return np.concatenate(order), np.concatenate(folds)


def _list_protocol(
    root: Path, spec: Mapping[str, Any], pair_file: str, *, image_dir: str | None, landmarks: str | None,
    aligned: bool, allow_missing: bool, expected_pairs: Any,
) -> PairProtocol:
    path = root / pair_file
    rel_a, rel_b, labels, lines = read_consecutive_pairs(path)
    want = expected_count(spec, expected_pairs)
    if want is not None and len(labels) != want:
        raise file_error(path, None, f"{len(labels)} pairs, expected {want}")
    if image_dir is not None:
        images = root / image_dir
        if not images.is_dir():
            raise ProtocolError(f"{images}: image folder not found")
    else:
        found = [root / d for d in IMAGE_DIRS if (root / d).is_dir()]
        if not found:
            looked = ", ".join(IMAGE_DIRS)
            raise ProtocolError(f"{root}: no image folder found (looked for {looked}); pass image_dir=NAME")
        images = found[0]
    order, folds = class_block_folds(labels)
    return file_pair_protocol(
        spec, root, images, [rel_a[i] for i in order], [rel_b[i] for i in order], labels[order], folds, N_FOLDS,
        [(str(path), lines[i]) for i in order], landmarks=landmarks, aligned=aligned, allow_missing=allow_missing,
        data_files=[str(path)], source=f"official:{pair_file}",
    )


def _load(
    root: str | Path | None, spec: Mapping[str, Any], *, format: str, pair_file: str | None, image_dir: str | None,
    landmarks: str | None, aligned: Any, allow_missing: Any, expected_pairs: Any,
) -> PairProtocol:
    base = require_root(root, spec)
    aligned_b = as_bool(aligned, "aligned")
    allow_b = as_bool(allow_missing, "allow_missing")
    return pack_or_official(
        base, spec, format, official_found=pair_file is not None and base.is_dir() and (base / pair_file).is_file(),
        official_what=pair_file or "", landmarks=landmarks, aligned=aligned_b, expected_pairs=expected_pairs,
        build_official=lambda: _list_protocol(
            base, spec, pair_file, image_dir=image_dir, landmarks=landmarks, aligned=aligned_b,
            allow_missing=allow_b, expected_pairs=expected_pairs,
        ),
    )


def load_agedb30(root: str | Path | None, spec: Mapping[str, Any], *, expected_pairs: Any = FROM_SPEC) -> PairProtocol:
    """AgeDB-30 from ``agedb_30.bin`` (``root`` = the pack or a folder holding it)."""
    return _load(root, spec, format="bin", pair_file=None, image_dir=None, landmarks=None, aligned=False,
                 allow_missing=False, expected_pairs=expected_pairs)


def load_list_or_bin(
    root: str | Path | None,
    spec: Mapping[str, Any],
    *,
    format: str = "auto",
    image_dir: str | None = None,
    landmarks: str | None = None,
    aligned: Any = False,
    allow_missing: Any = False,
    expected_pairs: Any = FROM_SPEC,
) -> PairProtocol:
    """CALFW or CPLFW (per the spec's ``[files] bin`` and ``pairs``) from the pack or the official list + images.
    Options as for LFW (``image_dir`` default: the first of "aligned images", aligned_images, images)."""
    return _load(root, spec, format=format, pair_file=spec.get("files", {}).get("pairs"), image_dir=image_dir,
                 landmarks=landmarks, aligned=aligned, allow_missing=allow_missing, expected_pairs=expected_pairs)
