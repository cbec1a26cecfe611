"""Partial FC: the class-centre matrix of a margin head sharded over the ranks, with sampled negative centres.

After An et al., "Partial FC: Training 10 Million Identities on a Single Machine" (ICCVW 2021, arXiv 2010.05222)
and its released code (insightface ``recognition/arcface_torch/partial_fc_v2.py``); written from their description.

What one training step computes (``loss = pfc(embeddings, labels)``, every rank calling it with its local batch):

1. The embeddings and labels of the **global batch** are all-gathered; the gather is autograd-aware, so the gradient
   reaching each rank's own embeddings is the sum of what every rank's shard sends back to them.
2. Rank ``r`` of ``W`` holds the centres of the contiguous class range ``[start_r, start_r + n_r)`` with
   ``n_r = C // W + (r < C % W)`` and ``start_r = r * (C // W) + min(r, C % W)`` (:func:`shard_range`): classes split
   as evenly as possible, the first ``C % W`` ranks holding one more (the released code's split).
3. Each rank keeps the positive classes of the global batch that fall in its range, plus random negatives of its
   range, ``max(1, int(sample_rate * n_r))`` centres in all (only the positives when they alone are more). The draw is
   a pure function of ``(seed, step, rank)`` (:meth:`PartialFC.sample_classes`). ``sample_rate = 1`` uses every centre.
4. Cosines between the L2-normalised embeddings and sampled centres (clamped to [-1, 1]) go through the wrapped head's
   ``margin_logits(cos, labels, norms)`` (margin on the target column, scaling, the feature norms for the heads that
   use them); rows whose class lives on another rank are labelled -1 there and get no margin (the heads' convention).
5. The softmax cross-entropy runs across ranks: distributed row max, distributed sum of exponentials, the target
   logit summed from the one rank that holds it. It is the exact CE over the union of the sampled classes, averaged
   over the global batch, and every rank returns the same value. Regularisers of the head (``head.regularizer``,
   e.g. MagFace's ``lambda_g * mean g(a)``) are added over the global batch, each rank differentiating its own rows.
   UNPG: its filtered negative-pair cosines, formed over the GLOBAL batch (UNPG's ``gather=True`` reading, whatever
   the head's ``gather``), scaled by s, enter every row's softmax once (added by rank 0, never as a (B, K) block).

With no initialised process group (one device) nothing is sharded or gathered: the weight is the plain (C, D) matrix
and, at ``sample_rate = 1``, the loss and gradients are the head's own. Sampling at a rate below 1 also applies there.

Gradients: by default they are exact for the global-batch loss (the gradient of each local embedding is that of the
single-process loss on the global batch). A backbone wrapped in ``DistributedDataParallel`` averages its gradients
over the ``W`` ranks, which would leave it ``1/W`` of that; pass ``backbone_grads_averaged=True`` and the gradient
sent back to the local embeddings is multiplied by ``W`` (as the released code does), so the averaged backbone
gradient is the global-batch one. The shard ``weight`` is local to its rank and must stay outside DDP: keep the
Partial FC out of the DDP module, or call :func:`exclude_from_ddp` on the module before wrapping it.

Saving: ``state_dict()`` is local (the shard, the head's other state, the sampling step); ``load_state_dict`` accepts
a shard of the same range or the full (C, D) weight, which it slices. :meth:`PartialFC.full_weight` and
:meth:`PartialFC.full_state_dict` gather the whole matrix (collectives: call them on every rank), so a checkpoint
written by rank 0 resumes on any number of ranks. Optimiser state of the shard (momentum) stays per rank.

Heads: any head exposing ``weight`` (a (C, D) ``nn.Parameter``) and ``margin_logits(cos, labels, norms)``:
cosface, arcface, magface, sphereface and UNPG on them. The head's own weight is released (set to ``None``) when it is
wrapped: the shard is the only copy, and the head's ``logits`` / ``forward`` no longer work on their own. Heads whose
weights follow an update rule (IR-Softmax), that take model outputs (GroupFace) or that have no margin (softmax,
center) are refused with a message. Heads' ``update_state`` hooks are not called (no margin head has one).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from fr_bench.train.heads.distributed import batch_sizes, gather_rows

__all__ = ["PartialFC", "exclude_from_ddp", "shard_range"]


def shard_range(num_classes: int, world_size: int, rank: int) -> tuple[int, int]:
    """``(start, count)`` of the classes held by ``rank``: contiguous, sizes differing by at most one.

    The first ``num_classes % world_size`` ranks hold ``num_classes // world_size + 1`` classes, the others one less;
    e.g. 10 classes on 3 ranks -> (0, 4), (4, 3), (7, 3).
    """
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is not in a world of {world_size} rank(s)")
    base, extra = divmod(int(num_classes), world_size)
    return rank * base + min(rank, extra), base + int(rank < extra)


def _step_seed(seed: int, step: int, rank: int) -> int:
    """A 63-bit generator seed mixed from (seed, step, rank) by numpy's SeedSequence (no collisions by addition)."""
    state = np.random.SeedSequence([int(seed) & 0xFFFFFFFF, int(step), int(rank)]).generate_state(2, dtype=np.uint32)
    return (int(state[0]) << 31) ^ int(state[1])


