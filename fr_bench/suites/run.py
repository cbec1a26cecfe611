"""Run a model on a suite: preflight, one extraction per distinct image set, members evaluated in parallel.

What ``frbench evaluate -p suite:NAME`` (or ``-p lfw,cfp_fp,...``) and the training validation call::

    from fr_bench.suites.run import run_suite
    run = run_suite("backbone.pth", "suite:quick", "/data/faces_emore", arch="iresnet50", out="results")
    run.evaluations["lfw"].result.metrics["accuracy"]

The stages, in order:

1. :func:`fr_bench.suites.preflight.preflight` checks every member (found, complete, the model's input contract,
   the output folder) and raises one :class:`~fr_bench.suites.spec.SuiteError` listing everything wrong before
   any image is embedded; the model is loaded once, before it, so the contract check sees the real model.
2. Members are grouped by image set (:func:`image_set_key`: image keys, alignment recipe, flip convention, colour
   space and where the images live); each group is extracted once (:func:`fr_bench.runner.prepare`) and its other
   members reuse those embeddings, with or without the cache.
3. Members are evaluated in a thread pool (:func:`fr_bench.runner.evaluate_prepared`: numpy releases the GIL);
   each writes its own result file exactly as a one-protocol run does, and the results are gathered in suite order.
4. A suite record (``OUT/<model>/suite-<suite>.json``, written atomically) ties the result files to one run.

This module computes no number: every metric comes from the members' protocols.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from fr_bench.results import SUITE_RECORD_KIND
from fr_bench.runner import (
    Evaluation,
    Prepared,
    decide_flip,
    default_device,
    evaluate_prepared,
    is_main_process,
    prepare,
)

__all__ = ["SuiteRun", "image_set_key", "load_embedder", "run_suite", "suite_record_path"]


@dataclass
class SuiteRun:
    """One suite run: ``evaluations`` (protocol -> :class:`~fr_bench.runner.Evaluation`, in suite order),
    ``skipped`` (protocol -> why it was not run), the suite record (``record``, written to ``record_path`` when
    ``out`` was given), the preflight, and ``extractions`` (one entry per distinct image set)."""

    suite: Any  # fr_bench.suites.spec.Suite
    evaluations: dict[str, Evaluation]
    skipped: dict[str, str]
    record: dict[str, Any]
    record_path: Path | None
    preflight: Any  # fr_bench.suites.preflight.Preflight
    extractions: list[dict[str, Any]] = field(default_factory=list)


def image_set_key(proto: Any, flip: str) -> str:
    """Identity of the crops a protocol embeds: members with equal keys share one extraction.

    sha256 over the preflight's :func:`~fr_bench.suites.preflight.image_set_id` (every image's key and the file it
    is read from), the alignment recipe (``ImageSource.recipe_digest``: landmarks, or a pack's bytes), the flip
    convention and the colour space: what decides the features besides the model.
    """
    from fr_bench.suites.preflight import image_set_id

    images = proto.images
    recipe = getattr(images, "recipe_digest", None)
    parts = [image_set_id(proto), recipe() if callable(recipe) else "no-recipe", flip,
             str(getattr(images, "color_space", "RGB")).upper()]
    return hashlib.sha256("\x1f".join(parts).encode("utf-8", "surrogateescape")).hexdigest()


def load_embedder(model: Any, *, arch: str | None = None, device: str | None = None,
                  model_options: Mapping[str, Any] | None = None) -> Any:
    """``model`` (a spec string or an nn.Module) loaded once for every member, as :func:`fr_bench.runner.prepare`
    loads it (``arch``/``device`` are not model options)."""
    from fr_bench.models import load_model

    reserved = sorted(set(model_options or {}) & {"arch", "device"})
    if reserved:
        raise ValueError(f"model option {reserved[0]!r}: give it as --{reserved[0]} (arch=/device= in Python)")
    return load_model(model, arch=arch, device=device or default_device(), **dict(model_options or {}))


def suite_record_path(out: str | os.PathLike[str], model_name: str, suite_name: str) -> Path:
    """``OUT/<safe model name>/suite-<safe suite name>.json``, beside the members' result files."""
    from fr_bench.results import safe_name

    return Path(out) / safe_name(model_name) / f"suite-{safe_name(suite_name)}.json"


def _as_suite(suite: Any) -> Any:
    """A Suite from a Suite, ``"suite:NAME"``, a suite file, a ``"a,b,c"`` list or a list of protocol names."""
    from fr_bench.suites import spec

    if isinstance(suite, spec.Suite):
        return suite
    if isinstance(suite, (list, tuple)):
        return spec.suite_from_protocols(list(suite))
    text = str(suite)
    parsed = spec.parse_protocols_arg(text)
    return parsed if parsed is not None else spec.load_suite(text)


def _skipped(pre: Any) -> dict[str, str]:
    """The preflight's skipped members, ``(member, reason)`` pairs, as ``{protocol: reason}``."""
    return {str(member.protocol): str(reason) for member, reason in pre.skipped}


def _share(first: Prepared, member: Any, path: Any, proto: Any) -> Prepared:
    """A :class:`Prepared` for ``member`` over ``first``'s embeddings (same image set): its own protocol, files'
    fingerprint, root and options; no second extraction."""
    from fr_bench import provenance

    t0 = time.perf_counter()
    data = provenance.protocol_fingerprint(list(proto.data_files), root=path)
    return Prepared(proto, first.embedder, first.embeddings, first.flip, data, dict(first.extract_options),
                    name=str(member.protocol), root=path, protocol_options=dict(member.options or {}),
                    scores_dir=first.scores_dir, seconds=time.perf_counter() - t0)


def _extract_all(pre: Any, model: Any, embedder: Any, conventions: Any, kw: dict[str, Any]
                 ) -> tuple[dict[str, Prepared], list[dict[str, Any]]]:
    """One :func:`prepare` per distinct image set (in suite order); the other members of a set share it."""
    preps: dict[str, Prepared] = {}
    firsts: dict[str, tuple[str, Prepared]] = {}
    extractions: list[dict[str, Any]] = []
    for member, path, proto in pre.ok:
        flip = decide_flip(proto, kw.get("flip"), conventions)
        key = image_set_key(proto, flip)
        if key in firsts:
            first_name, first = firsts[key]
            preps[member.protocol] = _share(first, member, path, proto)
            next(e for e in extractions if e["protocols"][0] == first_name)["protocols"].append(member.protocol)
            continue
        prep = prepare(model, member.protocol, path, conventions=conventions, loaded_protocol=proto,
                       embedder=embedder, protocol_options=dict(member.options or {}), **kw)
        preps[member.protocol] = prep
        firsts[key] = (member.protocol, prep)
        emb = prep.embeddings
        extractions.append({"protocols": [member.protocol], "images": int(emb.features.shape[0]), "flip": prep.flip,
                            "seconds": float(prep.seconds), "from_cache": bool(emb.from_cache),
                            "computed": int(emb.timings.get("computed", 0))})
    return preps, extractions


def _evaluate_all(preps: dict[str, Prepared], *, workers: int | None, **eval_kw: Any) -> dict[str, Evaluation]:
    """Every member's :func:`evaluate_prepared`, ``workers`` at a time (threads), returned in suite order."""
    names = list(preps)
    n = max(1, min(len(names), workers or os.cpu_count() or 1))
    if n == 1:
        return {p: evaluate_prepared(preps[p], **eval_kw) for p in names}
    with ThreadPoolExecutor(max_workers=n, thread_name_prefix="frbench-suite") as pool:
        futures = {p: pool.submit(evaluate_prepared, preps[p], **eval_kw) for p in names}
        return {p: futures[p].result() for p in names}


def headline(evaluation: Evaluation) -> dict[str, float | None]:
    """The member's headline numbers ``{metric: value}`` (fractions, as stored), by the leaderboard's columns."""
    from fr_bench.metrics import names as metric_names
    from fr_bench.report.leaderboard import headline_columns

    metrics = evaluation.result.metrics
    out: dict[str, float | None] = {}
    for metric, _label, _scale in headline_columns(evaluation.record.protocol_name, metrics,
                                                   evaluation.record.protocol.get("display_name")):
        found = metric if metric in metrics else next(
            (m for m in metrics if metric_names.same_metric(m, metric)), None)
        value = None if found is None else float(metrics[found])
        out[metric] = None if value is None or math.isnan(value) else value  # JSON has no NaN: null
    return out


def run_suite(
    model: Any,
    suite: Any,
    root: str | os.PathLike[str] | None,
    *,
    out: str | os.PathLike[str] | None = None,
    name: str | None = None,
    conventions: Mapping[str, Any] | None = None,
    ci: float | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    allow_missing: bool = False,
    quality: Any = None,
    quality_how: str = "min",
    workers: int | None = None,
    on_preflight: Callable[[Any], None] | None = None,
    checked: Any = None,
    **prepare_kwargs: Any,
) -> SuiteRun:
    """Evaluate ``model`` (a spec string or an nn.Module, as :func:`fr_bench.runner.evaluate_model` takes) on every
    member of ``suite`` (a Suite, ``"suite:NAME"``, ``"a,b,c"`` or a list of protocol names) found under ``root``.

    Raises the preflight's :class:`~fr_bench.suites.spec.SuiteError` (every problem at once) before any extraction;
    with ``allow_missing`` members that are not found are skipped and listed instead. Each member's result
    equals a one-protocol :func:`~fr_bench.runner.evaluate_model` run with the same options; with ``out`` each
    writes its result file and the suite record is written to :func:`suite_record_path`. ``workers`` caps the
    evaluation threads (default: the CPU count). ``on_preflight`` is called with the preflight before its problems
    are raised (the CLI prints its report). ``checked``: a preflight of this suite already run (training validation
    runs it once before training): it is not run again and its loaded protocols are reused. ``prepare_kwargs`` are
    :func:`fr_bench.runner.prepare`'s (``device``, ``batch_size``, ``use_cache``, ``model_options``, ...;
    ``embedder`` passes an already loaded model); a suite's members take their protocol options from the suite, so
    ``protocol_options`` is refused.
    """
    from fr_bench.suites.preflight import preflight

    t0 = time.perf_counter()
    started = datetime.now(timezone.utc)
    if prepare_kwargs.pop("protocol_options", None):
        raise ValueError("protocol options (-o KEY=VALUE) apply to one protocol; a suite's members take theirs "
                         "from the suite file ([[members]] options)")
    suite = _as_suite(suite)
    embedder = prepare_kwargs.pop("embedder", None)
    model_options = prepare_kwargs.pop("model_options", None)
    arch = prepare_kwargs.pop("arch", None)
    if embedder is None:
        embedder = load_embedder(model, arch=arch, device=prepare_kwargs.get("device"), model_options=model_options)
    t_model = time.perf_counter()
    if checked is None:
        checked = preflight(suite, root, embedder=embedder, out_dir=out, allow_missing=allow_missing)
    elif checked.suite.protocols != suite.protocols:
        raise ValueError(f"checked= is the preflight of suite {checked.suite.name!r}, not of {suite.name!r}")
    pre = checked
    if on_preflight is not None:
        on_preflight(pre)
    pre.raise_for_problems()
    if not pre.ok:
        from fr_bench.suites.spec import SuiteError

        raise SuiteError(f"suite {suite.name}: no member to evaluate under {root} (skipped: "
                         f"{', '.join(_skipped(pre)) or 'none'})")
    t_pre = time.perf_counter()
    preps, extractions = _extract_all(pre, model, embedder, conventions, prepare_kwargs)
    t_extract = time.perf_counter()
    spec = model if isinstance(model, str) else f"<in-memory {type(model).__name__}>"
    evaluations = _evaluate_all(preps, workers=workers, out=out, conventions=conventions, ci=ci, n_boot=n_boot,
                                seed=seed, name=name, model_spec=spec, quality=quality, quality_how=quality_how)
    t_eval = time.perf_counter()
    timings = {"load_model": t_model - t0, "preflight": t_pre - t_model, "extract": t_extract - t_pre,
               "evaluate": t_eval - t_extract}
    skipped = _skipped(pre)
    model_name = name or embedder.name
    record = suite_record(suite, pre, evaluations, skipped, extractions, timings, started=started, root=root,
                          model={"name": model_name, "spec": spec, "fingerprint": embedder.fingerprint})
    record["timings"]["total"] = time.perf_counter() - t0
    record_path = None
    if out is not None and is_main_process():
        from fr_bench.results import atomic_write_text

        record_path = atomic_write_text(suite_record_path(out, model_name, suite.name),
                                        json.dumps(record, indent=2) + "\n")
    return SuiteRun(suite, evaluations, skipped, record, record_path, pre, extractions)


def suite_record(suite: Any, pre: Any, evaluations: Mapping[str, Evaluation], skipped: Mapping[str, str],
                 extractions: list[dict[str, Any]], timings: Mapping[str, float], *, started: datetime,
                 root: Any, model: Mapping[str, Any]) -> dict[str, Any]:
    """The suite record: run id and time, the suite, the model, each member's result file and headline numbers,
    the skipped members with their reasons, the preflight summary, the extractions and the timings (JSON-ready)."""
    import fr_bench

    members = {}
    for protocol, ev in evaluations.items():
        group = next(i for i, e in enumerate(extractions) if protocol in e["protocols"])
        members[protocol] = {
            "display_name": ev.record.protocol.get("display_name", protocol),
            "result_file": None if ev.path is None else str(ev.path),
            "root": ev.record.protocol.get("root"),
            "headline": headline(ev),
            "conventions": dict(ev.result.conventions),
            "flags": list(ev.result.flags),
            "extraction": group,
        }
    report = pre.report()
    return {
        "kind": SUITE_RECORD_KIND,
        "run_id": uuid.uuid4().hex,
        "time": started.isoformat(timespec="seconds"),
        "fr_bench_version": fr_bench.__version__,
        "suite": {"name": suite.name, "display_name": getattr(suite, "display_name", suite.name),
                  "protocols": list(suite.protocols)},
        "model": dict(model),
        "root": None if root is None else str(root),
        "members": members,
        "skipped": dict(skipped),
        "preflight": {"n_images": int(pre.n_images), "image_sets": [list(g) for g in pre.image_sets],
                      "warnings": list(pre.warnings), "report": report},
        "extractions": [dict(e) for e in extractions],
        "timings": {k: float(v) for k, v in timings.items()},
    }
