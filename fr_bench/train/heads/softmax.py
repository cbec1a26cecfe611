"""Plain softmax (linear layer with bias + cross-entropy) and Center loss (Wen et al., ECCV 2016).

Center loss: L = L_softmax + lambda L_C with L_C = 1/2 mean_i ||x_i - c_{y_i}||^2 (the paper's 1/2 sum over the
mini-batch, divided by the batch size as the released Caffe layer does: ``loss = dot / M / 2``). The centres are a
buffer, updated after the loss by the paper's rule (its eq. 4), not by the optimiser:

    delta c_j = sum_i [y_i = j] (c_j - x_i) / (1 + sum_i [y_i = j]),      c_j <- c_j - alpha delta c_j,

with the paper's face-recognition values lambda = 0.003 and alpha = 0.5 (the released ``face_train_test.prototxt``
uses loss_weight 0.008 and lets the solver move the centres at the base learning rate; we follow the paper's rule).
Centres start Xavier-uniform (the released layer's ``center_filler``). Under torch.distributed the update uses the
global batch (gathered), so every rank holds the same centres.
"""

from __future__ import annotations

import torch
from torch import nn

from fr_bench.train.heads.base import Head, check_batch, full_precision
from fr_bench.train.heads.distributed import all_gather_batch


class SoftmaxHead(Head):
    """Linear classifier with bias; logits = x W^T + b, unscaled."""

    def __init__(self, embedding_size: int, num_classes: int) -> None:
        super().__init__()
        self.embedding_size, self.num_classes = embedding_size, num_classes
        self.fc = nn.Linear(embedding_size, num_classes, bias=True)

    @property
    def weight(self) -> nn.Parameter:
        """The (C, D) class weights (the linear layer's)."""
        return self.fc.weight

    def logits(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        check_batch(embeddings, labels)
        return full_precision(self.fc(embeddings))


class CenterLossHead(SoftmaxHead):
    """Softmax + lambda * centre loss; centres follow the paper's update rule with rate ``alpha``."""

    def __init__(self, embedding_size: int, num_classes: int, *, lam: float = 0.003, alpha: float = 0.5) -> None:
        super().__init__(embedding_size, num_classes)
        if lam < 0 or not 0 <= alpha <= 1:
            raise ValueError(f"center loss needs lam >= 0 and 0 <= alpha <= 1, got lam={lam}, alpha={alpha}")
        self.lam, self.alpha = float(lam), float(alpha)
        centers = torch.empty(num_classes, embedding_size)
        nn.init.xavier_uniform_(centers)
        self.register_buffer("centers", centers)

    def center_loss(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """L_C = 1/2 mean_i ||x_i - c_{y_i}||^2 (centres are constants here)."""
        diff = full_precision(embeddings) - self.centers[labels]
        return 0.5 * (diff * diff).sum(dim=1).mean()

    def regularizer(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.lam * self.center_loss(embeddings, labels)

    def update_state(self, embeddings: torch.Tensor, labels: torch.Tensor) -> None:
        """c_j <- c_j - alpha sum_i [y_i = j](c_j - x_i) / (1 + n_j) for every class j in the (global) batch."""
        embeddings, labels = all_gather_batch(embeddings, labels)
        counts = torch.bincount(labels, minlength=self.num_classes).to(self.centers.dtype)
        residual = self.centers[labels] - embeddings.to(self.centers.dtype)
        diff = torch.zeros_like(self.centers).index_add_(0, labels, residual)
        self.centers -= self.alpha * diff / (1.0 + counts).unsqueeze(1)

    def extra_repr(self) -> str:
        return f"lam={self.lam}, alpha={self.alpha}"


def softmax(embedding_size: int, num_classes: int) -> SoftmaxHead:
    """Linear layer with bias + cross-entropy."""
    return SoftmaxHead(embedding_size, num_classes)


def center(embedding_size: int, num_classes: int, *, lam: float = 0.003, alpha: float = 0.5) -> CenterLossHead:
    """Softmax + centre loss (lambda 0.003, centre update rate alpha 0.5: the paper's face setting)."""
    return CenterLossHead(embedding_size, num_classes, lam=lam, alpha=alpha)