def _all_reduce(tensor: torch.Tensor, op: Any, group: Any) -> None:
    """In-place all-reduce over ``group``; nothing on one process (``group`` None)."""
    if group is not None:
        dist.all_reduce(tensor, op=op, group=group)


class _ShardedCrossEntropy(torch.autograd.Function):
    """Softmax cross-entropy whose classes (columns) are split over the ranks; mean over the rows.

    Each rank passes its logit columns (B, n), per row the column of the true class when it holds it (else -1), and
    ``shared`` (K,): extra negative logits that enter EVERY row's softmax (UNPG's pair columns; passed by one rank,
    empty elsewhere) without a (B, K) block. Forward: global row max (MAX all-reduce), then one SUM all-reduce of
    (sum of exp, target logit, owner count); ``loss_i = max_i + log(sum_exp_i) - target_i``. Backward:
    ``(softmax - one_hot) / B`` on the local columns; on ``shared``, its softmax times the rows' total mass on it / B.
    """

    @staticmethod
    def forward(ctx: Any, logits: torch.Tensor, target: torch.Tensor, shared: torch.Tensor,
                group: Any) -> torch.Tensor:
        rows = logits.shape[0]
        row_max = torch.full((rows,), float("-inf"), dtype=logits.dtype, device=logits.device)
        if logits.shape[1]:
            row_max = logits.max(dim=1).values
        if shared.numel():
            row_max = torch.maximum(row_max, shared.max())
        _all_reduce(row_max, dist.ReduceOp.MAX, group)
        exp = torch.exp(logits - row_max[:, None])
        owned = target >= 0
        sums = torch.zeros((3, rows), dtype=logits.dtype, device=logits.device)
        sums[0] = exp.sum(dim=1)
        shared_lse = torch.logsumexp(shared, dim=0) if shared.numel() else None
        if shared_lse is not None:
            sums[0] += torch.exp(shared_lse - row_max)
        sums[1, owned] = logits[owned, target[owned]]
        sums[2] = owned.to(logits.dtype)
        _all_reduce(sums, dist.ReduceOp.SUM, group)
        if not bool(torch.all(sums[2] == 1)):
            raise RuntimeError("Partial FC: a row's true class was held by no rank or by several (sampling bug)")
        if shared_lse is None:
            shared_grad = shared.new_zeros(0)
        else:  # d loss / d shared_k = sum_i exp(shared_k - max_i) / sum_exp_i / B
            shared_grad = torch.exp(shared - shared_lse) * (torch.exp(shared_lse - row_max) / sums[0]).sum()
        ctx.save_for_backward(exp / sums[0][:, None], target, shared_grad)
        return (row_max + torch.log(sums[0]) - sums[1]).mean()

    @staticmethod
    def backward(ctx: Any, grad_output: torch.Tensor) -> tuple[torch.Tensor, None, torch.Tensor, None]:
        probs, target, shared_grad = ctx.saved_tensors
        grad = probs.clone()
        owned = torch.nonzero(target >= 0).squeeze(1)
        grad[owned, target[owned]] -= 1
        scale = grad_output / probs.shape[0]
        return grad * scale, None, shared_grad * scale, None


