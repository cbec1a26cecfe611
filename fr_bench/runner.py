"""One evaluation, end to end: protocol spec -> loader -> extractor -> embeddings -> evaluate -> result record.

This is what ``frbench evaluate`` runs, and what a notebook calls::

    from fr_bench.runner import evaluate_model
    record = evaluate_model("sface", "demo")
    record.result.metrics

It owns no numbers: the protocol computes them with :mod:`fr_bench.metrics`, and this module only wires the stages
and records how they were run (model fingerprint, preprocessing, conventions, data hashes, timings).
"""

from __future__ import annotations

import platform
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fr_bench import extract as _extract
from fr_bench import provenance, results
from fr_bench.metrics import names as metric_names
from fr_bench.models import load_model
from fr_bench.models.base import FLIP_MODES, flip_mode
from fr_bench.protocols import Protocol, ProtocolError, ProtocolResult, load_protocol, load_spec
from fr_bench.protocols import quality as _quality
from fr_bench.results import save_scores
from fr_bench.similarity import FeatureLayout, model_conventions, score_applies, use_layout


@dataclass
class Evaluation:
    """Everything one run produced: the protocol, its embeddings and the stored record."""

    protocol: Protocol
    embeddings: Any  # fr_bench.extract.Embeddings
    result: ProtocolResult
    record: results.StoredResult
    path: Path | None = None


def default_device() -> str:
    """``cuda:<LOCAL_RANK>`` under torchrun (initialising torch.distributed once), ``cuda`` if present, else ``cpu``.

    Under ``torchrun`` (``WORLD_SIZE`` > 1) the process group is initialised here (NCCL on GPUs, gloo on CPU), so
    the extractor shards the images across ranks and gathers the embeddings.
    """
    import os

    import torch

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and torch.distributed.is_available() and not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    if torch.cuda.is_available():
        return f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}" if world > 1 else "cuda"
    return "cpu"


def is_main_process() -> bool:
    """False on every torchrun rank but 0 (those compute their shard and stay silent)."""
    import torch

    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank() == 0
    return True


def protocol_flip_default(proto: Protocol) -> str:
    """The protocol's own flip convention: its ``flip_convention`` ("sum" but for K-FACE's "concat"), else
    ``flip_test`` (True = "sum")."""
    return flip_mode(getattr(proto, "flip_convention", "sum" if getattr(proto, "flip_test", True) else "none"))


def decide_flip(proto: Protocol, flip: bool | str | None, conventions: Mapping[str, Any] | None) -> str:
    """The flip convention of a run: ``conventions["flip"]`` (``-c flip=NAME``) wins, else ``flip`` (False from
    ``--no-flip`` = "none"), else the protocol's default (:func:`protocol_flip_default`)."""
    if conventions and "flip" in conventions:
        return flip_mode(conventions["flip"])  # None (the CLI reads "-c flip=none" as None) is "none"
    if flip is not None:
        return flip_mode(flip)
    return protocol_flip_default(proto)


def protocol_conventions(proto: Protocol, conventions: Mapping[str, Any] | None, flip: str | None) -> dict[str, Any]:
    """``conventions`` as the protocol's ``evaluate`` takes them: the decided flip convention under "flip" when the
    protocol lists that group (older protocols do not: then the runner records it itself)."""
    out = {k: v for k, v in (conventions or {}).items() if k != "flip"}
    if flip is not None and "flip" in proto.conventions:
        out["flip"] = flip
    return out


@dataclass
class Prepared:
    """A protocol with its model and embeddings: what :func:`prepare` hands to ``evaluate`` or the conventions table."""

    protocol: Protocol
    embedder: Any  # fr_bench.models.Embedder
    embeddings: Any  # fr_bench.extract.Embeddings
    flip: str  # the flip convention the embeddings were extracted with (see fr_bench.models.base.FLIP_MODES)
    data: dict[str, Any]  # provenance fingerprint of the protocol's files
    extract_options: dict[str, Any] = field(default_factory=dict, repr=False)
    name: str = ""  # the protocol name it was loaded under
    root: str | Path | None = None
    protocol_options: dict[str, Any] = field(default_factory=dict)
    scores_dir: str | Path | None = None  # where per-pair score files go (the cache folder, even with no cache)
    seconds: float = 0.0  # wall time of loading + extraction

    def embeddings_for(self, flip: bool | str) -> Any:
        """The embeddings under the flip convention ``flip`` (extracted through the cache when it is enabled)."""
        mode = flip_mode(flip)
        if mode == self.flip:
            return self.embeddings
        return _extract.extract(self.protocol.images, self.embedder, **{**self.extract_options, "flip": mode})


