"""Process plumbing for training: torchrun detection, devices, the log table and the git hash."""

from __future__ import annotations

import csv
import io
import os
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from fr_bench.provenance import atomic_write_bytes


def setup_distributed(device: str | None) -> tuple[int, int, torch.device]:
    """``(rank, world_size, device)``; under torchrun (``WORLD_SIZE`` > 1) initialises the process group once.

    The backend is NCCL when the device is CUDA, gloo on CPU. ``device`` ``None``/``"auto"`` picks
    ``cuda:<LOCAL_RANK>`` when CUDA is available, else the CPU.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if device in (None, "auto"):
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError(f"device {device!r} asked for but CUDA is not available")
        if world > 1 and dev.index is None:
            dev = torch.device("cuda", local)
        torch.cuda.set_device(dev)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    if dist.is_initialized():
        return dist.get_rank(), dist.get_world_size(), dev
    return 0, 1, dev


def barrier() -> None:
    """Wait for every rank (no-op in one process)."""
    if dist.is_initialized() and dist.get_world_size() > 1:
        dist.barrier()


def mean_over_ranks(value: torch.Tensor) -> float:
    """The mean of a scalar over every rank (the value itself in one process)."""
    v = value.detach().float().reshape(1).clone()
    if dist.is_initialized() and dist.get_world_size() > 1:
        if dist.get_backend() == "nccl":
            v = v.cuda()
        dist.all_reduce(v)
        v /= dist.get_world_size()
    return float(v.item())


def write_log(path: Path, rows: Sequence[Mapping[str, Any]]) -> Path:
    """``rows`` as CSV (columns: every key in order of first appearance; missing cells empty), atomically."""
    columns: list[str] = []
    for row in rows:
        columns.extend(k for k in row if k not in columns)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _cell(v) for k, v in row.items()})
    return atomic_write_bytes(path, buf.getvalue().encode())


def _cell(value: Any) -> Any:
    return f"{value:.8g}" if isinstance(value, float) else value


def read_log(path: Path) -> list[dict[str, str]]:
    """The rows of a log.csv (strings), or an empty list when there is none."""
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def git_hash() -> str:
    """The commit of the fr_bench checkout (``+dirty`` when it has local changes), or ``"unknown"``."""
    here = Path(__file__).resolve().parent
    try:
        head = subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")
