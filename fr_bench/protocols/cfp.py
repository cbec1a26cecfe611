"""CFP (Celebrities in Frontal-Profile): ``cfp_fp`` and ``cfp_ff``, from the official tree or the ``.bin`` packs.

Official layout (docs/FORMATS.md)::

    <root>/Data/Images/<id 001..500>/frontal/<01..10>.jpg, .../profile/<01..04>.jpg    (not aligned)
    <root>/Protocol/Pair_list_F.txt, Pair_list_P.txt     "<index> <image path relative to Protocol/>"
    <root>/Protocol/Split/<FP|FF>/<01..10>/same.txt, diff.txt      350 lines "i,j" each

Pair ``i,j``: FF = (frontal i, frontal j), FP = (frontal i, profile j). Evaluation order: fold 01..10; within a
fold, the 350 ``same.txt`` pairs then the 350 ``diff.txt`` pairs, each in file order (the LFW convention; the
official protocol scores each fold as a set, so the order inside a fold does not change any number). 7000 pairs.
The spec's ``[files] split`` ("FP" or "FF") selects the protocol.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from fr_bench.protocols.base import ProtocolError, file_error, require_root, text_records
from fr_bench.protocols.options import FROM_SPEC, as_bool, expected_count
from fr_bench.protocols.pair_loading import file_pair_protocol, pack_or_official
from fr_bench.protocols.pairs import PairProtocol

N_FOLDS = 10


def read_pair_index(path: Path, root: Path) -> dict[int, str]:
    """``Pair_list_[FP].txt``: index -> image path relative to ``root`` (paths in the file are relative to
    ``Protocol/``). Checks: two fields, whole-number indices, no duplicates, paths inside ``root``."""
    out: dict[int, str] = {}
    base = path.parent
    for lineno, fields in text_records(path, 2, "'<index> <image path>'", what="CFP image index file"):
        try:
            index = int(fields[0])
        except ValueError:
            raise file_error(path, lineno, f"index must be a whole number, got {fields[0]!r}") from None
        if index in out:
            raise file_error(path, lineno, f"index {index} listed twice")
        full = os.path.normpath(os.path.join(base, fields[1].replace("\\", "/")))
        rel = os.path.relpath(full, root)
        if rel.startswith(".."):
            raise file_error(path, lineno, f"image path {fields[1]!r} points outside {root}")
        out[index] = Path(rel).as_posix()
    if not out:
        raise ProtocolError(f"{path}: no lines")
    return out


def read_split_file(path: Path) -> tuple[list[tuple[int, int]], list[int]]:
    """A ``same.txt``/``diff.txt`` file: ``[(i, j)]`` and the line numbers."""
    pairs, lines = [], []
    for lineno, fields in text_records(path, 2, "'i,j' (two indices separated by a comma)", what="CFP split file",
                                       sep=","):
        text = ",".join(fields)
        try:
            pairs.append((int(fields[0]), int(fields[1])))
        except ValueError:
            raise file_error(path, lineno, f"indices must be whole numbers, got {text!r}") from None
        lines.append(lineno)
    return pairs, lines


def official_protocol(
    root: Path,
    spec: Mapping[str, Any],
    *,
    landmarks: str | None,
    aligned: bool,
    allow_missing: bool,
    expected_pairs: Any,
) -> PairProtocol:
    """CFP from the ``Protocol/`` tree (see the module docstring)."""
    split = str(spec.get("files", {}).get("split", "FP")).upper()
    if split not in ("FP", "FF"):
        where = spec.get("spec_file", spec.get("name"))
        raise ProtocolError(f"{where}: [files] split must be 'FP' or 'FF', got {split!r}")
    proto = root / "Protocol"
    frontal = read_pair_index(proto / "Pair_list_F.txt", root)
    second = frontal if split == "FF" else read_pair_index(proto / "Pair_list_P.txt", root)
    second_file = proto / ("Pair_list_F.txt" if split == "FF" else "Pair_list_P.txt")
    rel_a, rel_b, labels, folds, where = [], [], [], [], []
    split_dir = proto / "Split" / split
    per_file = spec.get("counts", {}).get("pairs_per_file")
    for fold in range(N_FOLDS):
        for kind, genuine in (("same.txt", True), ("diff.txt", False)):
            path = split_dir / f"{fold + 1:02d}" / kind
            pairs, lines = read_split_file(path)
            if per_file is not None and expected_pairs is FROM_SPEC and len(pairs) != int(per_file):
                raise file_error(path, None, f"{len(pairs)} pairs, expected {per_file}")
            for (i, j), lineno in zip(pairs, lines):
                if i not in frontal:
                    raise file_error(path, lineno, f"frontal index {i} is not in {proto / 'Pair_list_F.txt'}")
                if j not in second:
                    raise file_error(path, lineno, f"index {j} is not in {second_file}")
                rel_a.append(frontal[i])
                rel_b.append(second[j])
                labels.append(genuine)
                folds.append(fold)
                where.append((str(path), lineno))
    want = expected_count(spec, expected_pairs)
    if want is not None and len(labels) != want:
        raise ProtocolError(f"{split_dir}: {len(labels)} pairs in all, expected {want}")
    return file_pair_protocol(
        spec, root, root, rel_a, rel_b, labels, np.asarray(folds), N_FOLDS, where,
        landmarks=landmarks, aligned=aligned, allow_missing=allow_missing,
        data_files=[str(proto / "Pair_list_F.txt"), str(second_file), str(split_dir)], source=f"official:Split/{split}",
    )


def load(
    root: str | Path | None,
    spec: Mapping[str, Any],
    *,
    format: str = "auto",
    landmarks: str | None = None,
    aligned: Any = False,
    allow_missing: Any = False,
    expected_pairs: Any = FROM_SPEC,
) -> PairProtocol:
    """CFP-FP or CFP-FF (per the spec) over ``root``: the CFP folder (``Protocol/``, ``Data/``), a folder with the
    ``.bin`` pack, or the pack itself. ``format="auto"`` prefers the official tree when ``landmarks``/``aligned``
    is given or no pack exists. Options as for LFW."""
    base = require_root(root, spec)
    aligned_b = as_bool(aligned, "aligned")
    allow_b = as_bool(allow_missing, "allow_missing")
    return pack_or_official(
        base, spec, format, official_found=base.is_dir() and (base / "Protocol").is_dir(),
        official_what="Protocol/ (the CFP tree)", landmarks=landmarks, aligned=aligned_b,
        expected_pairs=expected_pairs,
        build_official=lambda: official_protocol(
            base, spec, landmarks=landmarks, aligned=aligned_b, allow_missing=allow_b, expected_pairs=expected_pairs
        ),
    )