def prepare(
    model: str,
    protocol: str,
    root: str | Path | None = None,
    *,
    arch: str | None = None,
    device: str | None = None,
    batch_size: int | None = None,
    flip: bool | str | None = None,
    conventions: Mapping[str, Any] | None = None,
    amp: bool = True,
    num_workers: int | None = None,
    cache_dir: str | Path | None = None,
    use_cache: bool = True,
    skip_bad_images: bool = False,
    progress: bool = True,
    protocol_options: Mapping[str, Any] | None = None,
    model_options: Mapping[str, Any] | None = None,
    loaded_protocol: Protocol | None = None,
    embedder: Any = None,
):
    """Load the protocol and the model and extract (or read from the cache) the embeddings.

    The provenance fingerprint of the protocol's files is computed first and joins the embedding cache's identity:
    image keys are paths relative to the root, so another copy of the data under another root (other crops, same
    file names) is never served the first copy's rows. The conventions table reuses the cached embeddings.
    The flip convention is :func:`decide_flip` of ``flip`` and ``conventions``; ``batch_size`` None picks the
    device's default (:func:`fr_bench.extract.default_batch_size`). A suite passes ``loaded_protocol`` (``protocol``
    loaded with ``protocol_options`` under ``root``, as its preflight did) and ``embedder`` (``model`` loaded once,
    on ``device``) so neither is loaded again.
    """
    t0 = time.perf_counter()
    proto = loaded_protocol or load_protocol(protocol, root, **dict(protocol_options or {}))
    data = provenance.protocol_fingerprint(list(proto.data_files), root=root)
    device = device or (str(embedder.requested_device) if embedder is not None else default_device())
    reserved = sorted(set(model_options or {}) & {"arch", "device"})
    if reserved:
        raise ValueError(f"model option {reserved[0]!r}: give it as --{reserved[0]} (arch=/device= in Python)")
    if embedder is None:
        embedder = load_model(model, arch=arch, device=device, **dict(model_options or {}))
    flip_used = decide_flip(proto, flip, conventions)
    options = {
        "batch_size": batch_size,
        "device": device,
        "num_workers": num_workers,
        "amp": amp,
        "cache_dir": (cache_dir or _extract.default_cache_dir()) if use_cache else None,
        "progress": progress,
        "skip_bad_images": skip_bad_images,
        "data_fingerprint": data["combined"],
    }
    emb = _extract.extract(proto.images, embedder, flip=flip_used, **options)
    return Prepared(proto, embedder, emb, flip_used, data, options, name=str(protocol), root=root,
                    protocol_options=dict(protocol_options or {}),
                    scores_dir=cache_dir or _extract.default_cache_dir(), seconds=time.perf_counter() - t0)


def evaluate_model(
    model: str,
    protocol: str,
    root: str | Path | None = None,
    *,
    out: str | Path | None = None,
    conventions: Mapping[str, str] | None = None,
    ci: float | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    name: str | None = None,
    quality: str | None = None,
    quality_how: str = "min",
    **prepare_kwargs: Any,
) -> Evaluation:
    """Run ``model`` on ``protocol`` and return the :class:`Evaluation`; write the result file when ``out`` is set.

    The per-pair (per-search) scores go to an HDF5 file in the cache folder, keyed by model fingerprint, protocol,
    data hash and conventions, and the result records where: ``frbench compare`` reads them for paired statistics.
    ``quality`` (a source of :mod:`fr_bench.protocols.quality`: "norm", "detector" or a CSV path) adds the EDC of
    the 1:1 pairs, their pairwise quality made by ``quality_how`` ("min", "mean", "product").
    """
    t0 = time.perf_counter()
    if prepare_kwargs.get("loaded_protocol") is None:  # checked before extraction (prepare reuses it)
        options = dict(prepare_kwargs.get("protocol_options") or {})
        prepare_kwargs["loaded_protocol"] = load_protocol(protocol, root, **options)
    proto = prepare_kwargs["loaded_protocol"]
    if proto.not_evaluated:
        raise ProtocolError(proto.not_evaluated)
    if quality is not None:  # a bad source fails before extraction
        _quality.check_source(proto, str(quality), how=quality_how)
    prep = prepare(model, protocol, root, conventions=conventions, **prepare_kwargs)
    prep.seconds = time.perf_counter() - t0  # the protocol's loading above counts with the extraction, as before
    return evaluate_prepared(prep, out=out, conventions=conventions, ci=ci, n_boot=n_boot, seed=seed, name=name,
                             model_spec=str(model), quality=quality, quality_how=quality_how)


