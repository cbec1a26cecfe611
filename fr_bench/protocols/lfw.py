"""LFW: the official ``pairs.txt`` + image tree, or the insightface ``lfw.bin`` pack.

Official layout (docs/FORMATS.md)::

    <root>/pairs.txt                      "10\\t300", then per fold 300 "Name\\tn1\\tn2" + 300 "Name1\\tn1\\tName2\\tn2"
    <root>/lfw/<Name>/<Name>_NNNN.jpg      250x250, not aligned (or lfw-deepfunneled/, lfw_funneled/)

Pair files with a single count header (``pairsDevTrain.txt``, ``pairsDevTest.txt``: ``N``, then N matched + N
mismatched lines) are read too (``pairs_file=``); they have no folds, so accuracy is ``best-threshold`` (flagged).

Which files are used (``format="auto"``): a ``.bin`` root is the pack; a folder with ``pairs.txt`` uses the official
layout when ``landmarks`` or ``aligned`` is given (or when there is no ``lfw.bin``), else ``lfw.bin``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from fr_bench.protocols.base import ProtocolError, file_error, read_text_lines, require_root
from fr_bench.protocols.options import FROM_SPEC, as_bool, expected_count
from fr_bench.protocols.pair_loading import file_pair_protocol, pack_or_official
from fr_bench.protocols.pairs import PairProtocol

#: Image folders tried, in order, when ``image_dir`` is not given.
IMAGE_DIRS = ("lfw", "lfw-deepfunneled", "lfw_funneled", "lfw-funneled")


def image_name(name: str, number: int) -> str:
    """``Name/Name_NNNN.jpg`` (LFW's image naming, NNNN 1-based and zero-padded to 4)."""
    return f"{name}/{name}_{number:04d}.jpg"


def _int_field(path: Path, lineno: int, value: str, what: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise file_error(path, lineno, f"{what} must be a whole number, got {value!r}") from None
    if number < 1:
        raise file_error(path, lineno, f"{what} must be >= 1, got {number}")
    return number


def read_pairs_txt(path: str | Path) -> tuple[list[tuple[str, int, str, int]], np.ndarray, np.ndarray, int, list[int]]:
    """Parse an LFW pair file: ``(pairs, labels, folds, n_folds, line numbers)``.

    ``pairs[k] = (name1, n1, name2, n2)``. Header ``S<TAB>N`` (S folds of N matched then N mismatched lines) or
    ``N`` (one block, ``n_folds = 0``). Every line is checked: field count (3 in a matched block, 4 in a mismatched
    block), whole numbers >= 1, no blank lines inside, no extra lines after the last block.
    """
    p = Path(path)
    if not p.is_file():
        raise ProtocolError(f"{p}: LFW pair file not found")
    lines = read_text_lines(p, "LFW pair file")
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        raise file_error(p, 1, "empty file; expected a header '10<TAB>300'")
    header = lines[0].split()
    if len(header) == 2:
        n_sets = _int_field(p, 1, header[0], "the number of folds")
        per = _int_field(p, 1, header[1], "the number of pairs per half-fold")
        n_folds = n_sets
    elif len(header) == 1:
        n_sets, per, n_folds = 1, _int_field(p, 1, header[0], "the number of pairs per half"), 0
    else:
        raise file_error(p, 1, f"expected a header '<folds><TAB><pairs per half-fold>' or '<pairs>', got {lines[0]!r}")
    expected_lines = 1 + n_sets * 2 * per
    if len(lines) != expected_lines:
        raise file_error(
            p, min(len(lines), expected_lines) + (1 if len(lines) < expected_lines else 0),
            f"header announces {n_sets} x ({per} matched + {per} mismatched) pairs = {expected_lines - 1} lines, "
            f"found {len(lines) - 1}",
        )
    pairs: list[tuple[str, int, str, int]] = []
    labels = np.zeros(n_sets * 2 * per, dtype=bool)
    linenos: list[int] = []
    for k, line in enumerate(lines[1:]):
        lineno = k + 2
        matched = (k % (2 * per)) < per
        fields = line.split()
        if matched:
            if len(fields) != 3:
                raise file_error(p, lineno, f"expected a matched pair 'Name<TAB>n1<TAB>n2' (3 fields), got {line!r}")
            name, a, b = fields
            n1, n2 = _int_field(p, lineno, a, "image number"), _int_field(p, lineno, b, "image number")
            pairs.append((name, n1, name, n2))
            labels[k] = True
        else:
            if len(fields) != 4:
                raise file_error(
                    p, lineno, f"expected a mismatched pair 'Name1<TAB>n1<TAB>Name2<TAB>n2' (4 fields), got {line!r}"
                )
            n1, a, n2, b = fields
            pairs.append((n1, _int_field(p, lineno, a, "image number"), n2, _int_field(p, lineno, b, "image number")))
        linenos.append(lineno)
    folds = np.repeat(np.arange(n_sets, dtype=np.int64), 2 * per) if n_folds else np.zeros(len(pairs), np.int64)
    return pairs, labels, folds, n_folds, linenos


def _image_dir(root: Path, image_dir: str | None) -> Path:
    if image_dir is not None:
        d = root / image_dir
        if not d.is_dir():
            raise ProtocolError(f"{d}: LFW image folder not found")
        return d
    for name in IMAGE_DIRS:
        if (root / name).is_dir():
            return root / name
    raise ProtocolError(f"{root}: no LFW image folder found (looked for {', '.join(IMAGE_DIRS)}); pass image_dir=NAME")


def official_protocol(
    root: Path,
    spec: Mapping[str, Any],
    *,
    pairs_file: str,
    image_dir: str | None,
    landmarks: str | None,
    aligned: bool,
    allow_missing: bool,
    expected_pairs: Any,
) -> PairProtocol:
    """LFW from ``pairs.txt`` and the image tree (see the module docstring)."""
    pairs_path = root / pairs_file
    pairs, labels, folds, n_folds, linenos = read_pairs_txt(pairs_path)
    want = expected_count(spec, expected_pairs)
    if want is not None and n_folds and len(pairs) != want:
        raise file_error(pairs_path, 1, f"{len(pairs)} pairs, expected {want} for {spec.get('name', 'lfw')}")
    images = _image_dir(root, image_dir)
    known: dict[str, bool] = {}
    rel_a, rel_b, where = [], [], []
    missing_ids: set[str] = set()
    for (n1, a, n2, b), lineno in zip(pairs, linenos):
        for name in (n1, n2):
            if name not in known:
                known[name] = (images / name).is_dir()
            if not known[name]:
                if not allow_missing:
                    raise file_error(pairs_path, lineno, f"unknown identity {name!r}: no folder {images / name}")
                missing_ids.add(name)
        rel_a.append(image_name(n1, a))
        rel_b.append(image_name(n2, b))
        where.append((str(pairs_path), lineno))
    flags = []
    if missing_ids:
        flags.append(f"allow_missing: {len(missing_ids)} identities of {pairs_path.name} have no image folder")
    return file_pair_protocol(
        spec, root, images, rel_a, rel_b, labels, folds, n_folds, where,
        landmarks=landmarks, aligned=aligned, allow_missing=allow_missing,
        data_files=[str(pairs_path)], source=f"official:{pairs_file}", flags=flags,
    )


def load(
    root: str | Path | None,
    spec: Mapping[str, Any],
    *,
    format: str = "auto",
    pairs_file: str = "pairs.txt",
    image_dir: str | None = None,
    landmarks: str | None = None,
    aligned: Any = False,
    allow_missing: Any = False,
    expected_pairs: Any = FROM_SPEC,
) -> PairProtocol:
    """Build the LFW protocol over ``root`` (a folder, or the ``lfw.bin`` file itself).

    Options: ``format`` (``auto``/``official``/``bin``), ``pairs_file`` (default ``pairs.txt``), ``image_dir``
    (default: the first of lfw, lfw-deepfunneled, lfw_funneled, lfw-funneled), ``landmarks`` (landmark file, paths
    relative to the image folder or to root), ``aligned`` (the tree holds 112x112 aligned crops),
    ``allow_missing`` (drop pairs with missing images, flagged), ``expected_pairs`` (default: the spec's count;
    None disables the check).
    """
    base = require_root(root, spec)
    aligned_b = as_bool(aligned, "aligned")
    allow_b = as_bool(allow_missing, "allow_missing")
    return pack_or_official(
        base, spec, format, official_found=base.is_dir() and (base / pairs_file).is_file(), official_what=pairs_file,
        landmarks=landmarks, aligned=aligned_b, expected_pairs=expected_pairs,
        build_official=lambda: official_protocol(
            base, spec, pairs_file=pairs_file, image_dir=image_dir, landmarks=landmarks, aligned=aligned_b,
            allow_missing=allow_b, expected_pairs=expected_pairs,
        ),
    )


__all__ = ["IMAGE_DIRS", "image_name", "load", "official_protocol", "read_pairs_txt"]
