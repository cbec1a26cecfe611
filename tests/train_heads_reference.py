"""Independent numpy references for the training heads' tests: the papers' formulas written out element by element
(arccos, explicit branches, explicit loops), a cross-entropy, and central finite differences for gradients.

Nothing here imports fr_bench: a test compares the heads (torch, vectorised, autograd) against these;
:func:`head_loss_and_grads` runs a head on the same numpy inputs.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch


def normalize_rows(a: np.ndarray) -> np.ndarray:
    return a / np.linalg.norm(a, axis=1, keepdims=True)


def cosines(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    return normalize_rows(x) @ normalize_rows(w).T


def arcface_target(c: float, m: float, easy: bool = False) -> float:
    theta = math.acos(min(1.0, max(-1.0, c)))
    if easy:
        return math.cos(theta + m) if c > 0 else c
    return math.cos(theta + m) if c > math.cos(math.pi - m) else c - m * math.sin(math.pi - m)


def psi(c: float, m: int) -> float:
    theta = math.acos(min(1.0, max(-1.0, c)))
    k = min(m - 1, int(math.floor(m * theta / math.pi)))
    return (-1) ** k * math.cos(m * theta) - 2 * k


def cross_entropy(z: np.ndarray, y: np.ndarray) -> float:
    out = 0.0
    for row, label in zip(z, y):
        top = row.max()
        out += top + math.log(np.exp(row - top).sum()) - row[label]
    return out / len(y)


def with_target(cos: np.ndarray, y: np.ndarray, fn: Callable[[int, float], float]) -> np.ndarray:
    """A copy of ``cos`` whose [i, y_i] entry is fn(i, cos[i, y_i])."""
    out = cos.copy()
    for i, label in enumerate(y):
        out[i, label] = fn(i, cos[i, label])
    return out


def numeric_grad(f: Callable[[np.ndarray], float], a: np.ndarray, h: float = 1e-6) -> np.ndarray:
    """Central finite differences of the scalar f at a."""
    g = np.zeros_like(a)
    flat, gflat = a.reshape(-1), g.reshape(-1)
    for i in range(flat.size):
        keep = flat[i]
        flat[i] = keep + h
        up = f(a)
        flat[i] = keep - h
        down = f(a)
        flat[i] = keep
        gflat[i] = (up - down) / (2 * h)
    return g


def head_loss_and_grads(head: torch.nn.Module, x: np.ndarray, w: np.ndarray, y: np.ndarray
                        ) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
    """A head in float64 with class weights ``w`` on embeddings ``x``: (loss, d loss/d x, d loss/d w, logits)."""
    head = head.double()
    with torch.no_grad():
        head.weight.copy_(torch.from_numpy(w))
    xt = torch.from_numpy(x.copy()).requires_grad_()
    loss = head(xt, torch.from_numpy(y))
    loss.backward()
    return loss.item(), xt.grad.numpy(), head.weight.grad.numpy(), head.logits(xt, torch.from_numpy(y)).detach().numpy()
