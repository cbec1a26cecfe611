"""Run a function on several gloo ranks on CPU (torch.multiprocessing spawn, file:// rendezvous in a tmp dir)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

import torch.distributed as dist
import torch.multiprocessing as mp


def _entry(rank: int, fn: Callable[..., None], world_size: int, init_file: str, args: tuple[Any, ...]) -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size)
    try:
        fn(rank, world_size, *args)
    finally:
        dist.destroy_process_group()


def spawn_ranks(fn: Callable[..., None], world_size: int, tmp_dir: Path, *args: Any) -> None:
    """Call ``fn(rank, world_size, *args)`` on ``world_size`` gloo ranks; re-raises a rank's failure.

    ``fn`` must be importable by name (a module-level function); results travel back through files in ``tmp_dir``.
    """
    init_file = Path(tmp_dir) / "dist_init"
    if init_file.exists():
        init_file.unlink()
    mp.spawn(_entry, args=(fn, world_size, str(init_file), args), nprocs=world_size, join=True)
