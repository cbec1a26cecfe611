"""IJB-B / IJB-C 1:1 template verification: meta-file parsing, template pooling, pair scoring.

Layout (insightface's IJB release, FORMATS.md "IJB-B and IJB-C")::

    <root>/meta/ijbc_face_tid_mid.txt          <image name> <template id> <media id>        (one line per image)
    <root>/meta/ijbc_name_5pts_score.txt       <image name> x1 y1 ... x5 y5 <detector score> (same order)
    <root>/meta/ijbc_template_pair_label.txt   <template id 1> <template id 2> <label 0|1>  (one line per pair)
    <root>/loose_crop/<image name>             loosely cropped face, aligned at load with its 5 points

(``ijbb_`` for IJB-B.) Everything is kept as column arrays -- 469,375 images and 15.66M pairs never become Python
objects -- and every stage is vectorised:

* template pooling is one sparse (templates x images) weight matrix times the image features: each pooling
  convention is just a different weight per image (:func:`pooling_weights`);
* pair scores are one gather-dot over all pairs, computed as blocked matrix products when the pair set is dense in
  its templates (IJB's enrolment x verification structure) and as chunked row gathers otherwise (:func:`pair_scores`).

Reported numbers come from :mod:`fr_bench.metrics` only.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from fr_bench.protocols.base import (
    CROP_SIZE,
    ImageRef,
    ImageSource,
    Protocol,
    ProtocolError,
    ProtocolResult,
    file_error,
    require_root,
)
from fr_bench.protocols.conventions import FLIP_FEATURES, default_first

#: Pooling conventions, the reference first.
POOLINGS = ("media-mean-sum", "media-balanced", "image-mean", "norm-weighted")
#: TAR@FAR readings (fr_bench.metrics.verification conventions), the published IJB tables' first.
TAR_CONVENTIONS = ("nearest", "strict", "interpolated")
DEFAULT_FARS = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1)


# ----------------------------------------------------------------------------------------------------------------
# Generic fast table reading with file:line errors
# ----------------------------------------------------------------------------------------------------------------


def _first_bad_line(path: Path, kinds: Sequence[type], sep: str | None = " ", skip_header: bool = False) -> None:
    """Scan ``path`` line by line and raise a file:line error at the first line that does not fit ``kinds``.

    Only called after the fast C parser refused the file, so the slow scan runs on the error path only.
    """
    with open(path, encoding="utf-8", errors="replace") as f:
        for lineno, line in enumerate(f, start=1):
            if skip_header and lineno == 1:
                continue
            fields = line.rstrip("\r\n").split(sep)
            if len(fields) != len(kinds):
                raise file_error(path, lineno, f"expected {len(kinds)} fields separated by {sep!r}, found "
                                 f"{len(fields)}: {line.rstrip()[:120]!r}")
            for col, (value, kind) in enumerate(zip(fields, kinds), start=1):
                problem = _field_problem(value, kind)
                if problem:
                    raise file_error(path, lineno, f"field {col} {problem}")


def _field_problem(value: str, kind: type) -> str | None:
    """Why ``value`` is not a valid ``kind`` field for the C parser (None if it is): Python's ``int``/``float`` are
    looser (underscores, spaces, unbounded ints, "nan"), so those cases are refused here as pandas refuses them."""
    if kind is str:
        return "is empty" if value == "" else None
    expected = "an integer" if kind is int else "a number"
    try:
        number = float(value)
        if "_" in value or value != value.strip() or number != number:
            raise ValueError
        if kind is int:
            if not number.is_integer():
                raise ValueError
            if not -(2**63) <= (int(value) if value.lstrip("+-").isdigit() else int(number)) < 2**63:
                return f"is outside the 64-bit integer range: {value!r}"
    except (ValueError, OverflowError):
        return f"should be {expected}, found {value!r}"
    return None


def read_columns(path: str | os.PathLike, kinds: Sequence[type]) -> list[np.ndarray]:
    """Read a headerless space-separated table whose columns have the given kinds (``str``, ``int``, ``float``).

    pandas' C parser reads the file by path (IJB-C's 15.66M-line pair file in about half a second); blank lines are
    kept as rows (``skip_blank_lines=False``) so they fail the typed parse instead of being dropped, which makes
    "one row per line" hold without counting lines. On any parsing problem the file is rescanned line by line to
    raise a :class:`ProtocolError` naming ``path:line`` (the slow scan runs on the error path only).
    """
    path = Path(path)
    if not path.is_file():
        raise file_error(path, None, "file not found")
    if path.stat().st_size == 0:
        raise file_error(path, None, "file is empty")
    dtypes = {i: (object if k is str else np.int64 if k is int else np.float64) for i, k in enumerate(kinds)}
    try:
        df = pd.read_csv(path, sep=" ", header=None, engine="c", dtype=dtypes, na_filter=False, quoting=3,
                         skip_blank_lines=False)
    except (ValueError, pd.errors.ParserError, OverflowError) as exc:  # EmptyDataError, UnicodeError are ValueErrors
        _first_bad_line(path, kinds)
        raise file_error(path, None, f"could not parse: {exc}") from exc
    if df.shape[1] != len(kinds):  # e.g. one column too many on every line, or only str columns
        _first_bad_line(path, kinds)
        raise file_error(path, None, f"expected {len(kinds)} columns, found {df.shape[1]}")
    cols = [df[c].to_numpy() for c in df.columns]
    for i, k in enumerate(kinds):
        if k is str:
            empty = np.flatnonzero(cols[i] == "")
            if empty.size:  # a blank or short line in a table of strings: report it as such
                _first_bad_line(path, kinds)
                raise file_error(path, int(empty[0]) + 1, f"field {i + 1} is empty")
    return cols


def _check_count(path: Path, what: str, found: int, expected: int | None, check: bool) -> None:
    if check and expected is not None and found != expected:
        raise file_error(path, None, f"expected {expected:,} {what} (the official release), found {found:,}. "
                         "If this is a deliberate subset, pass check_counts=False")


# ----------------------------------------------------------------------------------------------------------------
# Meta files
# ----------------------------------------------------------------------------------------------------------------


@dataclass
class IJBMeta:
    """The per-image columns of an IJB release (all arrays of length n_images, file order)."""

    names: np.ndarray  # image names (object array of str), e.g. "1.jpg"
    templates: np.ndarray  # int64 template id per image
    medias: np.ndarray  # int64 media id per image
    landmarks: np.ndarray  # float32 (n, 5, 2), loose_crop coordinates
    det_scores: np.ndarray  # float32 detector score per image
    face_tid_mid: Path
    name_5pts_score: Path


def read_ijb_meta(face_tid_mid: str | os.PathLike, name_5pts_score: str | os.PathLike) -> IJBMeta:
    """Parse ``*_face_tid_mid.txt`` and ``*_name_5pts_score.txt`` and check they list the same images in order."""
    tid_path, pts_path = Path(face_tid_mid), Path(name_5pts_score)
    names, templates, medias = read_columns(tid_path, (str, int, int))
    pts = read_columns(pts_path, (str,) + (float,) * 11)
    pts_names = pts[0]
    if len(pts_names) != len(names):
        raise file_error(pts_path, min(len(pts_names), len(names)) + 1,
                         f"has {len(pts_names):,} lines but {tid_path.name} has {len(names):,}: the two files must "
                         "list the same images in the same order")
    mismatch = np.flatnonzero(pts_names != names)
    if mismatch.size:
        i = int(mismatch[0])
        raise file_error(pts_path, i + 1, f"image {pts_names[i]!r} differs from {names[i]!r} on the same line of "
                         f"{tid_path}: the two files must list the same images in the same order")
    landmarks = np.stack(pts[1:11], axis=1).astype(np.float32).reshape(-1, 5, 2)
    det_scores = pts[11].astype(np.float32)
    return IJBMeta(names, templates, medias, landmarks, det_scores, tid_path, pts_path)


def read_template_pairs(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Parse ``*_template_pair_label.txt``: (template a, template b, label) int64 arrays; labels must be 0 or 1."""
    path = Path(path)
    a, b, labels = read_columns(path, (int, int, int))
    bad = np.flatnonzero((labels != 0) & (labels != 1))
    if bad.size:
        i = int(bad[0])
        raise file_error(path, i + 1, f"label must be 0 or 1, found {labels[i]}")
    return a, b, labels.astype(np.int8)


