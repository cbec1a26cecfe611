"""IJB template features and template-pair scores, vectorised.

* template pooling is one sparse (templates x images) weight matrix times the image features: each pooling
  convention is just a different weight per image (:func:`pooling_weights`);
* pair scores are one gather-dot over all pairs, computed as blocked matrix products when the pair set is dense in
  its templates (IJB's enrolment x verification structure) and as chunked row gathers otherwise (:func:`pair_scores`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from fr_bench.similarity import ScoreFunction

#: Pooling conventions, the reference first.
POOLINGS = ("media-mean-sum", "media-balanced", "image-mean", "norm-weighted")


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


def pool_templates(features: np.ndarray, layout: TemplateLayout, weights: np.ndarray, *,
                   normalise: bool = True) -> np.ndarray:
    """Template features (n_templates x dim, float32): ``sum_i weights_i * features_i`` per template, L2-normalised
    when ``normalise`` (else left for the score function's ``prepare``). A template pooling to zero raises.

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
    if normalise:
        pooled /= norm[:, None]
    return pooled


def _compact(idx: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Used rows of ``idx`` (sorted) and each entry's position among them -- O(n), no sort of ``idx``.

    Also the bounds check of ``idx`` for the callers' unchecked gathers (IndexError outside ``[-n, n)``)."""
    present = np.zeros(n, dtype=bool)
    present[idx] = True
    used = np.flatnonzero(present)
    position = np.cumsum(present, dtype=np.int32 if n < 2**31 else np.int64) - 1  # int32: half the per-pair memory
    return used, position[idx]


def pair_scores(features: np.ndarray, idx_a: np.ndarray, idx_b: np.ndarray, *, score: ScoreFunction | None = None,
                block_bytes: int = 1 << 29, dense_threshold: float = 0.01, dtype: type = np.float32) -> np.ndarray:
    """Score of every pair (rows ``idx_a[k]``, ``idx_b[k]`` of the PREPARED ``features``), in ``dtype``.

    ``score`` (default: the registry's cosine) is a :class:`fr_bench.similarity.ScoreFunction` whose ``prepare``
    the caller has applied. A score that is the cosine of its prepared rows is a dot product of them: the fast paths
    below. Any other score is computed by its ``rows`` on chunks of gathered pairs.

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
    if score is not None and not score.cosine_of_prepared:
        _compact(idx_a, len(features)), _compact(idx_b, len(features))  # bounds checks
        for start in range(0, n_pairs, 1 << 16):
            sl = slice(start, start + (1 << 16))
            out[sl] = score.rows(features[idx_a[sl]], features[idx_b[sl]])
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
        if rows >= len(used_a):  # one product, one flat gather (flat indices a chunk at a time: no per-pair int64)
            flat = (fa @ fbt).reshape(-1)
            for start in range(0, n_pairs, 1 << 20):
                sl = slice(start, start + (1 << 20))
                np.take(flat, pos_a[sl].astype(np.int64) * n_b + pos_b[sl], out=out[sl], mode="clip")  # in range
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
        out[sel] = block.reshape(-1)[(pos_a[sel].astype(np.int64) - k * rows) * n_b + pos_b[sel]]  # 64-bit index


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