def evaluate_prepared(
    prep: Prepared,
    *,
    out: str | Path | None = None,
    conventions: Mapping[str, str] | None = None,
    ci: float | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    name: str | None = None,
    model_spec: str = "",
    quality: str | None = None,
    quality_how: str = "min",
) -> Evaluation:
    """The second half of :func:`evaluate_model`: evaluate a :class:`Prepared` protocol (embeddings in hand) and
    build (and, with ``out``, write) its record. Suites call it once per member after sharing extractions.
    ``quality``/``quality_how``: the EDC of :func:`evaluate_model` (the source checked before evaluating)."""
    t0 = time.perf_counter()
    protocol, root = prep.name, prep.root
    proto, embedder, emb, flip_used, fingerprint = prep.protocol, prep.embedder, prep.embeddings, prep.flip, prep.data
    declared = getattr(embedder, "score", None)  # a model's own score (GroupFace) is its default convention
    conventions, score_flag = model_conventions(conventions, declared, proto.conventions.get("score", []))
    layout, norms = model_layout(embedder, emb, flip_used)
    plan = None
    if quality is not None:
        skipped = ~np.isfinite(emb.features).all(axis=1)
        plan = _quality.plan_quality(proto, str(quality), norms, how=quality_how, skipped=skipped)
    with use_layout(layout):
        result = proto.evaluate(emb.features, norms, conventions=protocol_conventions(proto, conventions, flip_used),
                                ci=ci, n_boot=n_boot, seed=seed)
    if plan is not None:
        _quality.attach_edc(result, plan)
    result.flags.extend([score_flag] if score_flag else [])
    result.conventions["flip"] = flip_used  # the runner decided it: the record never says "sum" after "none"
    t_eval = time.perf_counter()

    spec = load_spec(protocol)
    data, flags = provenance.annotate_fingerprint(
        fingerprint, spec.get("known_hashes", []), protocol
    )
    result.flags.extend(flags)
    result.provenance = data

    scores_file = None
    if result.scores and is_main_process():
        key = {
            "model": embedder.fingerprint,
            "protocol": protocol,
            "data": data["combined"],
            "conventions": dict(sorted(result.conventions.items())),
            "flip": flip_used,
            # the embeddings' identity (autocast, alignment recipe, ...) and the load options (e.g. the folder
            # protocol's seed) change the scores too: another run must not overwrite this run's file
            "embeddings": emb.fingerprint,
            "options": {k: str(v) for k, v in sorted(prep.protocol_options.items())},
        }
        scores_file = str(save_scores(prep.scores_dir or _extract.default_cache_dir(), key, result.scores))

    record = results.StoredResult(
        model={
            "name": name or embedder.name,
            "spec": model_spec or str(getattr(embedder, "name", "")),
            "format": embedder.format,
            "fingerprint": embedder.fingerprint,
            "preprocessing": dict(embedder.preprocessing),
            "embedding_size": int(declared["embedding_size"] if declared else embedder.embedding_size),
            **({"score": dict(declared)} if declared else {}),
        },
        protocol={
            "name": protocol,
            "display_name": spec.get("display_name", protocol),
            "root": None if root is None else str(root),
            "options": {k: str(v) for k, v in prep.protocol_options.items()},
            "data": data,
        },
        result=result,
        extraction={
            "device": str(emb.device),  # where the model ran (an ONNX model without a CUDA provider runs on CPU)
            **_requested(embedder),
            "batch_size": int(emb.batch_size),
            "flip": flip_used,
            "feature_size": int(emb.features.shape[1]),
            "amp": prep.extract_options.get("amp", True),
            "images": int(emb.features.shape[0]),
            "seconds": float(emb.timings.get("seconds", prep.seconds)),
            "images_per_s": float(emb.timings.get("images_per_s", float("nan"))),
            "from_cache": bool(emb.from_cache),
            "n_skipped": int(emb.n_skipped),
            "skipped": [[str(x) for x in s] for s in emb.skipped],
            "environment": {"python": platform.python_version(), "machine": platform.machine()},
        },
        timings={"extract": prep.seconds, "evaluate": t_eval - t0, "total": prep.seconds + time.perf_counter() - t0},
        scores_file=scores_file,
    )
    path = results.write_result(out, record) if out is not None and is_main_process() else None
    return Evaluation(protocol=proto, embeddings=emb, result=result, record=record, path=path)