def template_lookup(template_ids: np.ndarray, wanted: np.ndarray, path: Path, what: str,
                    line_offset: int = 1) -> np.ndarray:
    """Row of each ``wanted`` template id in the sorted ``template_ids``; unknown ids raise at their file line.

    A direct lookup table when the ids are small non-negative integers (IJB: < 200k; O(n) gather: ~0.1 s for IJB-C's
    15.66M pairs on 2 cores, where ``np.searchsorted`` took ~1 s), binary search otherwise.
    """
    if len(template_ids) and template_ids[0] >= 0 and template_ids[-1] <= max(1 << 24, 8 * len(template_ids)):
        lut = np.full(int(template_ids[-1]) + 2, -1, dtype=np.int64)
        lut[template_ids] = np.arange(len(template_ids))
        rows = lut[np.clip(wanted, -1, len(lut) - 1)]  # -1 and the last slot (max id + 1) both hold -1
        bad = np.flatnonzero(rows < 0)
    else:
        idx = np.minimum(np.searchsorted(template_ids, wanted), len(template_ids) - 1)
        rows = idx.astype(np.int64)
        bad = np.flatnonzero(template_ids[idx] != wanted)
    if bad.size:
        i = int(bad[0])
        raise file_error(path, i + line_offset, f"template {wanted[i]} has no image in {what} "
                         f"({bad.size:,} rows reference unknown templates)")
    return rows


