"""Batched, pipelined embedding extraction with a resumable HDF5 cache and optional multi-GPU sharding.

``extract(images, model)`` embeds every image of an ImageSource (any object with ``__len__``, ``ref(i)``,
``load(i) -> 112x112x3 uint8``, ``keys()`` and ``color_space``; see :mod:`fr_bench.protocols.base`) and returns
:class:`Embeddings`. The pipeline:

* a ``torch.utils.data.DataLoader`` decodes and aligns crops in worker processes (``num_workers``, default
  ``min(cpu_count, 8)``; 0 decodes in this process), pinned memory and non-blocking copies on CUDA;
* the embedder preprocesses on its device (channels-last, autocast bf16/fp16 on CUDA only, float32 on CPU, under
  ``torch.inference_mode``); with ``flip`` the mirrored crops (``torch.flip`` along the width, on the device) are
  concatenated to the batch so one forward pass yields ``emb(x) + emb(mirror(x))``;
* ONNX models run through onnxruntime on CPU numpy batches (their embedder handles that).

Features are *raw*: not normalised (the protocol decides), float32, and with ``flip`` the sum of the two passes.

Bad images: an image that fails to load (or is not a 112x112x3 uint8 array) raises :class:`ImageDecodeError`
naming its index, key and file. With ``skip_bad_images=True`` its row is NaN instead and it is listed in
``Embeddings.skipped``; protocols decide what NaN rows mean (they must not drop them silently). Skipped rows are
not marked complete in the cache, so a later run retries them.

Multi-GPU: when ``torch.distributed`` is initialised (``torchrun``), the rows still to compute are split into
``world_size`` contiguous shards (rank r takes the r-th of ``numpy.array_split``); every rank embeds its shard on its
own device and the results are gathered with ``all_gather_object``, so every rank returns the full
:class:`Embeddings`. Rank 0 alone reads and writes the cache (single writer): in a distributed run rows are written
after the gather, so a crash mid-run keeps only what earlier runs completed. Single-process runs write the cache
after every batch and resume from the last completed batch.
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from fr_bench.cache import EmbeddingCache, default_cache_dir, entry_digest, image_list_fingerprint
from fr_bench.models import Embedder, NonFiniteOutputError, amp_dtype, load_model

__all__ = ["Embeddings", "ImageDecodeError", "default_cache_dir", "extract", "shard_rows"]


class ImageDecodeError(RuntimeError):
    """An image that cannot be loaded; the message names its index, key and file."""


@dataclass
class Embeddings:
    """The output of :func:`extract`.

    ``features`` (N, D) float32 raw features in image order (``emb(x) + emb(mirror(x))`` with flip; NaN rows for
    skipped images); ``norms`` (N,) their L2 norms; ``fingerprint`` the cache identity digest (model, preprocessing,
    flip, image list); ``skipped`` a list of ``(index, key, error)``; ``timings`` seconds and images/s;
    ``from_cache`` True when no row had to be computed.
    """

    features: np.ndarray
    norms: np.ndarray
    fingerprint: str
    n_skipped: int = 0
    skipped: list[tuple[int, str, str]] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    device: str = "cpu"
    from_cache: bool = False
    model_name: str = ""
    flip: bool = True
    preprocessing: dict[str, Any] = field(default_factory=dict)


class _Crops(Dataset):
    """``rows`` of an ImageSource as ``(row, crop tensor, error message or "")``; errors are caught per image."""

    def __init__(self, source: Any, rows: np.ndarray, size: tuple[int, int]) -> None:
        self.source, self.rows, self.size = source, rows, size

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, j: int) -> tuple[int, torch.Tensor, str]:
        row = int(self.rows[j])
        blank = torch.zeros((*self.size, 3), dtype=torch.uint8)
        try:
            img = self.source.load(row)
        except Exception as exc:
            return row, blank, f"{exc.__class__.__name__}: {exc}"
        img = np.asarray(img)
        if img.dtype != np.uint8 or img.shape != (*self.size, 3):
            return row, blank, f"expected a {self.size[0]}x{self.size[1]}x3 uint8 crop, got {img.dtype} {img.shape}"
        if not (img.flags.writeable and img.flags.c_contiguous):
            img = img.copy()
        return row, torch.from_numpy(img), ""


def _collate(items: list[tuple[int, torch.Tensor, str]]) -> tuple[np.ndarray, torch.Tensor, list[str]]:
    rows, crops, errors = zip(*items)
    return np.asarray(rows, dtype=np.int64), torch.stack(crops), list(errors)


def shard_rows(rows: np.ndarray, rank: int, world_size: int) -> np.ndarray:
    """Rank ``rank``'s contiguous share of ``rows`` (``numpy.array_split``: sizes differ by at most one)."""
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} outside world of size {world_size}")
    return np.array_split(np.asarray(rows, dtype=np.int64), world_size)[rank]


