"""Gathering a batch over the ranks of ``torch.distributed`` (a no-op on one process): the one all-gather of training.

Rule-updated state (centre-loss centres, IR-Softmax weights) must see the global batch so every rank applies the
same update and the buffers stay identical; UNPG may form its negative pairs over the global batch; Partial FC
(:mod:`fr_bench.train.partial_fc`) gathers the global batch's embeddings and labels. Ranks may hold batches of
different sizes (the last batch of an epoch): sizes are exchanged first (:func:`batch_sizes`), rows are padded to
the largest for the collective and the padding is dropped afterwards.

The collective is torch's functional ``all_gather_single`` (``torch.distributed._functional_collectives``, the
replacement the deprecated ``torch.distributed.nn.functional.all_gather`` names): it is autograd-aware, and the
gradient reaching a rank's own rows is the sum over ranks of the gradients of those rows in each rank's result.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F

__all__ = ["all_gather_batch", "batch_sizes", "gather_rows", "world_size"]


def world_size(group: Any = None) -> int:
    """Number of ranks of ``group`` (default: the default process group; 1 when torch.distributed is not
    initialised)."""
    return dist.get_world_size(group) if dist.is_available() and dist.is_initialized() else 1


def batch_sizes(rows: int, device: torch.device, group: Any = None) -> list[int]:
    """Every rank's number of rows, in rank order (a collective: call it on every rank)."""
    counts = [torch.zeros(1, dtype=torch.long, device=device) for _ in range(world_size(group))]
    dist.all_gather(counts, torch.tensor([rows], dtype=torch.long, device=device), group=group)
    return [int(count.item()) for count in counts]


def gather_rows(tensor: torch.Tensor, sizes: list[int], group: Any = None, *,
                differentiable: bool = True) -> torch.Tensor:
    """The rows of ``tensor`` from every rank, concatenated in rank order (``sizes[r]`` rows on rank r).

    With ``differentiable`` (default) the result is in the autograd graph (see the module docstring); otherwise
    it is detached. A collective: call it on every rank with the same ``sizes``.
    """
    from torch.distributed import _functional_collectives as funcol

    if tensor.shape[0] != sizes[dist.get_rank(group)]:
        raise ValueError(f"this rank holds {tensor.shape[0]} rows but sizes say {sizes[dist.get_rank(group)]}")
    longest = max(sizes)
    pad = longest - tensor.shape[0]
    padded = F.pad(tensor, (0, 0) * (tensor.ndim - 1) + (0, pad)) if pad else tensor
    gathered = funcol.all_gather_single(padded.contiguous(), 0, group if group is not None else dist.group.WORLD)
    if isinstance(gathered, funcol.AsyncCollectiveTensor):
        gathered = gathered.wait()
    if not differentiable:
        gathered = gathered.detach()
    if all(size == longest for size in sizes):
        return gathered
    return torch.cat([gathered[r * longest:r * longest + size] for r, size in enumerate(sizes)])


def all_gather_batch(embeddings: torch.Tensor, labels: torch.Tensor, *, differentiable: bool = False,
                     group: Any = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The concatenation over ranks (rank order) of every rank's ``embeddings`` (B_r, D) and ``labels`` (B_r,).

    With ``differentiable=True`` the gradient of the gathered embeddings flows back to each rank's own batch
    (summed over ranks); labels never carry a gradient. On one process the inputs come back unchanged.
    """
    if world_size(group) == 1:
        return embeddings, labels
    sizes = batch_sizes(embeddings.shape[0], embeddings.device, group)
    return (gather_rows(embeddings, sizes, group, differentiable=differentiable),
            gather_rows(labels, sizes, group, differentiable=False))