class PartialFC(nn.Module):
    """A margin head's classifier sharded over the ranks with sampled negative centres (see the module doc).

    ``PartialFC(head, sample_rate=0.1, process_group=None)``: ``process_group=None`` means the default group when
    ``torch.distributed`` is initialised, and one unsharded device otherwise. ``loss = pfc(embeddings, labels)`` with
    the local batch; ``pfc.weight`` is the local shard (rows ``class_start .. class_start + num_local - 1``);
    ``pfc.full_weight()`` the whole (C, D) matrix. ``on_step(step)`` sets the sampling step (and forwards to the
    head's own ``on_step``); without it the step counts training forwards.
    """

    def __init__(
        self,
        head: nn.Module,
        *,
        sample_rate: float = 0.1,
        process_group: Any = None,
        seed: int = 0,
        backbone_grads_averaged: bool = False,
    ) -> None:
        super().__init__()
        _check_head(head)
        if not 0.0 < float(sample_rate) <= 1.0:
            raise ValueError(f"Partial FC: sample_rate must be in (0, 1], got {sample_rate!r}")
        if dist.is_available() and dist.is_initialized():
            self.group = process_group if process_group is not None else dist.group.WORLD
            self.world_size = dist.get_world_size(self.group)
            self.rank = dist.get_rank(self.group)
        elif process_group is not None:
            raise ValueError("Partial FC: a process_group was given but torch.distributed is not initialised")
        else:
            self.group, self.world_size, self.rank = None, 1, 0
        full = head.weight.detach()
        self.num_classes, self.embedding_size = int(full.shape[0]), int(full.shape[1])
        if self.num_classes < self.world_size:
            raise ValueError(f"Partial FC: {self.num_classes} classes cannot be sharded over {self.world_size} ranks")
        self.class_start, self.num_local = shard_range(self.num_classes, self.world_size, self.rank)
        self.sample_rate = float(sample_rate)
        self.num_sample = max(1, int(self.sample_rate * self.num_local))
        self.seed = int(seed)
        self.backbone_grads_averaged = bool(backbone_grads_averaged)
        self.weight = nn.Parameter(full[self.class_start : self.class_start + self.num_local].clone())
        _release_weight(head)  # the shard is the only copy: no stale (C, D) matrix in memory or in checkpoints
        self.head = head
        self._step = 0
        self._pair_negatives = callable(getattr(head, "kept_negatives", None))  # UNPG

    # -- sampling -----------------------------------------------------------------------------------------------
    def on_step(self, step: int) -> None:
        """Set the step the next forward samples with; forwarded to the head's ``on_step`` when it has one."""
        self._step = int(step)
        if hasattr(self.head, "on_step"):
            self.head.on_step(step)

    def sample_classes(self, labels: torch.Tensor, step: int | None = None) -> torch.Tensor:
        """Sorted global ids of this rank's centres used for a global batch with ``labels`` at ``step``.

        Every class of ``labels`` inside this rank's range is included; random classes of the range fill up to
        ``num_sample``. Deterministic in (seed, step, rank); ``sample_rate = 1`` returns the whole range.
        """
        local = self._local_positives(labels.reshape(-1).to(self.weight.device))
        return self._sample(local, self._step if step is None else int(step)) + self.class_start

    def _local_positives(self, labels: torch.Tensor) -> torch.Tensor:
        inside = (labels >= self.class_start) & (labels < self.class_start + self.num_local)
        return torch.unique(labels[inside] - self.class_start)

    def _sample(self, positives: torch.Tensor, step: int) -> torch.Tensor:
        device = self.weight.device
        if self.num_sample >= self.num_local:
            return torch.arange(self.num_local, device=device)
        if positives.numel() >= self.num_sample:
            return positives
        generator = torch.Generator(device=device).manual_seed(_step_seed(self.seed, step, self.rank))
        score = torch.rand(self.num_local, generator=generator, device=device)
        score[positives] = 2.0  # above every uniform draw: positives are always kept
        return torch.topk(score, self.num_sample).indices.sort().values

    # -- forward ------------------------------------------------------------------------------------------------
    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Mean margin-softmax loss (plus the head's regulariser) over the global batch; same value on every rank."""
        labels = _check_batch(embeddings, labels, self.embedding_size, self.num_classes)
        local_embeddings, local_labels = embeddings, labels
        if self.group is not None:
            if self.backbone_grads_averaged and embeddings.requires_grad:
                local_embeddings = embeddings.view_as(embeddings)
                local_embeddings.register_hook(lambda grad: grad * self.world_size)
            sizes = batch_sizes(embeddings.shape[0], embeddings.device, self.group)
            embeddings = gather_rows(local_embeddings, sizes, self.group)
            labels = gather_rows(labels, sizes, self.group, differentiable=False)
        local = labels - self.class_start
        local = torch.where((local >= 0) & (local < self.num_local), local, torch.full_like(local, -1))
        index = self._sample(torch.unique(local[local >= 0]), self._step)
        sampled = index.numel() < self.num_local
        weight = self.weight[index] if sampled else self.weight
        target = torch.searchsorted(index, local.clamp_min(0)) if sampled else local
        target = torch.where(local >= 0, target, torch.full_like(target, -1))
        cos = _full_precision(F.linear(F.normalize(embeddings), F.normalize(weight))).clamp(-1.0, 1.0)
        logits = _full_precision(self.head.margin_logits(cos, target, _full_precision(embeddings).norm(dim=1)))
        loss = _ShardedCrossEntropy.apply(logits, target, self._shared_negatives(embeddings, labels), self.group)
        loss = loss + self._regularizer(local_embeddings, local_labels, embeddings.shape[0])
        if self.training:
            self._step += 1
        return loss

    def _shared_negatives(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """UNPG's scaled negative-pair cosines of the global batch, on rank 0 only (empty elsewhere / other heads)."""
        if not self._pair_negatives or self.rank != 0:
            return embeddings.new_zeros(0, dtype=torch.promote_types(embeddings.dtype, torch.float32))
        from fr_bench.train.heads.unpg import box_and_whisker, negative_pair_cosines

        return self.head.s * box_and_whisker(negative_pair_cosines(embeddings, labels), self.head.w)

    def _regularizer(self, local_embeddings: torch.Tensor, local_labels: torch.Tensor,
                     global_rows: int) -> torch.Tensor | float:
        """The head's batch-mean regulariser over the global batch, differentiated through the local rows only."""
        if local_embeddings.shape[0] == 0:
            return 0.0
        regularizer = getattr(self.head, "regularizer", None)
        share = 0.0 if regularizer is None else regularizer(local_embeddings, local_labels)
        if not isinstance(share, torch.Tensor):
            return share  # a constant (0 for heads without one)
        share = share * (local_embeddings.shape[0] / global_rows)
        if self.group is None:
            return share
        total = share.detach().clone()
        dist.all_reduce(total, op=dist.ReduceOp.SUM, group=self.group)
        return share + (total - share.detach())

    # -- saving -------------------------------------------------------------------------------------------------
    @torch.no_grad()
    def full_weight(self) -> torch.Tensor:
        """The whole (C, D) class-centre matrix, gathered from every shard (a collective: call it on every rank)."""
        if self.group is None:
            return self.weight.detach().clone()
        longest = shard_range(self.num_classes, self.world_size, 0)[1]
        padded = self.weight.new_zeros((longest, self.embedding_size))
        padded[: self.num_local] = self.weight
        parts = [torch.empty_like(padded) for _ in range(self.world_size)]
        dist.all_gather(parts, padded, group=self.group)
        sizes = [shard_range(self.num_classes, self.world_size, r)[1] for r in range(self.world_size)]
        return torch.cat([part[:size] for part, size in zip(parts, sizes)])

    def full_state_dict(self) -> dict[str, Any]:
        """``state_dict()`` with the full (C, D) weight (collective): loads back on any number of ranks."""
        state = self.state_dict()
        state["weight"] = self.full_weight()
        return state

    def get_extra_state(self) -> dict[str, int | float]:
        """Sampling step and shard layout, saved with the weights so that a resumed run draws the same samples."""
        return {
            "step": self._step,
            "seed": self.seed,
            "num_classes": self.num_classes,
            "class_start": self.class_start,
            "num_local": self.num_local,
        }

    def set_extra_state(self, state: dict[str, int | float]) -> None:
        """Restore the sampling step (and seed); the shard layout is checked in ``_load_from_state_dict``."""
        self._step, self.seed = int(state["step"]), int(state["seed"])

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs) -> None:  # noqa: ANN001 (torch's signature)
        key, extra = prefix + "weight", state_dict.get(prefix + "_extra_state")
        weight = state_dict.get(key)
        if weight is not None and isinstance(extra, dict) and int(extra.get("num_classes", -1)) != self.num_classes:
            error_msgs.append(f"{key}: saved for {extra.get('num_classes')} classes, this head has {self.num_classes}")
        elif weight is not None and tuple(weight.shape) == (self.num_classes, self.embedding_size):
            state_dict[key] = weight[self.class_start : self.class_start + self.num_local]
        elif weight is not None and isinstance(extra, dict) and int(extra.get("class_start", -1)) != self.class_start:
            error_msgs.append(
                f"{key}: a shard of classes from {extra.get('class_start')} ({tuple(weight.shape)[0]} rows) cannot "
                f"load into the shard from {self.class_start} ({self.num_local} rows); save with full_state_dict()"
            )
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)

    def extra_repr(self) -> str:
        return (f"classes={self.num_classes}, shard=[{self.class_start}, {self.class_start + self.num_local}), "
                f"rank={self.rank}/{self.world_size}, sample_rate={self.sample_rate}, num_sample={self.num_sample}")