# ----------------------------------------------------------------------------------------------------------------
# Template pooling
# ----------------------------------------------------------------------------------------------------------------


@dataclass
class TemplateLayout:
    """Which template and which (template, media) group each image belongs to, as arrays."""

    template_ids: np.ndarray  # sorted unique template ids (row order of pooled features)
    image_template: np.ndarray  # row in template_ids of each image
    group_size: np.ndarray  # images of this image's (template, media) group, per image
    template_media: np.ndarray  # distinct media in this image's template, per image
    template_images: np.ndarray  # images in this image's template, per image

    @classmethod
    def build(cls, templates: np.ndarray, medias: np.ndarray) -> TemplateLayout:
        template_ids, t_inv = np.unique(templates, return_inverse=True)
        _, m_inv = np.unique(medias, return_inverse=True)
        group_key = t_inv.astype(np.int64) * (int(m_inv.max()) + 1 if len(m_inv) else 1) + m_inv
        _, g_inv, g_count = np.unique(group_key, return_inverse=True, return_counts=True)
        group_template = np.zeros(len(g_count), dtype=np.int64)
        group_template[g_inv] = t_inv
        media_per_template = np.bincount(group_template, minlength=len(template_ids))
        images_per_template = np.bincount(t_inv, minlength=len(template_ids))
        return cls(template_ids, t_inv.astype(np.int64), g_count[g_inv], media_per_template[t_inv],
                   images_per_template[t_inv])

    @property
    def n_templates(self) -> int:
        return len(self.template_ids)


def pooling_weights(layout: TemplateLayout, pooling: str, *, norms: np.ndarray | None, keep_norm: bool,
                    det_scores: np.ndarray | None) -> np.ndarray:
    """Weight of each image feature in its template's sum (float64), for one pooling convention.

    * ``media-mean-sum`` (reference, insightface ``eval_ijbc.py``): mean of each media's images, summed over media:
      w = 1 / |media group|.
    * ``media-balanced``: w = 1 / |media group| / |media in template|. After the final L2 normalisation this gives
      the same template direction as the reference (the extra factor is constant within a template); offered so
      toolkits that describe their pooling this way can be named.
    * ``image-mean``: plain mean over the template's images, media ignored: w = 1 / |template images|.
    * ``norm-weighted`` (MagFace-style quality weighting): each image's unit feature weighted by its norm, averaged
      over the template's images (media ignored): w = ||f|| / ||f|| = 1 on the raw feature, whatever ``keep_norm``.

    Then, except for ``norm-weighted``, ``keep_norm=False`` divides by the feature norm (the image feature is
    L2-normalised before pooling). ``det_scores`` (if given) multiplies every weight (the reference's
    ``use_detector_score``).
    """
    if pooling == "media-mean-sum":
        w = 1.0 / layout.group_size
    elif pooling == "media-balanced":
        w = 1.0 / (layout.group_size * layout.template_media)
    elif pooling == "image-mean":
        w = 1.0 / layout.template_images
    elif pooling == "norm-weighted":
        w = np.ones(len(layout.image_template))
    else:
        raise ValueError(f"unknown pooling {pooling!r}; choose one of {', '.join(POOLINGS)}")
    w = w.astype(np.float64)
    if not keep_norm and pooling != "norm-weighted":
        if norms is None:
            raise ValueError("keep_norm=False needs the image feature norms")
        if (norms <= 0).any():
            raise ValueError(f"{int((norms <= 0).sum())} image features have zero norm: cannot L2-normalise them")
        w = w / norms
    if det_scores is not None:
        w = w * det_scores
    return w