def model_layout(embedder: Any, emb: Any, flip: str) -> tuple[FeatureLayout | None, np.ndarray]:
    """The feature layout of a model that declares its own score (else None) under ``flip``, and the feature norms
    the protocol gets: those of the embedding columns only (the whole rows for every other model)."""
    declared = getattr(embedder, "score", None)
    if not declared:
        return None, emb.norms
    layout = FeatureLayout.from_declaration(declared, flip)
    return layout, np.linalg.norm(layout.split(emb.features)[0], axis=1).astype(np.float32)


def _requested(embedder: Any) -> dict[str, str]:
    """``{"device_requested": ...}`` when the model runs elsewhere than asked (else nothing)."""
    asked, used = getattr(embedder, "requested_device", embedder.device), embedder.device
    return {} if str(asked) == str(used) else {"device_requested": str(asked)}


#: Which metrics each convention group moves, as metric kinds of :mod:`fr_bench.metrics.names` (any "G1/" or "Q1/"
#: prefix), for the side-by-side conventions table; ``None``: every number moves (a group not listed: the same).
GROUP_METRICS: dict[str, tuple[str, ...] | None] = {
    "accuracy": ("accuracy", "accuracy_std", "accuracy_sem"),
    "tar": ("tar@far",),
    "1n": ("rank", "tpir@fpir", "merged_rate@far"),
    "pooling": None,  # template pooling moves every number
    "megaface_cleaning": None,  # a load option: the table shows the one the protocol was loaded with
    "flip": None,  # other features: every number moves
}


def _rows_of(res: ProtocolResult, group: str, conv: str, default: bool, base_flags: set[str]) -> list[dict[str, Any]]:
    """The conventions-table rows of one evaluation: the metrics ``group`` moves."""
    kinds = GROUP_METRICS.get(group)
    rows = []
    for metric, value in res.metrics.items():
        parsed = metric_names.parse(metric)  # "G1/rank1", "Q2/tar@far=1e-3": per-gallery / per-list
        if kinds is not None and (parsed is None or parsed.kind not in kinds):
            continue
        point = res.operating_points.get(metric, {})
        rows.append({
            "group": group,
            "convention": conv,
            "metric": metric,
            "value": value,
            "far": point.get("far", point.get("fpir")),
            "threshold": point.get("threshold"),
            "default": default,
            "note": "; ".join(f for f in res.flags if f not in base_flags),
        })
    return rows


def conventions_rows(proto: Protocol, embeddings: np.ndarray, norms: np.ndarray | None = None, *,
                     prepared: Prepared | None = None) -> list[dict[str, Any]]:
    """The same embeddings under every applicable convention: one row per (group, convention, metric).

    Each group is varied alone, the others stay at their defaults, so a row shows what that convention alone does.
    With ``prepared`` (from :func:`prepare`) the ``flip`` group is shown too: the images are embedded again (through
    the cache) under each flip convention; without it the flip group is left out (the features cannot be changed).
    """
    used = prepared.flip if prepared is not None else None
    declared = getattr(prepared.embedder, "score", None) if prepared is not None else None
    layout = FeatureLayout.from_declaration(declared, used) if declared else None
    if layout is not None:  # a model with its own score: norms of the embedding columns, its score the default
        norms = np.linalg.norm(layout.split(embeddings)[0], axis=1)
    own, _ = model_conventions({}, declared, proto.conventions.get("score", []))
    rows: list[dict[str, Any]] = []
    with use_layout(layout):
        base_flags = set(proto.evaluate(embeddings, norms, conventions=protocol_conventions(proto, own, used)).flags)
        for group, names in proto.conventions.items():
            if group == "flip":
                continue
            for conv in names:
                if group == "score" and not score_applies(conv):
                    continue  # another model's own score (group-aware) cannot read these rows
                res = proto.evaluate(embeddings, norms,
                                     conventions=protocol_conventions(proto, {**own, group: conv}, used))
                rows += _rows_of(res, group, conv, conv == own.get(group, names[0]), base_flags)
    if prepared is not None:
        default = protocol_flip_default(proto)
        for mode in [default, *(m for m in FLIP_MODES if m != default)]:
            emb = prepared.embeddings_for(mode)
            mode_layout, mode_norms = model_layout(prepared.embedder, emb, mode)
            with use_layout(mode_layout):
                res = proto.evaluate(emb.features, mode_norms, conventions=protocol_conventions(proto, own, mode))
            rows += _rows_of(res, "flip", mode, mode == default, base_flags)
    return rows
