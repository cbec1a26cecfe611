"""IR-Softmax, Imbalance-Robust Softmax (Zhu, Yuan, Hu, Wu, Robertson, ACCV 2020), on SphereFace and CosFace.

The paper finds that under class imbalance the learned class weights drift away from their class centres, and
sets each weight to its class centre instead of learning it. Here the wrapped head's ``weight`` becomes a buffer
(the optimiser never sees it) holding, for every class seen so far, the L2-normalised running centre of that
class's features; classes not yet seen keep their initial weight. After each training forward (global batch
under torch.distributed), for every class j in the batch with mean raw feature xbar_j:

    first time j is seen:  c_j = xbar_j;        afterwards:  c_j <- momentum c_j + (1 - momentum) xbar_j,
    w_j = c_j / ||c_j||,

``momentum = 0.9`` by default. No code has been released with the paper, so the momentum value is ours (the
paper's rule is the centre itself; an exponential average is the usual mini-batch estimate of it). The loss of a
batch uses the weights as they stood before that batch's update (as centre loss does). The margin, scale and
SphereFace lambda schedule are the wrapped head's (``ir_sphereface`` / ``ir_cosface``), given as flat keys or in
the ``base_params`` table (needed for SphereFace's ``base``, a name the wrapper keeps for the wrapped head).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F

from fr_bench.train.heads.base import CosineHead, Head, check_batch
from fr_bench.train.heads.distributed import all_gather_batch

IR_BASES = ("sphereface", "cosface")


class IRSoftmaxHead(Head):
    """A cosine head whose class weights are the normalised running class centres (buffers, no gradient)."""

    def __init__(self, base: CosineHead, *, momentum: float = 0.9) -> None:
        super().__init__()
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"IR-Softmax momentum must be in [0, 1), got {momentum}")
        initial = F.normalize(base.weight.detach().clone())
        del base.weight  # no longer a parameter: the rule below sets it
        base.register_buffer("weight", initial)
        self.base, self.momentum = base, float(momentum)
        self.register_buffer("centers", torch.zeros_like(initial))
        self.register_buffer("seen", torch.zeros(initial.shape[0], dtype=torch.bool))

    @property
    def weight(self) -> torch.Tensor:
        """The (C, D) class weights: normalised running centres (initial weights for classes not seen yet)."""
        return self.base.weight

    def logits(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        check_batch(embeddings, labels)
        return self.base.logits(embeddings, labels)

    def margin_logits(self, cos: torch.Tensor, labels: torch.Tensor,
                      norms: torch.Tensor | None = None) -> torch.Tensor:
        return self.base.margin_logits(cos, labels, norms)

    def update_state(self, embeddings: torch.Tensor, labels: torch.Tensor) -> None:
        """Move each batch class's centre towards its batch mean; its weight becomes the normalised centre."""
        embeddings, labels = all_gather_batch(embeddings, labels)
        num_classes = self.centers.shape[0]
        counts = torch.bincount(labels, minlength=num_classes)
        present = counts > 0
        sums = torch.zeros_like(self.centers).index_add_(0, labels, embeddings.to(self.centers.dtype))
        means = sums / counts.clamp_min(1).unsqueeze(1).to(sums.dtype)
        ones = torch.ones_like(counts, dtype=sums.dtype)
        rate = torch.where(self.seen, ones * (1.0 - self.momentum), ones).unsqueeze(1)
        self.centers.copy_(torch.where(present.unsqueeze(1), self.centers + rate * (means - self.centers),
                                       self.centers))
        self.seen |= present
        self.base.weight.copy_(torch.where(present.unsqueeze(1), F.normalize(self.centers), self.base.weight))

    def on_step(self, step: int) -> None:
        """Forwarded to the base head (SphereFace's lambda annealing)."""
        if hasattr(self.base, "on_step"):
            self.base.on_step(step)

    def extra_repr(self) -> str:
        return f"momentum={self.momentum}"


def _base_params(base_params: Mapping[str, Any] | None, flat: Mapping[str, Any]) -> dict[str, Any]:
    """The wrapped head's parameters: the ``base_params`` table merged with the flat keys (a key in both raises)."""
    from fr_bench.train.heads.registry import HeadConfigError

    nested = dict(base_params or {})
    twice = sorted(set(nested) & set(flat))
    if twice:
        raise HeadConfigError(f"parameter(s) {', '.join(map(repr, twice))} given both flat and in base_params")
    return {**flat, **nested}


def ir_softmax(embedding_size: int, num_classes: int, *, base: str = "cosface", momentum: float = 0.9,
               base_params: Mapping[str, Any] | None = None, **flat: Any) -> IRSoftmaxHead:
    """IR-Softmax around ``base`` (sphereface or cosface). The base head's parameters are the flat keys or, for
    names the wrapper itself uses (SphereFace's ``base`` of its lambda schedule), the ``base_params`` table."""
    from fr_bench.train.heads.registry import HeadConfigError, build_head, check_params

    if base not in IR_BASES:
        raise HeadConfigError(f"IR-Softmax wraps one of {', '.join(IR_BASES)}; got base={base!r}")
    params = _base_params(base_params, flat)
    check_params(base, params, extra=("base", "momentum", "base_params"))
    inner = build_head(base, embedding_size=embedding_size, num_classes=num_classes, **params)
    return IRSoftmaxHead(inner, momentum=momentum)


def _fixed_base(base: str):
    def factory(embedding_size: int, num_classes: int, *, momentum: float = 0.9,
                base_params: Mapping[str, Any] | None = None, **flat: Any) -> IRSoftmaxHead:
        if "base" in flat:
            from fr_bench.train.heads.registry import HeadConfigError
            raise HeadConfigError(f"head 'ir_{base}' fixes base={base!r} (the wrapped head), so 'base' is not a "
                                  f"parameter here; set the {base} head's own parameters (SphereFace's "
                                  "lambda-schedule 'base' included) in base_params = {...}, or use 'ir_softmax' "
                                  "to choose the wrapped head")
        return ir_softmax(embedding_size, num_classes, base=base, momentum=momentum, base_params=base_params,
                          **flat)

    factory.__name__ = f"ir_{base}"
    factory.__doc__ = (f"IR-Softmax on {base} (class weights = normalised running class centres); the {base} "
                       "head's parameters as flat keys or in ``base_params``.")
    return factory


ir_sphereface = _fixed_base("sphereface")
ir_cosface = _fixed_base("cosface")