def pool_templates(features: np.ndarray, layout: TemplateLayout, weights: np.ndarray) -> np.ndarray:
    """L2-normalised template features (n_templates x dim, float32): ``sum_i weights_i * features_i`` per template.

    One sparse (templates x images) matrix product: the image features are never copied or reweighted in memory.
    """
    n = features.shape[0]
    if len(weights) != n or len(layout.image_template) != n:
        raise ValueError(f"{n} image features but the template layout has {len(layout.image_template)} images")
    w = sp.csr_matrix((weights.astype(np.float32), (layout.image_template, np.arange(n))),
                      shape=(layout.n_templates, n))
    pooled = np.asarray(w @ features, dtype=np.float32)
    norm = np.linalg.norm(pooled, axis=1)
    zero = np.flatnonzero(~(norm > 0))
    if zero.size:
        raise ValueError(f"template {layout.template_ids[zero[0]]} pools to a zero (or non-finite) feature "
                         f"({zero.size} templates): all its weights are zero (detector scores of 0?)")
    pooled /= norm[:, None]
    return pooled


def _compact(idx: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Used rows of ``idx`` (sorted) and each entry's position among them -- O(n), no sort of ``idx``.

    Also the bounds check of ``idx`` for the callers' unchecked gathers (IndexError outside ``[-n, n)``)."""
    present = np.zeros(n, dtype=bool)
    present[idx] = True
    used = np.flatnonzero(present)
    position = np.cumsum(present) - 1
    return used, position[idx]


def pair_scores(features: np.ndarray, idx_a: np.ndarray, idx_b: np.ndarray, *, block_bytes: int = 1 << 29,
                dense_threshold: float = 0.01, dtype: type = np.float32) -> np.ndarray:
    """Cosine score of every pair (rows ``idx_a[k]``, ``idx_b[k]`` of unit-norm ``features``), in ``dtype``.

    When the pairs cover at least ``dense_threshold`` of (used a-rows x used b-rows) -- IJB-C's gallery x probe
    structure covers ~23% -- the scores are read from matrix products of the used rows: one GEMM when the score
    block fits in ``block_bytes`` (IJB-C: 3,531 x 19,593, 277 MB in float32, ~0.4 s on 2 cores), else row blocks
    computed into one reused buffer. Otherwise each chunk of pairs gathers its two rows into cache-sized buffers and
    takes a row-wise dot. A GEMM cell costs ~1/200 of a gathered pair here, so the dense path wins from ~0.5%
    coverage; the threshold keeps a margin. numpy's BLAS is used, not torch's: on the 2-core AMD machine the same
    product took ~0.4 s with numpy (OpenBLAS) and ~0.7-1.2 s with torch (MKL).

    Precision (``dtype``): ``float32`` (default) multiplies and accumulates in float32: max |error| vs a float64
    dot of the same features ~4e-7 (mean ~1e-8) at IJB-C size. Scores that close can come out in a different order
    than in a float64 implementation such as the reference ``eval_ijbc.py``, which moved the TAR@FAR=1e-1 reading by
    one genuine pair of 19,593 on the synthetic IJB-C set (bench/ijb_bench.py --precision). ``float64`` converts the
    features and accumulates in float64 (that reading then matched the reference) for 2-3x the time (IJB-C size on
    2 cores: 1.3-2.2 s instead of 0.6-0.8 s).
    """
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise ValueError(f"dtype must be float32 or float64, not {dtype}")
    n_pairs = len(idx_a)
    out = np.empty(n_pairs, dtype=dtype)
    if n_pairs == 0:
        return out
    feats = np.ascontiguousarray(features, dtype=dtype)
    n, dim = feats.shape
    used_a, pos_a = _compact(idx_a, n)
    used_b, pos_b = _compact(idx_b, n)
    n_b = len(used_b)
    if n_pairs >= dense_threshold * len(used_a) * n_b:
        fa = feats[used_a]
        fbt = feats[used_b].T  # a transposed view: BLAS reads it in place
        rows = max(1, block_bytes // (dtype.itemsize * n_b))
        if rows >= len(used_a):  # one product, one flat gather
            block = fa @ fbt
            np.take(block.reshape(-1), pos_a * n_b + pos_b, out=out, mode="clip")  # in range by construction
            return out
        _blocked_scores(fa, fbt, pos_a, pos_b, rows, out)
    else:
        _gathered_scores(feats, idx_a, idx_b, max(1, min(block_bytes, 1 << 22) // (2 * dtype.itemsize * dim)), out)
    return out


def _blocked_scores(fa: np.ndarray, fbt: np.ndarray, pos_a: np.ndarray, pos_b: np.ndarray, rows: int,
                    out: np.ndarray) -> None:
    """``out[k] = fa[pos_a[k]] . fbt[:, pos_b[k]]``, ``rows`` a-rows at a time into one reused score buffer.

    Pairs are grouped by row block with a stable (radix) argsort of the small block number."""
    n_b = fbt.shape[1]
    n_blocks = -(-len(fa) // rows)
    block_of_pair = (pos_a // rows).astype(np.int16 if n_blocks < 2**15 else np.int64)
    order = np.argsort(block_of_pair, kind="stable")
    bounds = np.searchsorted(block_of_pair[order], np.arange(n_blocks + 1))
    buf = np.empty((rows, n_b), dtype=out.dtype)
    for k in range(n_blocks):
        sel = order[bounds[k]:bounds[k + 1]]
        if sel.size == 0:
            continue
        a = fa[k * rows:(k + 1) * rows]
        block = np.matmul(a, fbt, out=buf[:len(a)])
        out[sel] = block.reshape(-1)[(pos_a[sel] - k * rows) * n_b + pos_b[sel]]


def _gathered_scores(feats: np.ndarray, idx_a: np.ndarray, idx_b: np.ndarray, chunk: int, out: np.ndarray) -> None:
    """``out[k] = feats[idx_a[k]] . feats[idx_b[k]]``, gathering ``chunk`` pairs at a time into reused buffers
    (4 MiB together by default: 1k-pair float32 chunks stay in cache and were ~3x faster than 100k-pair chunks).

    ``_compact`` has already checked the indices (``mode="wrap"`` then only skips numpy's buffered bounds check)."""
    buf_a = np.empty((min(chunk, len(idx_a)), feats.shape[1]), dtype=feats.dtype)
    buf_b = np.empty_like(buf_a)
    for start in range(0, len(idx_a), chunk):
        ia, ib = idx_a[start:start + chunk], idx_b[start:start + chunk]
        a, b = buf_a[:len(ia)], buf_b[:len(ia)]
        np.take(feats, ia, axis=0, out=a, mode="wrap")
        np.take(feats, ib, axis=0, out=b, mode="wrap")
        out[start:start + len(ia)] = np.einsum("ij,ij->i", a, b)


# ----------------------------------------------------------------------------------------------------------------
# Images
# ----------------------------------------------------------------------------------------------------------------


class ArrayImageSource(ImageSource):
    """Images on disk held as column arrays: ``root/rel_paths[i]``, warped with ``landmarks[i]`` (5x2) if given.

    ``rel_paths`` is kept as a fixed-width unicode array (no Python object per image: 469k IJB-C images are two
    arrays) and each :class:`ImageRef` is built on demand; picklable for DataLoader workers. Like
    :class:`fr_bench.protocols.images.FileImageSource` (same decoding and checks), which holds a Python list instead.
    With ``landmarks=None`` every image must already be an aligned 112x112 crop (checked at load).
    """

    def __init__(self, root: str | os.PathLike, rel_paths: np.ndarray, landmarks: np.ndarray | None = None, *,
                 unaligned_hint: str = "") -> None:
        self.root = str(root)
        self.rel_paths = np.asarray(rel_paths, dtype=str)
        self.landmarks = None if landmarks is None else np.asarray(landmarks, dtype=np.float32).reshape(-1, 5, 2)
        if self.landmarks is not None and len(self.landmarks) != len(self.rel_paths):
            raise ValueError(f"{len(self.rel_paths)} images but {len(self.landmarks)} landmark rows")
        self.unaligned_hint = unaligned_hint

    def __len__(self) -> int:
        return len(self.rel_paths)

    def ref(self, i: int) -> ImageRef:
        rel = str(self.rel_paths[i])
        lm = None if self.landmarks is None else tuple((float(x), float(y)) for x, y in self.landmarks[i])
        return ImageRef(key=rel, source=os.path.join(self.root, rel), landmarks=lm)

    def keys(self) -> list[str]:
        return self.rel_paths.tolist()

    def recipe_digest(self) -> str:
        """The landmarks every image is warped with (see :meth:`ImageSource.recipe_digest`)."""
        from fr_bench.protocols.base import landmarks_digest

        return landmarks_digest(self.landmarks)

    def load(self, i: int) -> np.ndarray:
        from fr_bench.protocols.images import check_crop, read_image_file

        path = os.path.join(self.root, str(self.rel_paths[i]))
        img = read_image_file(path)
        if self.landmarks is None:
            return check_crop(img, path, self.unaligned_hint)
        from fr_bench.align import align_face

        return align_face(img, self.landmarks[i], size=CROP_SIZE)


# ----------------------------------------------------------------------------------------------------------------
# The 1:1 protocol
# ----------------------------------------------------------------------------------------------------------------


def spec_file(root: Path, spec: Mapping[str, Any], key: str) -> Path:
    files = spec.get("files", {})
    if key not in files:
        raise ProtocolError(f"{spec.get('spec_file', spec.get('name'))}: [files] has no {key!r} entry")
    return root / files[key]


class IJBBase(Protocol):
    """Shared by 1:1 and 1:N: the image list (every line of face_tid_mid) and per-image template pooling."""

    def __init__(self, root: Path, spec: Mapping[str, Any], *, check_counts: bool, keep_norm: bool,
                 detector_weight: bool, pooling: str) -> None:
        super().__init__(spec)
        self.name = spec.get("name", "")
        self.root = root
        if pooling not in POOLINGS:
            raise ValueError(f"unknown pooling {pooling!r}; choose one of {', '.join(POOLINGS)}")
        self.keep_norm, self.detector_weight, self.pooling = keep_norm, detector_weight, pooling
        counts = spec.get("counts", {})
        self.meta = read_ijb_meta(spec_file(root, spec, "face_tid_mid"), spec_file(root, spec, "name_5pts_score"))
        _check_count(self.meta.face_tid_mid, "images (lines)", len(self.meta.names), counts.get("images"),
                     check_counts)
        self.layout = TemplateLayout.build(self.meta.templates, self.meta.medias)
        _check_count(self.meta.face_tid_mid, "distinct templates", self.layout.n_templates,
                     counts.get("templates"), check_counts)
        images_dir = spec.get("files", {}).get("images_dir", "loose_crop")
        self._images = ArrayImageSource(root, np.char.add(images_dir + "/", self.meta.names.astype(str)),
                                        self.meta.landmarks)
        self._files = [str(self.meta.face_tid_mid), str(self.meta.name_5pts_score), str(root / images_dir)]

    @property
    def images(self) -> ImageSource:
        return self._images

    @property
    def data_files(self) -> Sequence[str]:
        return list(self._files)

    def template_features(self, embeddings: np.ndarray, norms: np.ndarray | None = None,
                          pooling: str | None = None) -> np.ndarray:
        """Unit template features (rows in ``self.layout.template_ids`` order) from raw image embeddings."""
        emb = self.check_embeddings(embeddings)
        pooling = pooling or self.pooling
        if norms is None and (not self.keep_norm):
            norms = np.linalg.norm(emb, axis=1)
        weights = pooling_weights(self.layout, pooling, norms=None if norms is None else np.asarray(norms, float),
                                  keep_norm=self.keep_norm,
                                  det_scores=self.meta.det_scores.astype(np.float64) if self.detector_weight else None)
        return pool_templates(emb, self.layout, weights)

    def pooling_conventions(self, pooling: str, flip: str) -> dict[str, str]:
        """The pooling, image-feature and flip conventions a result records."""
        return {"pooling": pooling, "image_feature": ("raw (norm kept)" if self.keep_norm else "L2-normalised")
                + (" x detector score" if self.detector_weight else ""), "flip": flip}


class IJBVerification(IJBBase):
    """IJB-B/C 1:1 template verification (insightface ``eval_ijbc.py`` procedure by default)."""

    def __init__(self, root: Path, spec: Mapping[str, Any], *, check_counts: bool = True, keep_norm: bool = True,
                 detector_weight: bool = True, pooling: str = "media-mean-sum") -> None:
        super().__init__(root, spec, check_counts=check_counts, keep_norm=keep_norm,
                         detector_weight=detector_weight, pooling=pooling)
        pair_path = spec_file(root, spec, "template_pair_label")
        a, b, self.labels = read_template_pairs(pair_path)
        _check_count(pair_path, "pairs (lines)", len(self.labels), spec.get("counts", {}).get("pairs"), check_counts)
        ids = self.layout.template_ids
        self.template_a, self.template_b = a, b
        self.row_a = template_lookup(ids, a, pair_path, self.meta.face_tid_mid.name)
        self.row_b = template_lookup(ids, b, pair_path, self.meta.face_tid_mid.name)
        self._files.append(str(pair_path))
        self.subjects = read_template_subjects(root, spec)

    @property
    def conventions(self) -> dict[str, list[str]]:
        return {"tar": list(TAR_CONVENTIONS), "pooling": default_first(POOLINGS, self.pooling),
                **self.shared_conventions()}

    def pair_subjects(self) -> tuple[np.ndarray, np.ndarray] | None:
        """Subject of each pair's two templates from the 1:N CSVs (-1 where absent), or None without CSVs."""
        if self.subjects is None:
            return None
        if getattr(self, "_pair_subjects", None) is None:
            subj_ids, subj_of = self.subjects
            self._pair_subjects = (_subjects_of(subj_ids, subj_of, self.template_a),
                                   _subjects_of(subj_ids, subj_of, self.template_b))
        return self._pair_subjects

    def resampling_units(self) -> Any:
        """Bootstrap unit of each pair side: the subject when the 1:N CSVs map templates to subjects (a template
        missing from them stands as its own unit, flagged), else the template (flagged: likely too narrow)."""
        from fr_bench.protocols.scoring import Units

        if self.subjects is None:
            return Units.from_values(self.template_a, self.template_b, "template", note=(
                "intervals resample templates: no 1:N CSVs give template -> subject here, and templates of one "
                "subject are correlated, so the intervals are likely too narrow"))
        sa, sb = self.pair_subjects()
        missing = (sa < 0) | (sb < 0)
        if not missing.any():
            return Units.from_values(sa, sb, "subject")
        # a template without subject: its own unit, coded apart from every subject id
        va = np.where(sa >= 0, sa.astype(np.float64), -1.0 - self.template_a)
        vb = np.where(sb >= 0, sb.astype(np.float64), -1.0 - self.template_b)
        return Units.from_values(va, vb, "subject", note=(
            f"{int(missing.sum()):,} pairs involve templates absent from the 1:N CSVs: each such template is "
            "resampled as its own unit"))

    def evaluate(self, embeddings: np.ndarray, norms: np.ndarray | None = None, *,
                 conventions: Mapping[str, str] | None = None, ci: float | None = None, n_boot: int = 1000,
                 seed: int = 0) -> ProtocolResult:
        """TAR@FAR / EER / AUC of the template pairs (shared path ``scoring.score_verification``).

        Intervals (``ci``): resample subjects when the 1:N CSVs give template -> subject, else templates (flagged:
        correlated templates make them too narrow); the EER interval is skipped on full-size sets (cost
        ``n_boot x n_pairs``, flagged). ``result.scores.pairs``: the ``scoring`` record (no accuracy, so no
        ``folds``/``correct``) with extras ``template_a``/``template_b`` and, with the CSVs,
        ``subject_a``/``subject_b`` (-1: template not in the CSVs), all int32.
        """
        from fr_bench.protocols.scoring import pair_record, score_verification
        from fr_bench.results import ScoreRecords

        chosen = self.choose(conventions)
        tar_conv, pooling = chosen["tar"], chosen["pooling"]
        feats = self.template_features(embeddings, norms, pooling)
        scores = pair_scores(feats, self.row_a, self.row_b)
        fars = tuple(self.spec.get("metrics", {}).get("fars", DEFAULT_FARS))
        result = ProtocolResult(protocol=self.name, metrics={},
                                conventions={"tar": tar_conv, "score": "cosine of L2-normalised template features "
                                             f"pooled from {FLIP_FEATURES[chosen['flip']]}",
                                             **self.pooling_conventions(pooling, chosen["flip"])})
        units = self.resampling_units()
        score_verification(result, scores, self.labels, fars=fars, convention=tar_conv,
                           units=units, ci=ci, n_boot=n_boot, seed=seed)
        result.details["counts"].update({"images": len(self.meta.names), "templates": self.layout.n_templates,
                                         "pairs": len(self.labels)})
        extra = {"template_a": self.template_a.astype(np.int32), "template_b": self.template_b.astype(np.int32)}
        if self.subjects is not None:
            sa, sb = self.pair_subjects()
            extra.update({"subject_a": sa.astype(np.int32), "subject_b": sb.astype(np.int32)})
            missing = int(((sa < 0) | (sb < 0)).sum())
            if missing:
                result.flags.append(f"{missing:,} pairs involve templates absent from the 1:N CSVs: their subject is "
                                    "-1 in scores['subject_a'/'subject_b']")
        else:
            result.details["subjects"] = ("no 1:N CSVs in meta/: the 1:1 files carry no subject ids, so "
                                          "subject-level bootstrap is unavailable (intervals resample templates)")
        result.scores = ScoreRecords(pairs=pair_record(scores, self.labels, units, **extra))
        return result


def read_template_subjects(root: Path, spec: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray] | None:
    """(sorted template ids, subject id of each) from whichever 1:N CSVs exist in meta/; None if none exist."""
    from fr_bench.protocols.ijb_1n import read_1n_csv

    files = spec.get("files", {}).get("subject_csvs", [])
    tids, sids = [], []
    for rel in files:
        path = root / rel
        if path.is_file():
            t, s = read_1n_csv(path)
            tids.append(t)
            sids.append(s)
    if not tids:
        return None
    t = np.concatenate(tids)
    s = np.concatenate(sids)
    order = np.argsort(t, kind="stable")
    t, s = t[order], s[order]
    first = np.concatenate([[True], t[1:] != t[:-1]])
    return t[first], s[first]


def _subjects_of(template_ids: np.ndarray, subjects: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    idx = np.minimum(np.searchsorted(template_ids, wanted), len(template_ids) - 1)
    return np.where(template_ids[idx] == wanted, subjects[idx], -1).astype(np.int64)


def _load(root: str | os.PathLike | None, spec: Mapping[str, Any], **options: Any) -> IJBVerification:
    return IJBVerification(require_root(root, spec, folder=True), spec, **options)


def load_ijbc(root: str | os.PathLike | None, spec: Mapping[str, Any], *, check_counts: bool = True,
              keep_norm: bool = True, detector_weight: bool = True, pooling: str = "media-mean-sum") -> IJBVerification:
    """IJB-C 1:1 over ``root`` = the ``IJBC`` folder (``meta/``, ``loose_crop/``)."""
    return _load(root, spec, check_counts=check_counts, keep_norm=keep_norm, detector_weight=detector_weight,
                 pooling=pooling)


def load_ijbb(root: str | os.PathLike | None, spec: Mapping[str, Any], *, check_counts: bool = True,
              keep_norm: bool = True, detector_weight: bool = True, pooling: str = "media-mean-sum") -> IJBVerification:
    """IJB-B 1:1 over ``root`` = the ``IJBB`` folder (``meta/``, ``loose_crop/``)."""
    return _load(root, spec, check_counts=check_counts, keep_norm=keep_norm, detector_weight=detector_weight,
                 pooling=pooling)
