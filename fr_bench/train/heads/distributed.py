"""Gathering a batch over the ranks of ``torch.distributed`` (a no-op on one process).

Rule-updated state (centre-loss centres, IR-Softmax weights) must see the global batch so every rank applies the
same update and the buffers stay identical; UNPG may form its negative pairs over the global batch. Ranks may hold
batches of different sizes (the last batch of an epoch): sizes are exchanged first and the tensors padded.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F


def world_size() -> int:
    """Number of ranks of the default process group (1 when torch.distributed is not initialised)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def all_gather_batch(embeddings: torch.Tensor, labels: torch.Tensor, *,
                     differentiable: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """The concatenation over ranks (rank order) of every rank's ``embeddings`` (B_r, D) and ``labels`` (B_r,).

    With ``differentiable=True`` the gradient of the gathered embeddings flows back to each rank's own batch
    (``torch.distributed.nn.functional.all_gather``, whose backward sums the ranks' contributions).
    On one process the inputs come back unchanged.
    """
    n = world_size()
    if n == 1:
        return embeddings, labels
    size = torch.tensor([embeddings.shape[0]], device=embeddings.device, dtype=torch.long)
    sizes = [torch.zeros_like(size) for _ in range(n)]
    dist.all_gather(sizes, size)
    sizes_int = [int(s.item()) for s in sizes]
    pad = max(sizes_int) - embeddings.shape[0]
    emb = F.pad(embeddings, (0, 0, 0, pad)) if pad else embeddings
    lab = F.pad(labels, (0, pad), value=-1) if pad else labels
    lab_parts = [torch.empty_like(lab) for _ in range(n)]
    dist.all_gather(lab_parts, lab.contiguous())
    if differentiable:
        from torch.distributed.nn.functional import all_gather as ag_autograd
        emb_parts = list(ag_autograd(emb.contiguous()))
    else:
        emb_parts = [torch.empty_like(emb) for _ in range(n)]
        dist.all_gather(emb_parts, emb.contiguous())
    emb_all = torch.cat([e[:k] for e, k in zip(emb_parts, sizes_int)])
    lab_all = torch.cat([lb[:k] for lb, k in zip(lab_parts, sizes_int)])
    return emb_all, lab_all
