"""One trainer for every recipe: backbone (fr_bench.models) + head (fr_bench.train.build_head) + data, SGD.

Runs on the CPU, one GPU (bf16 autocast of the network; the head computes in float32) or many processes under
``torchrun`` (DDP; gloo on CPU, NCCL on GPU; the recipe's ``optim.batch_size`` is the GLOBAL batch, split evenly).

Seed policy: one seed (``run.seed``) fixes the initialisation (``torch.manual_seed`` before building network and
head, identical on every rank), the data order (``DistributedSampler(shuffle=True, seed=seed)``, epoch by epoch)
and the augmentation (each image's flip is drawn per epoch from ``torch.Generator().manual_seed(seed + epoch)``,
by dataset index, so it does not depend on the number of ranks or workers, nor on where a run was resumed).

Files in the output folder, each written atomically (a failure leaves the last complete save or nothing):

* ``checkpoint.pt``: the self-describing checkpoint ``frbench evaluate -m`` loads (:mod:`fr_bench.train.export`);
* ``training_state.pt``: network, head, optimizer, step, torch RNG and the recipe digest, so ``resume=True``
  continues to the identical step (on CPU the weights are bit-identical to an uninterrupted run);
* ``log.csv``: ``step, epoch, loss, lr, samples_per_s`` every ``run.log_every`` steps, plus validation metrics;
* ``best.pt`` and ``best.json`` with ``run.keep_best = "<metric>"``: the checkpoint (same format as
  ``checkpoint.pt``) of the validation with the best value of that metric so far (:mod:`fr_bench.train.best`).

Validation is a callback: any object with ``on_validate(step, model) -> dict`` (called on every rank, since the
extractor shards images over the ranks, with the network in eval mode, every ``run.validate_every`` steps and at
the end). Training never imports protocols or the runner: it sees only the dict the callbacks return.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from fr_bench.models.checkpoint import atomic_torch_save
from fr_bench.train import runtime
from fr_bench.train.best import BEST, BestTracker
from fr_bench.train.export import build_network, training_preprocessing, write_checkpoint
from fr_bench.train.recipe import Recipe
from fr_bench.train.schedule import lr_at, warmup_steps

CHECKPOINT = "checkpoint.pt"
STATE = "training_state.pt"
LOG = "log.csv"


class Callback(Protocol):
    """Validation hook wired in by the CLI: metrics of the current network, logged with the step."""

    def on_validate(self, step: int, model: nn.Module) -> Mapping[str, float]: ...


@dataclass
class TrainResult:
    """What a call of :func:`train` did: where it wrote, how far it got, its log rows."""

    out_dir: Path
    step: int
    total_steps: int
    last_loss: float
    rows: list[dict[str, Any]] = field(default_factory=list)
    best: dict[str, Any] | None = None  # best.json's record with run.keep_best, else None

    @property
    def checkpoint(self) -> Path:
        return self.out_dir / CHECKPOINT

    @property
    def finished(self) -> bool:
        return self.step >= self.total_steps


class _Items(Dataset):
    """``(index, flip)`` keys -> ``(model input, label, error)``; errors travel back as text, raised by the trainer."""

    def __init__(self, dataset: Any, transform: Any) -> None:
        self.dataset, self.transform = dataset, transform

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, bool]) -> tuple[torch.Tensor, int, str]:
        index, flip = key
        try:
            image, label = self.dataset[index]
            image = torch.as_tensor(image)
            if flip:
                image = image.flip(1)
            return self.transform(image), int(label), ""
        except Exception as exc:  # the dataset's own message names the file
            return torch.zeros(0), -1, str(exc) or type(exc).__name__


def _collate(items: list[tuple[torch.Tensor, int, str]]) -> tuple[torch.Tensor | None, torch.Tensor, list[str]]:
    errors = [e for _, _, e in items if e]
    if errors:
        return None, torch.zeros(0, dtype=torch.long), errors
    return torch.stack([x for x, _, _ in items]), torch.tensor([y for _, y, _ in items], dtype=torch.long), []


class _Step(nn.Module):
    """Network + head as one module (what DDP wraps): ``forward(x, labels) -> loss``.

    Heads with ``wants_model_outputs`` receive the dict of ``network.forward_train(x)``; every other head receives
    the embeddings ``network(x)``. The network runs under ``autocast`` (bf16 on CUDA when enabled); the head gets
    float32 inputs and runs outside autocast.
    """

    def __init__(self, network: nn.Module, head: nn.Module, autocast: torch.dtype | None, device_type: str) -> None:
        super().__init__()
        self.network, self.head = network, head
        self.autocast, self.device_type = autocast, device_type

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        ctx = (torch.autocast(self.device_type, dtype=self.autocast) if self.autocast is not None
               else contextlib.nullcontext())
        with ctx:
            if getattr(self.head, "wants_model_outputs", False):
                out = self.network.forward_train(x)
            else:
                out = self.network(x)
        if isinstance(out, Mapping):
            out = {k: v.float() if torch.is_tensor(v) and v.is_floating_point() else v for k, v in out.items()}
        else:
            out = out.float()
        return self.head(out, labels)


def _flip_table(n: int, seed: int, epoch: int, enabled: bool) -> np.ndarray:
    if not enabled:
        return np.zeros(n, dtype=bool)
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return (torch.rand(n, generator=g) < 0.5).numpy()


def _epoch_keys(dataset: Any, seed: int, epoch: int, rank: int, world: int, flip: bool) -> list[tuple[int, bool]]:
    """This rank's ``(index, flip)`` keys for ``epoch`` in order (DistributedSampler order, drop_last)."""
    sampler = DistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=True, seed=seed, drop_last=True)
    sampler.set_epoch(epoch)
    flips = _flip_table(len(dataset), seed, epoch, flip)
    return [(int(i), bool(flips[i])) for i in sampler]