def _recipe_of_refs(source: Any) -> str:
    """For image sources without ``recipe_digest()``: sha256 of every ref's landmarks (None = already aligned)."""
    h = hashlib.sha256(b"refs")
    for i in range(len(source)):
        lm = getattr(source.ref(i), "landmarks", None)
        h.update(b"-" if lm is None else np.asarray(lm, dtype=np.float64).tobytes())
    return h.hexdigest()


def _dist() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def _default_workers() -> int:
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:
        cpus = os.cpu_count() or 1
    return min(cpus, 8)


def _describe(source: Any, row: int) -> str:
    try:
        ref = source.ref(row)
        key, src = ref.key, getattr(ref, "source", None)
    except Exception:
        return f"image {row}"
    where = f"image {row} ({key})"
    if src and str(src) != str(key):
        where += f" [file {src}]"
    return where


def _same_device(a: torch.device, b: torch.device) -> bool:
    return a.type == b.type and (a.index or 0) == (b.index or 0)


def _compute(
    images: Any, model: Embedder, rows: np.ndarray, *, batch_size: int, num_workers: int, flip: bool,
    amp: bool | str, skip_bad_images: bool, cache: EmbeddingCache | None, bar: Any,
    color_space: str,
) -> tuple[np.ndarray, np.ndarray, list[tuple[int, str, str]], dict[str, float]]:
    """Embed ``rows``; returns (rows, features, skipped, timings). Writes completed batches to ``cache``."""
    dim = model.embedding_size
    out = np.full((len(rows), dim), np.nan, np.float32)
    skipped: list[tuple[int, str, str]] = []
    wait_s = model_s = 0.0
    if len(rows) == 0:
        return rows, out, skipped, {"wait_s": 0.0, "model_s": 0.0}
    on_cuda = model.input_device.type == "cuda"
    loader = DataLoader(
        _Crops(images, rows, model.prep.input_size),
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        collate_fn=_collate,
        pin_memory=on_cuda,
        prefetch_factor=4 if num_workers > 0 else None,
    )
    position = 0
    t = time.perf_counter()
    for batch_index, (b_rows, crops, errors) in enumerate(loader):
        now = time.perf_counter()
        wait_s += now - t
        bad = [k for k, e in enumerate(errors) if e]
        for k in bad:
            where = _describe(images, int(b_rows[k]))
            if not skip_bad_images:
                raise ImageDecodeError(f"cannot decode {where}: {errors[k]}")
            key = images.ref(int(b_rows[k])).key
            skipped.append((int(b_rows[k]), key, errors[k]))
        x = crops.to(model.input_device, non_blocking=True)
        try:
            feats = model.embed(x, color_space=color_space, flip=flip, amp=amp)
        except NonFiniteOutputError as exc:
            raise NonFiniteOutputError(
                f"{exc}; batch {batch_index} (images {int(b_rows[0])}..{int(b_rows[-1])}, "
                f"first {_describe(images, int(b_rows[0]))})"
            ) from exc
        feats = feats.cpu().numpy()
        if bad:
            feats[bad] = np.nan
        out[position : position + len(b_rows)] = feats
        position += len(b_rows)
        if cache is not None:
            good = np.ones(len(b_rows), bool)
            good[bad] = False
            cache.write(b_rows[good], feats[good])
        t = time.perf_counter()
        model_s += t - now
        bar.update(len(b_rows))
    return rows, out, skipped, {"wait_s": wait_s, "model_s": model_s}