def exclude_from_ddp(root: nn.Module) -> list[str]:
    """Mark every Partial FC parameter and buffer inside ``root`` as ignored by ``DistributedDataParallel``.

    Call it on the module BEFORE wrapping it in DDP. Without it DDP would broadcast rank 0's shard over the others at
    construction and average the shards' gradients (or fail on unequal shard shapes). Returns the names ignored
    (added to any already set). Use ``backbone_grads_averaged=True`` for the Partial FC inside a DDP module.
    """
    from torch.nn.parallel import DistributedDataParallel

    names = list(getattr(root, "_ddp_params_and_buffers_to_ignore", []))
    for prefix, module in root.named_modules():
        if isinstance(module, PartialFC):
            dot = f"{prefix}." if prefix else ""
            tensors = [*module.named_parameters(), *module.named_buffers()]
            names += [dot + name for name, _ in tensors if dot + name not in names]
    DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(root, names)
    return names


def _check_head(head: nn.Module) -> None:
    """Refuse heads Partial FC cannot wrap, saying why."""
    name = type(head).__name__
    if getattr(head, "wants_model_outputs", False):
        raise ValueError(f"Partial FC cannot wrap {name}: it takes model outputs, not embeddings (GroupFace)")
    if not callable(getattr(head, "margin_logits", None)):
        raise ValueError(f"Partial FC wraps margin heads with margin_logits(cos, labels); {name} has none")
    weight = getattr(head, "weight", None)
    if not isinstance(weight, nn.Parameter) or weight.dim() != 2:
        raise ValueError(
            f"Partial FC needs the head's class weights as a learned (C, D) parameter; {name}.weight is "
            f"{type(weight).__name__} (heads whose centres follow an update rule, like IR-Softmax, are not supported)"
        )