def _build_head(config: Mapping[str, Any], num_classes: int) -> nn.Module:
    from fr_bench.train import build_head

    head_cfg = config["head"]
    try:
        return build_head(head_cfg["name"], embedding_size=int(config["model"]["embedding_size"]),
                          num_classes=int(num_classes), **dict(head_cfg["params"]))
    except TypeError as exc:
        raise ValueError(f"head {head_cfg['name']!r}: bad head.params {dict(head_cfg['params'])}: {exc}") from exc


def plan_steps(config: Mapping[str, Any], n_images: int, world: int) -> tuple[int, int, int]:
    """``(local_batch, steps_per_epoch, total_steps)`` for a dataset of ``n_images`` on ``world`` ranks."""
    batch = int(config["optim"]["batch_size"])
    if batch % world:
        raise ValueError(f"optim.batch_size={batch} (global) does not split evenly over {world} ranks")
    local = batch // world
    per_epoch = (n_images // world) // local
    if per_epoch == 0:
        raise ValueError(f"the dataset has {n_images} images, fewer than one global batch of {batch} "
                         "(lower optim.batch_size)")
    max_steps = int(config["run"]["max_steps"])
    total = max_steps if max_steps > 0 else int(config["optim"]["epochs"]) * per_epoch
    return local, per_epoch, total


def _open_data(data: Any, config: Mapping[str, Any]) -> Any:
    if not isinstance(data, (str, Path)):
        return data  # an already opened TrainDataset (tests, notebooks)
    from fr_bench.train.data import open_dataset

    return open_dataset(data, seed=int(config["run"]["seed"]), **dict(config["data"]["options"]))


def _check_out(out: Path, resume: bool) -> None:
    if resume:
        if not (out / STATE).is_file():
            raise FileNotFoundError(f"{out / STATE}: nothing to resume (no training state in --out)")
    elif any((out / name).exists() for name in (STATE, CHECKPOINT, BEST)):
        raise FileExistsError(f"{out}: holds a training run already; pass --resume to continue it or choose "
                              "another --out")


def _restore(state_path: Path, recipe: Recipe, world: int, step_mod: nn.Module, opt: torch.optim.Optimizer
             ) -> tuple[int, list[dict[str, Any]]]:
    state = torch.load(state_path, map_location="cpu", weights_only=False)
    if state["recipe_digest"] != recipe.digest():
        raise ValueError(f"{state_path}: was trained with another recipe configuration; resume with the same "
                         "recipe and overrides")
    if state["world_size"] != world:
        raise ValueError(f"{state_path}: was trained on {state['world_size']} ranks, resumed on {world}")
    step_mod.network.load_state_dict(state["network"])
    step_mod.head.load_state_dict(state["head"])
    opt.load_state_dict(state["optimizer"])
    torch.set_rng_state(state["torch_rng"])
    return int(state["step"]), list(state["rows"])


def _partial_fc(head: nn.Module, cfg: Mapping[str, Any], seed: int, world: int, resume: bool) -> nn.Module:
    """The head's classifier sharded over the ranks (:class:`fr_bench.train.partial_fc.PartialFC`)."""
    from fr_bench.train.partial_fc import PartialFC

    if resume and world > 1:
        raise ValueError("resuming a Partial FC run on several ranks is not supported yet (the optimiser state of "
                         "each rank's shard is not saved); resume on one process or retrain")
    return PartialFC(head, sample_rate=float(cfg["head"]["sample_rate"]), seed=seed,
                     backbone_grads_averaged=world > 1)


def _save(out: Path, recipe: Recipe, step_mod: nn.Module, head_state: Mapping[str, Any], opt: torch.optim.Optimizer,
          step: int, rows: list[dict[str, Any]], world: int, ckpt_args: dict[str, Any]) -> None:
    state = {"step": step, "recipe": recipe.to_dict(), "recipe_digest": recipe.digest(), "world_size": world,
             "network": step_mod.network.state_dict(), "head": dict(head_state),
             "optimizer": opt.state_dict(), "torch_rng": torch.get_rng_state(), "rows": rows}
    atomic_torch_save(state, out / STATE)
    meta = {**ckpt_args["meta"], "steps": step}
    write_checkpoint(step_mod.network, out / CHECKPOINT, **{**ckpt_args, "meta": meta})
    runtime.write_log(out / LOG, rows)


def _save_best(out: Path, network: nn.Module, best: BestTracker, ckpt_args: dict[str, Any]) -> None:
    """``best.pt`` (the network now, as ``checkpoint.pt`` would hold it) then ``best.json``, each atomically."""
    meta = {**ckpt_args["meta"], "steps": best.step,
            "best": {"metric": best.metric, "mode": best.mode, "value": best.value, "step": best.step}}
    write_checkpoint(network, out / BEST, **{**ckpt_args, "meta": meta})
    best.write(out)


def _keep_best(cfg: Mapping[str, Any], callbacks: Sequence[Callback], out: Path, resume: bool) -> BestTracker | None:
    """The tracker of ``run.keep_best`` (None when unset), with the best so far of a resumed run."""
    best = BestTracker.from_run_config(cfg["run"])
    if best is not None and not callbacks:
        raise ValueError(f"run.keep_best={best.metric!r} needs validation (frbench train --val SPEC)")
    if best is not None and resume:
        best.restore(out)
    return best


def _validate(callbacks: Sequence[Callback], step: int, network: nn.Module) -> dict[str, Any]:
    metrics: dict[str, Any] = {}
    network.eval()
    try:
        for cb in callbacks:
            metrics.update(cb.on_validate(step, network))
    finally:
        network.train()
    return metrics


def train(recipe: Recipe, data: Any, out: str | Path, *, device: str | None = None, resume: bool = False,
          callbacks: Sequence[Callback] = (), progress: bool = True, stop_after: int | None = None) -> TrainResult:
    """Train ``recipe`` on ``data`` (a path, ``"synthetic"`` or an opened dataset) into the folder ``out``.

    ``stop_after`` saves and returns after that many steps in total (what an interrupted run leaves behind);
    ``resume`` continues from ``out/training_state.pt``. See the module docstring for files and seed policy.
    """
    cfg, out = recipe.config, Path(out)
    rank, world, dev = runtime.setup_distributed(device)
    seed = int(cfg["run"]["seed"])
    _check_out(out, resume)
    best = _keep_best(cfg, callbacks, out, resume)
    dataset = _open_data(data, cfg)
    local_batch, per_epoch, total = plan_steps(cfg, len(dataset), world)
    torch.manual_seed(seed)
    network, arch, arch_kwargs = build_network(cfg)
    head = _build_head(cfg, dataset.num_classes)
    partial = bool(cfg["head"]["partial_fc"])
    if partial:
        head = _partial_fc(head, cfg, seed, world, resume)
    autocast = torch.bfloat16 if dev.type == "cuda" and cfg["run"]["bf16"] else None
    step_mod = _Step(network, head, autocast, dev.type).to(dev)
    o = cfg["optim"]
    opt = torch.optim.SGD(step_mod.parameters(), lr=float(o["lr"]), momentum=float(o["momentum"]),
                          weight_decay=float(o["weight_decay"]), nesterov=bool(o["nesterov"]))
    start, rows = (_restore(out / STATE, recipe, world, step_mod, opt) if resume else (0, []))
    model: nn.Module = step_mod
    if world > 1:
        if partial:  # the shards stay out of DDP: each rank owns its own
            from fr_bench.train.partial_fc import exclude_from_ddp

            exclude_from_ddp(step_mod)
        model = nn.parallel.DistributedDataParallel(step_mod, device_ids=[dev.index] if dev.type == "cuda" else None)
    size = int(cfg["model"]["input_size"])
    transform = _make_transform(size, recipe.name)
    ckpt_args = {"arch": arch, "arch_kwargs": arch_kwargs, "input_size": size,
                 "embedding_size": int(cfg["model"]["embedding_size"]), "recipe_name": recipe.name,
                 "meta": {"recipe": recipe.to_dict(), "head": cfg["head"]["name"], "git": runtime.git_hash(),
                          "dataset": _describe(dataset), "world_size": world, "total_steps": total}}
    stop = total if stop_after is None else min(total, int(stop_after))
    warm = warmup_steps(total, float(o["warmup_fraction"]))
    r = cfg["run"]
    bar = _bar(progress and rank == 0, start, stop, recipe.name)
    loss_sum, n_loss, t0, last = torch.zeros((), device=dev), 0, time.perf_counter(), float("nan")
    step, batches = start, None
    step_mod.train()
    try:
        while step < stop:
            epoch, pos = divmod(step, per_epoch)
            if batches is None or pos == 0:
                keys = _epoch_keys(dataset, seed, epoch, rank, world, bool(cfg["data"]["flip"]))
                batches = _loader(dataset, transform, keys[pos * local_batch: per_epoch * local_batch],
                                  local_batch, cfg, seed + epoch, dev)
            x, y, errors = next(batches)
            if errors:
                raise ValueError(errors[0])
            lr = lr_at(step, total, float(o["lr"]), warmup=warm, kind=str(o["schedule"]), power=float(o["power"]))
            loss = _update(model, opt, step_mod, x.to(dev, non_blocking=True), y.to(dev, non_blocking=True), lr,
                           float(o["clip_grad_norm"]), step, recipe.name)
            step += 1
            loss_sum += loss.detach()
            n_loss += 1
            bar.update(1)
            end = step == stop
            every = int(r["validate_every"])
            validate = bool(callbacks) and ((every > 0 and step % every == 0) or step == total)
            if step % int(r["log_every"]) == 0 or end or validate:
                last = runtime.mean_over_ranks(loss_sum / n_loss)
                elapsed = time.perf_counter() - t0
                row = {"step": step, "epoch": round(step / per_epoch, 4), "loss": last, "lr": lr,
                       "samples_per_s": n_loss * local_batch * world / max(elapsed, 1e-9)}
                if validate:  # every rank: the runner's extractor shards images over ranks
                    val = _validate(callbacks, step, step_mod.network)
                    row.update(val)
                    if best is not None and best.update(step, val) and rank == 0:
                        _save_best(out, step_mod.network, best, ckpt_args)
                rows.append(row)
                bar.set_postfix(loss=f"{last:.4g}", lr=f"{lr:.3g}", samples_s=f"{row['samples_per_s']:.1f}")
                loss_sum.zero_()
                n_loss, t0 = 0, time.perf_counter()
            if step % int(r["save_every"]) == 0 or end:
                head_state = (step_mod.head.full_state_dict() if partial  # a collective: every rank
                              else step_mod.head.state_dict())
                if rank == 0:
                    _save(out, recipe, step_mod, head_state, opt, step, rows, world, ckpt_args)
                runtime.barrier()
    finally:
        bar.close()
    return TrainResult(out_dir=out, step=step, total_steps=total, last_loss=last, rows=rows,
                       best=None if best is None else best.record())


def _loader(dataset: Any, transform: Any, keys: list[tuple[int, bool]], batch: int, cfg: Mapping[str, Any],
            seed: int, dev: torch.device) -> Any:
    """An iterator over this rank's batches for ``keys``; its worker seeds come from ``seed``, not the global RNG."""
    return iter(DataLoader(_Items(dataset, transform), batch_size=batch, sampler=keys, collate_fn=_collate,
                           num_workers=min(int(cfg["data"]["num_workers"]), os.cpu_count() or 1), drop_last=True, pin_memory=dev.type == "cuda",
                           generator=torch.Generator().manual_seed(seed)))


def _update(model: nn.Module, opt: torch.optim.Optimizer, step_mod: _Step, x: torch.Tensor, y: torch.Tensor,
            lr: float, clip: float, step: int, name: str) -> torch.Tensor:
    """One SGD step at learning rate ``lr`` (the head's ``on_step`` hook first); returns the loss."""
    for g in opt.param_groups:
        g["lr"] = lr
    if hasattr(step_mod.head, "on_step"):
        step_mod.head.on_step(step)
    loss = model(x, y)
    if not torch.isfinite(loss):
        raise RuntimeError(f"recipe {name}: the loss is {loss.item()} at step {step} (diverged; lower optim.lr)")
    opt.zero_grad(set_to_none=True)
    loss.backward()
    if clip > 0:
        nn.utils.clip_grad_norm_(step_mod.network.parameters(), clip)  # the backbone's, as arcface_torch
    opt.step()
    return loss


def _make_transform(size: int, recipe_name: str) -> Any:
    from fr_bench.train.data import make_transform

    # flips are drawn by the trainer (seed policy); the transform only resizes and normalises
    return make_transform(training_preprocessing(size, recipe_name), train=True, flip=False)


def _describe(dataset: Any) -> dict[str, Any]:
    describe = getattr(dataset, "describe", None)
    try:
        return dict(describe()) if callable(describe) else {"kind": type(dataset).__name__}
    except NotImplementedError:
        return {"kind": type(dataset).__name__}


def _bar(enabled: bool, start: int, stop: int, name: str) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=stop, initial=start, desc=f"train {name}", unit="step", disable=not enabled, dynamic_ncols=True)