def extract(
    images: Any,
    model: Embedder | str,
    *,
    batch_size: int = 128,
    device: str | torch.device | None = None,
    flip: bool = True,
    num_workers: int | None = None,
    amp: bool | str = True,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
    skip_bad_images: bool = False,
    data_fingerprint: str | None = None,
) -> Embeddings:
    """Embed every image of ``images`` with ``model`` (an Embedder, or a spec for :func:`load_model`).

    ``flip`` adds the mirrored image's features; ``amp`` (True = bf16, "fp16", False) applies on CUDA only;
    ``cache_dir`` enables the HDF5 cache (see :mod:`fr_bench.cache`), None disables it; ``device`` must match the
    embedder's (it is used to load ``model`` when a spec is given). Raises :class:`ImageDecodeError` for a bad image
    unless ``skip_bad_images``, and :class:`~fr_bench.models.NonFiniteOutputError` for NaN/inf features.
    ``data_fingerprint`` (e.g. the provenance hash of the protocol's files) joins the cache identity: image keys are
    relative paths, so two copies of a data set under other roots would otherwise share cached rows.
    """
    t0 = time.perf_counter()
    if not isinstance(model, Embedder):
        model = load_model(model, device=str(device or "cpu"))
    elif device is not None and not _same_device(torch.device(device), model.device):
        raise ValueError(f"extract(device={device!r}) but model {model.name} is loaded on {model.device}; "
                         "load it with load_model(..., device=...) on the device to use")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    num_workers = _default_workers() if num_workers is None else int(num_workers)
    color_space = str(getattr(images, "color_space", "RGB")).upper()
    rank, world = _dist()
    n, dim = len(images), model.embedding_size
    keys = list(images.keys())
    if len(keys) != n:
        raise ValueError(f"image source lists {len(keys)} keys for {n} images")
    recipe = getattr(images, "recipe_digest", None)
    identity = {
        "model_fingerprint": model.fingerprint,
        "preprocessing": model.prep.contract_key(),
        "flip": bool(flip),
        "images": image_list_fingerprint(keys),
        # landmarks (or pack bytes) behind the keys: another landmark file for the same keys gives other crops
        "recipe": recipe() if callable(recipe) else _recipe_of_refs(images),
        "color_space": color_space,
        # autocast changes the features; it applies on CUDA only (see Embedder.embed)
        "autocast": str(amp_dtype(amp)) if model.input_device.type == "cuda" else "none",
        "n": n,
        "embedding_size": dim,
    }
    if data_fingerprint is not None:
        identity["data"] = str(data_fingerprint)
    cache = EmbeddingCache(cache_dir, identity, n, dim, meta={"model": model.name}) if cache_dir else None
    fingerprint = entry_digest(identity)

    features = np.full((n, dim), np.nan, np.float32)
    todo = np.ones(n, bool)
    try:
        if cache is not None and rank == 0:
            cache.open()
            done_rows, done_feats = cache.completed()
            features[done_rows] = done_feats
            todo[done_rows] = False
        if world > 1:
            shared = [todo if rank == 0 else None]
            torch.distributed.broadcast_object_list(shared, src=0)
            todo = shared[0]
        todo_rows = np.flatnonzero(todo)
        mine = shard_rows(todo_rows, rank, world)
        bar = tqdm(total=n, initial=n - len(todo_rows), unit="img", desc=f"embedding [{model.name}]",
                   disable=not progress or rank != 0, dynamic_ncols=True)
        t_compute = time.perf_counter()
        failure: str | None = None
        with bar:
            try:
                rows, feats, skipped, parts = _compute(
                    images, model, mine, batch_size=batch_size, num_workers=num_workers, flip=flip, amp=amp,
                    skip_bad_images=skip_bad_images, cache=cache if world == 1 else None, bar=bar,
                    color_space=color_space,
                )
            except Exception as exc:  # under torchrun the other ranks wait in all_gather: tell them, then stop all
                if world == 1:
                    raise
                failure = f"rank {rank}: {type(exc).__name__}: {exc}"
                rows, feats, skipped, parts = mine[:0], np.empty((0, dim), np.float32), [], {}
        if world > 1:
            gathered: list[Any] = [None] * world
            torch.distributed.all_gather_object(gathered, (rows, feats, skipped, failure))
            failures = [g[3] for g in gathered if g[3]]
            if failures:
                raise RuntimeError("extraction failed on " + "; ".join(failures))
            rows = np.concatenate([g[0] for g in gathered])
            feats = np.concatenate([g[1] for g in gathered])
            skipped = sorted(s for g in gathered for s in g[2])
            if cache is not None and rank == 0:
                skipped_rows = {s[0] for s in skipped}
                good = np.array([r not in skipped_rows for r in rows], bool)
                cache.write(rows[good], feats[good])
        features[rows] = feats
    finally:
        if cache is not None:
            cache.close()
    seconds = time.perf_counter() - t0
    compute_s = time.perf_counter() - t_compute
    computed = len(todo_rows)
    timings = {
        "seconds": seconds,
        "compute_s": compute_s,
        "images": float(n),
        "computed": float(computed),
        "images_per_s": computed / compute_s if computed and compute_s > 0 else float("nan"),
        **parts,
    }
    return Embeddings(
        features=features,
        norms=np.linalg.norm(features, axis=1).astype(np.float32),
        fingerprint=fingerprint,
        n_skipped=len(skipped),
        skipped=list(skipped),
        timings=timings,
        device=str(model.device),
        from_cache=computed == 0 and n > 0,
        model_name=model.name,
        flip=bool(flip),
        preprocessing=model.preprocessing,
    )