def _release_weight(head: nn.Module) -> None:
    """Set the head's class-weight parameter to None in the module that owns it (wrappers expose it by property)."""
    for name, parameter in head.named_parameters():
        if parameter is head.weight:
            owner_name, _, attribute = name.rpartition(".")
            setattr(head.get_submodule(owner_name), attribute, None)
            return


def _full_precision(tensor: torch.Tensor) -> torch.Tensor:
    """float16/bfloat16 (autocast) -> float32; float32 and float64 unchanged (as the heads compute their margins)."""
    return tensor.to(torch.promote_types(tensor.dtype, torch.float32))


def _check_batch(embeddings: torch.Tensor, labels: torch.Tensor, dim: int, num_classes: int) -> torch.Tensor:
    """Flatten and validate one local batch; labels come back as int64."""
    if embeddings.dim() != 2 or embeddings.shape[1] != dim:
        raise ValueError(f"Partial FC: embeddings must be (B, {dim}), got {tuple(embeddings.shape)}")
    labels = labels.reshape(-1).long()
    if labels.shape[0] != embeddings.shape[0]:
        raise ValueError(f"Partial FC: {labels.shape[0]} labels for {embeddings.shape[0]} embeddings")
    if labels.numel() and not 0 <= int(labels.min()) <= int(labels.max()) < num_classes:
        low, high = int(labels.min()), int(labels.max())
        raise ValueError(f"Partial FC: labels must lie in [0, {num_classes}), got {low}..{high}")
    return labels
