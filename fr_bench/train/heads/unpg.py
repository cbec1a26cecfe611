"""UNPG, Unified Negative Pair Generation (Jung et al., ECCV 2022), wrapping CosFace, ArcFace or MagFace.

As the released code (jung-jun-uk/unpg, ``recognition/models/build.py``) does it:

1. from the batch's L2-normalised embeddings take the cosine of every pair with different labels, each unordered
   pair once (upper triangle), giving n values;
2. sort them; Q1 = sorted[int(0.25 n)], Q3 = sorted[int(0.75 n)], IQR = Q3 - Q1; keep the values in
   [Q1 - w IQR, Q3 + w IQR] (both ends included), w = 1.5 (the authors' ``unpg: wisk: 1.5``);
3. append the kept cosines as extra negative columns to EVERY row of the wrapped head's margin logits, scaled by
   the head's s, and take the cross-entropy against the true class. The kept cosines are not detached (as released).

A batch with a single identity has no negative pair: no column is added and the loss is the base head's. The base
head's regulariser (MagFace's g) is added. ``gather=True`` forms the pairs over the global batch under
torch.distributed (embeddings gathered with gradient, see :mod:`.distributed`); the released code forms them per
GPU, which is the default here too. :meth:`UNPGHead.cross_entropy` computes the loss without materialising the
(B, n) block (the extra columns are the same for every row: logsumexp once); :meth:`UNPGHead.logits` returns the
full (B, C + kept) matrix.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from fr_bench.train.heads.base import CosineHead, Head, check_batch, full_precision
from fr_bench.train.heads.distributed import all_gather_batch


def negative_pair_cosines(embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cosines of every unordered pair (i < j) with labels[i] != labels[j], in row-major order (1-D)."""
    e = F.normalize(full_precision(embeddings))
    sim = e @ e.t()
    mask = (labels.unsqueeze(1) != labels.unsqueeze(0)).triu(diagonal=1)
    return sim[mask]


def box_and_whisker(values: torch.Tensor, w: float = 1.5) -> torch.Tensor:
    """Sorted ``values`` kept inside [Q1 - w IQR, Q3 + w IQR], Q1 = sorted[int(0.25 n)], Q3 = sorted[int(0.75 n)]."""
    n = values.numel()
    if n == 0:
        return values
    ordered = torch.sort(values).values
    q1, q3 = ordered[int(0.25 * n)], ordered[int(0.75 * n)]
    iqr = q3 - q1
    keep = (ordered >= q1 - w * iqr) & (ordered <= q3 + w * iqr)
    return ordered[keep]


class UNPGHead(Head):
    """A margin head plus the batch's filtered negative-pair cosines as extra negative logits."""

    def __init__(self, base: CosineHead, *, w: float = 1.5, gather: bool = False) -> None:
        super().__init__()
        if not hasattr(base, "s"):
            raise ValueError(f"UNPG wraps a scaled cosine head (cosface, arcface, magface), got {type(base).__name__}")
        if w < 0:
            raise ValueError(f"UNPG whisker w must be >= 0, got {w}")
        self.base, self.w, self.gather = base, float(w), bool(gather)

    @property
    def weight(self) -> torch.Tensor:
        """The wrapped head's (C, D) class weights."""
        return self.base.weight

    @property
    def s(self) -> float:
        return self.base.s

    def kept_negatives(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The filtered negative-pair cosines of the batch (global batch when ``gather``), sorted, 1-D."""
        if self.gather:
            embeddings, labels = all_gather_batch(embeddings, labels, differentiable=True)
        return box_and_whisker(negative_pair_cosines(embeddings, labels), self.w)

    def margin_logits(self, cos: torch.Tensor, labels: torch.Tensor,
                      norms: torch.Tensor | None = None) -> torch.Tensor:
        """The wrapped head's margin logits (the pair columns need embeddings: see :meth:`logits`)."""
        return self.base.margin_logits(cos, labels, norms)

    def logits(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """(B, C + kept): the base head's margin logits, then s * kept cosines repeated on every row."""
        check_batch(embeddings, labels)
        z = self.base.logits(embeddings, labels)
        extra = self.s * self.kept_negatives(embeddings, labels)
        return torch.cat([z, extra.unsqueeze(0).expand(z.shape[0], -1)], dim=1)

    def cross_entropy(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        z = self.base.logits(embeddings, labels)
        lse = torch.logsumexp(z, dim=1)
        extra = self.s * self.kept_negatives(embeddings, labels)
        if extra.numel():
            lse = torch.logaddexp(lse, torch.logsumexp(extra, dim=0))
        return (lse - z.gather(1, labels.unsqueeze(1)).squeeze(1)).mean()

    def regularizer(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor | float:
        return self.base.regularizer(embeddings, labels)

    def update_state(self, embeddings: torch.Tensor, labels: torch.Tensor) -> None:
        self.base.update_state(embeddings, labels)

    def on_step(self, step: int) -> None:
        """Forwarded to the base head when it anneals something."""
        if hasattr(self.base, "on_step"):
            self.base.on_step(step)

    def extra_repr(self) -> str:
        return f"w={self.w}, gather={self.gather}"


UNPG_BASES = ("cosface", "arcface", "magface")


def unpg(embedding_size: int, num_classes: int, *, base: str = "arcface", w: float = 1.5, gather: bool = False,
         **base_params) -> UNPGHead:
    """UNPG around ``base`` (cosface, arcface or magface; its own parameters pass through ``base_params``)."""
    from fr_bench.train.heads.registry import HeadConfigError, build_head, check_params

    if base not in UNPG_BASES:
        raise HeadConfigError(f"UNPG wraps one of {', '.join(UNPG_BASES)}; got base={base!r}")
    check_params(base, base_params, extra=("base", "w", "gather"))
    inner = build_head(base, embedding_size=embedding_size, num_classes=num_classes, **base_params)
    return UNPGHead(inner, w=w, gather=gather)
