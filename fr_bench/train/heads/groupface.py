"""The GroupFace loss (Kim et al., CVPR 2020): ArcFace on the final representation + 0.1 x the group loss.

The architecture is ``fr_bench.models.backbones.groupface`` (``"groupface"``); this head takes its
``forward_train`` dict. How the trainer calls it: ``head.wants_model_outputs`` is True, so
``loss = head(model.forward_train(x), labels)`` (every other head gets ``head(model(x), labels)``); through
DistributedDataParallel use ``head(ddp_model(x, train_outputs=True), labels)`` so DDP's gradient hooks run.

* Identity loss: ArcFace (s 64, m 0.5, the paper's choice) on ``outputs["embedding"]``.
* Self-distributed labels: with p(G_k | x) the GDN's softmax (detached), the group label of sample i is
  argmax_k [p(G_k | x_i) - mean over the batch of p(G_k | x) + 1/K] (the paper also divides the centred term by K,
  which leaves the argmax unchanged). Subtracting the batch expectation pushes samples towards rarely chosen groups,
  balancing the groups without any annotation.
* Group loss: cross-entropy between the GDN logits and those labels, weight ``group_weight`` = 0.1.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F

from fr_bench.train.heads.angular import MarginHead
from fr_bench.train.heads.base import Head, check_batch, full_precision


def self_distributed_labels(probs: torch.Tensor) -> torch.Tensor:
    """argmax_k (p_ik - mean_i p_ik + 1/K): GroupFace's balanced group labels (B,) from probabilities (B, K)."""
    probs = probs.detach()
    return (probs - probs.mean(dim=0, keepdim=True) + 1.0 / probs.shape[1]).argmax(dim=1)


class GroupFaceHead(Head):
    """ArcFace on the final representation + group_weight * CE(GDN logits, self-distributed labels)."""

    wants_model_outputs = True

    def __init__(self, embedding_size: int, num_classes: int, *, s: float = 64.0, m: float = 0.5,
                 easy_margin: bool = False, group_weight: float = 0.1) -> None:
        super().__init__()
        self.arcface = MarginHead(embedding_size, num_classes, s=s, m2=m,
                                  extension="easy" if easy_margin else "arcface")
        self.group_weight = float(group_weight)

    @property
    def weight(self) -> torch.Tensor:
        """The ArcFace class weights (C, D)."""
        return self.arcface.weight

    @property
    def s(self) -> float:
        return self.arcface.s

    @staticmethod
    def _unpack(outputs: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        if not isinstance(outputs, Mapping) or "embedding" not in outputs or "group_logits" not in outputs:
            raise TypeError("the groupface head takes the dict of GroupFace.forward_train(x) (keys 'embedding', "
                            "'group_logits'), not plain embeddings: call head(model.forward_train(x), labels)")
        return outputs["embedding"], outputs["group_logits"]

    def margin_logits(self, cos: torch.Tensor, labels: torch.Tensor,
                      norms: torch.Tensor | None = None) -> torch.Tensor:
        return self.arcface.margin_logits(cos, labels, norms)

    def logits(self, outputs: Mapping[str, torch.Tensor], labels: torch.Tensor) -> torch.Tensor:
        """ArcFace logits of the final representation (B, C)."""
        embedding, _ = self._unpack(outputs)
        return self.arcface.logits(embedding, labels)

    def group_loss(self, group_logits: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of the GDN against its self-distributed labels."""
        group_logits = full_precision(group_logits)
        labels = self_distributed_labels(group_logits.softmax(dim=1))
        return F.cross_entropy(group_logits, labels)

    def forward(self, outputs: Mapping[str, torch.Tensor], labels: torch.Tensor) -> torch.Tensor:
        embedding, group_logits = self._unpack(outputs)
        check_batch(embedding, labels)
        return self.arcface(embedding, labels) + self.group_weight * self.group_loss(group_logits)


def groupface(embedding_size: int, num_classes: int, *, s: float = 64.0, m: float = 0.5, easy_margin: bool = False,
              group_weight: float = 0.1) -> GroupFaceHead:
    """GroupFace's loss: ArcFace (s 64, m 0.5) + 0.1 x group loss with self-distributed labels."""
    return GroupFaceHead(embedding_size, num_classes, s=s, m=m, easy_margin=easy_margin, group_weight=group_weight)
