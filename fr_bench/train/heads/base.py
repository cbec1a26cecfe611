"""What every head shares: the call contract, the cross-entropy, and the normalised (cosine) classifier.

Contract (TRAIN_INTERFACES.md): ``loss = head(embeddings, labels)`` is the batch-mean training loss with the head's
regularisers included; ``head.logits(embeddings, labels)`` the scaled logits that enter the cross-entropy;
``head.weight`` the (C, D) class weights. Heads whose state follows a rule rather than the gradient (centre loss
centres, IR-Softmax weights) keep it in buffers and update it in :meth:`Head.update_state`, which ``forward`` calls
under ``torch.no_grad()`` after the loss is computed, in training mode only.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def full_precision(t: torch.Tensor) -> torch.Tensor:
    """``t`` in float32 if it is float16/bfloat16 (autocast), unchanged otherwise (float64 stays float64)."""
    return t.float() if t.dtype in (torch.float16, torch.bfloat16) else t


def check_batch(embeddings: torch.Tensor, labels: torch.Tensor) -> None:
    """Raise ValueError unless ``embeddings`` is (B, D) and ``labels`` a (B,) integer tensor."""
    if embeddings.dim() != 2:
        raise ValueError(f"embeddings must be (batch, dim), got shape {tuple(embeddings.shape)}")
    if labels.dim() != 1 or labels.shape[0] != embeddings.shape[0]:
        raise ValueError(f"labels must be ({embeddings.shape[0]},), got shape {tuple(labels.shape)}")
    if labels.dtype.is_floating_point or labels.dtype == torch.bool:
        raise ValueError(f"labels must be an integer tensor, got {labels.dtype}")


class Head(nn.Module):
    """Base class: ``forward`` = cross-entropy of :meth:`logits` + :meth:`regularizer`, then :meth:`update_state`."""

    #: True only for heads that take the model's ``forward_train`` dict instead of embeddings (GroupFace).
    wants_model_outputs: bool = False
    head_name: str = ""

    def logits(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Scaled logits (B, C[+extra]) entering the cross-entropy, margins applied."""
        raise NotImplementedError

    def regularizer(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor | float:
        """Extra loss terms added to the cross-entropy (already weighted); 0 by default."""
        return 0.0

    def update_state(self, embeddings: torch.Tensor, labels: torch.Tensor) -> None:
        """Rule-based update of buffers from a detached batch (no-op by default)."""

    def cross_entropy(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy of :meth:`logits` against the true class (subclasses may compute it faster)."""
        return F.cross_entropy(self.logits(embeddings, labels), labels)

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        check_batch(embeddings, labels)
        loss = self.cross_entropy(embeddings, labels) + self.regularizer(embeddings, labels)
        if self.training:
            with torch.no_grad():
                self.update_state(embeddings.detach(), labels)
        return loss


class CosineHead(Head):
    """A bias-free classifier on the unit sphere: cos(theta_j) = <x/||x||, w_j/||w_j||>.

    ``init`` is the weight initialisation: ``"normal"`` N(0, 0.01) as arcface_torch, or ``"xavier"``
    (Xavier-uniform, the filler of SphereFace's released Caffe prototxt). The cosines come back at least in float32 and
    clipped to [-1, 1] whatever the autocast dtype, so margins are computed in full precision.
    """

    def __init__(self, embedding_size: int, num_classes: int, *, init: str = "normal") -> None:
        super().__init__()
        self.embedding_size = embedding_size
        self.num_classes = num_classes
        weight = torch.empty(num_classes, embedding_size)
        if init == "normal":
            nn.init.normal_(weight, 0.0, 0.01)
        elif init == "xavier":
            nn.init.xavier_uniform_(weight)
        else:
            raise ValueError(f"unknown weight init {init!r}; choose 'normal' or 'xavier'")
        self.weight = nn.Parameter(weight)

    def cosine(self, embeddings: torch.Tensor) -> torch.Tensor:
        """cos(theta) (B, C) between the embeddings and every class weight, float32, clipped to [-1, 1]."""
        cos = F.linear(F.normalize(embeddings), F.normalize(self.weight))
        return full_precision(cos).clamp(-1.0, 1.0)

    def margin_logits(self, cos: torch.Tensor, labels: torch.Tensor,
                      norms: torch.Tensor | None = None) -> torch.Tensor:
        """Scaled logits from precomputed cosines (B, C) (Partial FC calls this); ``norms`` = ||x|| (B,)."""
        raise NotImplementedError

    def logits(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        check_batch(embeddings, labels)
        return self.margin_logits(self.cosine(embeddings), labels, full_precision(embeddings).norm(dim=1))

    def extra_repr(self) -> str:
        return f"embedding_size={self.embedding_size}, num_classes={self.num_classes}"
