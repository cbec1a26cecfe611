"""Batched, pipelined embedding extraction with a resumable HDF5 cache and optional multi-GPU sharding.

``extract(images, model)`` embeds every image of an ImageSource (any object with ``__len__``, ``ref(i)``,
``load(i) -> 112x112x3 uint8``, ``keys()`` and ``color_space``; see :mod:`fr_bench.protocols.base`) and returns
:class:`Embeddings`. The pipeline:

* a ``torch.utils.data.DataLoader`` decodes and aligns crops in worker processes (``num_workers``, default
  ``min(cpu_count, 8)``; 0 decodes in this process), pinned memory and non-blocking copies on CUDA;
* the embedder preprocesses on its device (channels-last, autocast bf16/fp16 on CUDA only, float32 on CPU, under
  ``torch.inference_mode``); with a flip convention the mirrored crops (``torch.flip`` along the width, on the
  device) are concatenated to the batch so one forward pass yields both;
* ONNX models run through onnxruntime on CPU numpy batches (their embedder handles that).

Features are *raw*: not normalised (the protocol decides), float32, fused with the mirror image's by the named flip
convention ``flip`` (:data:`~fr_bench.models.base.FLIP_MODES`): ``"sum"`` = ``f(x) + f(mirror x)`` (insightface),
``"concat"`` = ``[f(x), f(mirror x)]`` (2D features; UNPG's K-FACE evaluation), ``"none"`` = ``f(x)``. True and
False still mean "sum" and "none". The convention is part of the cache identity.

Batch size: when none is given, :func:`default_batch_size` picks it by device (CPU 32: onnxruntime's CPU peak grows
with the batch and no throughput is gained above it; CUDA 128).

Crop size: images come as the aligned 112x112 crops (:data:`CROP_SIZE`); a model whose input contract states
another size gets them resized on its device by the contract's method (bilinear, antialiased:
:func:`fr_bench.models.preprocess.resize_images`), which the contract, hence the result and the cache identity,
records.

Bad images: an image that fails to load (or is not a 112x112x3 uint8 array) raises :class:`ImageDecodeError`
naming its index, key and file. With ``skip_bad_images=True`` its row is NaN instead and it is listed in
``Embeddings.skipped``; protocols decide what NaN rows mean (they must not drop them silently). Skipped rows are
not marked complete in the cache, so a later run retries them. Rows the model returns non-finite are an error
(:class:`~fr_bench.models.NonFiniteOutputError`) unless ``skip_bad_images``: then they are skipped the same way, and
``n_skipped`` always equals the number of NaN rows returned. A non-finite row found in the cache is never served: it
is recomputed.

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

from fr_bench.align import TEMPLATE_SIZE
from fr_bench.cache import EmbeddingCache, default_cache_dir, entry_digest, image_list_fingerprint
from fr_bench.models import Embedder, NonFiniteOutputError, amp_dtype, load_model
from fr_bench.models.base import FLIP_MODES, ModelOutputError, flip_mode

__all__ = ["FLIP_MODES", "Embeddings", "ImageDecodeError", "default_batch_size", "default_cache_dir", "extract",
           "flip_mode", "shard_rows"]

#: The (height, width) of the aligned crops every image source delivers (the ArcFace template).
CROP_SIZE: tuple[int, int] = (TEMPLATE_SIZE, TEMPLATE_SIZE)

#: Default batch size per device type (see the module docstring and bench/RESULTS.md for the CPU memory figures).
DEFAULT_BATCH_SIZE: dict[str, int] = {"cpu": 32, "cuda": 128}


def default_batch_size(device: str | torch.device) -> int:
    """The batch size used when none is given: 32 on CPU (bounded memory), 128 on CUDA."""
    return DEFAULT_BATCH_SIZE.get(torch.device(device).type, DEFAULT_BATCH_SIZE["cpu"])


class ImageDecodeError(RuntimeError):
    """An image that cannot be loaded; the message names its index, key and file."""


@dataclass
class Embeddings:
    """The output of :func:`extract`.

    ``features`` (N, D) float32 raw features in image order, fused by the ``flip`` convention ("sum", "concat":
    D is twice the model's width, "none"; NaN rows for skipped images); ``norms`` (N,) their L2 norms;
    ``fingerprint`` the cache identity digest (model, preprocessing, flip, image list); ``skipped`` a list of
    ``(index, key, error)``, one per NaN row; ``timings`` seconds and images/s; ``from_cache`` True when no row had
    to be computed; ``device`` where the model really ran; ``batch_size`` the batch size used.
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
    flip: str = "sum"
    preprocessing: dict[str, Any] = field(default_factory=dict)
    batch_size: int = 0


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


def _embed_batch(model: Embedder, crops: torch.Tensor, b_rows: np.ndarray, batch_index: int, images: Any, *,
                 flip: str, amp: bool | str, color_space: str, skip_bad_images: bool) -> np.ndarray:
    """One batch through the model; errors name the model, the batch and its first image."""
    x = crops.to(model.input_device, non_blocking=True)
    try:
        feats = model.embed(x, color_space=color_space, flip=flip, amp=amp, check_finite=not skip_bad_images)
    except (NonFiniteOutputError, ModelOutputError) as exc:
        raise type(exc)(
            f"{exc}; batch {batch_index} (images {int(b_rows[0])}..{int(b_rows[-1])}, "
            f"first {_describe(images, int(b_rows[0]))})"
        ) from exc
    return feats.cpu().numpy()


def _compute(
    images: Any, model: Embedder, rows: np.ndarray, *, batch_size: int, num_workers: int, flip: str,
    amp: bool | str, skip_bad_images: bool, cache: EmbeddingCache | None, bar: Any,
    color_space: str,
) -> tuple[np.ndarray, np.ndarray, list[tuple[int, str, str]], dict[str, float]]:
    """Embed ``rows``; returns (rows, features, skipped, timings). Writes completed batches to ``cache``.

    An undecodable image, or (with ``skip_bad_images``) a row the model returned non-finite, is NaN and listed in
    ``skipped``; neither is written to the cache.
    """
    dim = model.output_width(flip)
    out = np.full((len(rows), dim), np.nan, np.float32)
    skipped: list[tuple[int, str, str]] = []
    wait_s = model_s = 0.0
    if len(rows) == 0:
        return rows, out, skipped, {"wait_s": 0.0, "model_s": 0.0}
    on_cuda = model.input_device.type == "cuda"
    loader = DataLoader(
        _Crops(images, rows, CROP_SIZE),
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
            if not skip_bad_images:
                raise ImageDecodeError(f"cannot decode {_describe(images, int(b_rows[k]))}: {errors[k]}")
        feats = _embed_batch(model, crops, b_rows, batch_index, images, flip=flip, amp=amp,
                             color_space=color_space, skip_bad_images=skip_bad_images)
        if bad:
            feats[bad] = np.nan
        nonfinite = set(np.flatnonzero(~np.isfinite(feats).all(axis=1)).tolist()) - set(bad)
        for k in sorted(set(bad) | nonfinite):
            why = errors[k] if k in bad else f"model {model.name} produced NaN/inf features"
            skipped.append((int(b_rows[k]), images.ref(int(b_rows[k])).key, why))
        if nonfinite:
            feats[sorted(nonfinite)] = np.nan
        out[position : position + len(b_rows)] = feats
        position += len(b_rows)
        if cache is not None:
            good = np.ones(len(b_rows), bool)
            good[bad] = False
            good[sorted(nonfinite)] = False
            cache.write(b_rows[good], feats[good])
        t = time.perf_counter()
        model_s += t - now
        bar.update(len(b_rows))
    return rows, out, skipped, {"wait_s": wait_s, "model_s": model_s}


def _identity(images: Any, model: Embedder, keys: list[str], *, flip: str, amp: bool | str, color_space: str,
              data_fingerprint: str | None) -> dict[str, Any]:
    """Everything that decides the features: the embedding cache's identity."""
    recipe = getattr(images, "recipe_digest", None)
    identity = {
        "model_fingerprint": model.fingerprint,
        "preprocessing": model.prep.contract_key(),
        "flip": flip,
        "images": image_list_fingerprint(keys),
        # landmarks (or pack bytes) behind the keys: another landmark file for the same keys gives other crops
        "recipe": recipe() if callable(recipe) else _recipe_of_refs(images),
        "color_space": color_space,
        # autocast changes the features; it applies on CUDA only (see Embedder.embed)
        "autocast": str(amp_dtype(amp)) if model.input_device.type == "cuda" else "none",
        "n": len(keys),
        "embedding_size": model.output_width(flip),
    }
    if data_fingerprint is not None:
        identity["data"] = str(data_fingerprint)
    return identity


def _gather(rows: np.ndarray, feats: np.ndarray, skipped: list, failure: str | None, world: int,
            cache: EmbeddingCache | None, rank: int) -> tuple[np.ndarray, np.ndarray, list]:
    """Every rank's computed rows (torchrun); rank 0 writes the good ones to the cache."""
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
    return rows, feats, skipped


def _check_skipped_count(features: np.ndarray, skipped: list[tuple[int, str, str]], model: Embedder) -> None:
    """Every NaN row is listed in ``skipped`` and every listed row is NaN (``n_skipped`` is an honest count)."""
    nonfinite = set(np.flatnonzero(~np.isfinite(features).all(axis=1)).tolist())
    listed = {s[0] for s in skipped}
    if nonfinite != listed:
        extra = sorted(nonfinite - listed)[:5]
        raise NonFiniteOutputError(
            f"model {model.name}: {len(nonfinite)} non-finite rows but {len(listed)} skipped images "
            f"(unlisted rows {extra}); refusing to return features that disagree with the skipped list"
        )


def _fill(images: Any, model: Embedder, cache: EmbeddingCache | None, *, n: int, dim: int, rank: int, world: int,
          progress: bool, **compute: Any) -> tuple[np.ndarray, list, dict[str, float], int, float]:
    """All ``n`` rows: completed ones from the cache, the rest computed (sharded across torchrun ranks).

    Returns ``(features, skipped, timing parts, rows computed, compute seconds)``; closes the cache.
    """
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
                rows, feats, skipped, parts = _compute(images, model, mine, cache=cache if world == 1 else None,
                                                       bar=bar, **compute)
            except Exception as exc:  # under torchrun the other ranks wait in all_gather: tell them, then stop all
                if world == 1:
                    raise
                failure = f"rank {rank}: {type(exc).__name__}: {exc}"
                rows, feats, skipped, parts = mine[:0], np.empty((0, dim), np.float32), [], {}
        if world > 1:
            rows, feats, skipped = _gather(rows, feats, skipped, failure, world, cache, rank)
        features[rows] = feats
    finally:
        if cache is not None:
            cache.close()
    return features, skipped, parts, len(todo_rows), time.perf_counter() - t_compute


def extract(
    images: Any,
    model: Embedder | str,
    *,
    batch_size: int | None = None,
    device: str | torch.device | None = None,
    flip: bool | str = "sum",
    num_workers: int | None = None,
    amp: bool | str = True,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
    skip_bad_images: bool = False,
    data_fingerprint: str | None = None,
) -> Embeddings:
    """Embed every image of ``images`` with ``model`` (an Embedder, or a spec for :func:`load_model`).

    ``flip`` names the flip convention ("sum", "concat", "none"; True = "sum", False = "none"); ``batch_size``
    None picks :func:`default_batch_size` for the model's device; ``amp`` (True = bf16, "fp16", False) applies on
    CUDA only; ``cache_dir`` enables the HDF5 cache (see :mod:`fr_bench.cache`), None disables it; ``device`` must
    match the device the embedder was loaded for (it is used to load ``model`` when a spec is given). Raises
    :class:`ImageDecodeError` for a bad image and :class:`~fr_bench.models.NonFiniteOutputError` for NaN/inf
    features, unless ``skip_bad_images`` (then both are NaN rows listed in ``skipped``).
    ``data_fingerprint`` (e.g. the provenance hash of the protocol's files) joins the cache identity: image keys are
    relative paths, so two copies of a data set under other roots would otherwise share cached rows.
    """
    t0 = time.perf_counter()
    mode = flip_mode(flip)
    if not isinstance(model, Embedder):
        model = load_model(model, device=str(device or "cpu"))
    elif device is not None and not any(_same_device(torch.device(device), d)
                                        for d in (model.requested_device, model.device)):
        raise ValueError(f"extract(device={device!r}) but model {model.name} is loaded on {model.device}; "
                         "load it with load_model(..., device=...) on the device to use")
    batch_size = default_batch_size(model.device) if batch_size is None else int(batch_size)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    num_workers = _default_workers() if num_workers is None else int(num_workers)
    color_space = str(getattr(images, "color_space", "RGB")).upper()
    rank, world = _dist()
    n, dim = len(images), model.output_width(mode)
    keys = list(images.keys())
    if len(keys) != n:
        raise ValueError(f"image source lists {len(keys)} keys for {n} images")
    identity = _identity(images, model, keys, flip=mode, amp=amp, color_space=color_space,
                         data_fingerprint=data_fingerprint)
    cache = EmbeddingCache(cache_dir, identity, n, dim, meta={"model": model.name}) if cache_dir else None
    features, skipped, parts, computed, compute_s = _fill(
        images, model, cache, n=n, dim=dim, rank=rank, world=world, progress=progress, batch_size=batch_size,
        num_workers=num_workers, flip=mode, amp=amp, skip_bad_images=skip_bad_images, color_space=color_space,
    )
    _check_skipped_count(features, skipped, model)
    timings = {
        "seconds": time.perf_counter() - t0,
        "compute_s": compute_s,
        "images": float(n),
        "computed": float(computed),
        "images_per_s": computed / compute_s if computed and compute_s > 0 else float("nan"),
        **parts,
    }
    return Embeddings(
        features=features,
        norms=np.linalg.norm(features, axis=1).astype(np.float32),
        fingerprint=entry_digest(identity),
        n_skipped=len(skipped),
        skipped=list(skipped),
        timings=timings,
        device=str(model.device),
        from_cache=computed == 0 and n > 0,
        model_name=model.name,
        flip=mode,
        preprocessing=model.preprocessing,
        batch_size=batch_size,
    )
