"""``frbench cluster``: cluster a protocol's faces (or IJB templates) with one model and store the scores.

Flow: :func:`fr_bench.runner.prepare` (protocol, model, embedding cache) -> ``protocol.cluster_items`` (features,
identities, the protocol's verification pairs) -> the threshold (given; or fixed from those pairs; or swept,
flagged optimistic) -> :func:`fr_bench.clustering.cluster` -> :func:`fr_bench.metrics.clustering_scores` -> a
regular results-store record (:class:`fr_bench.results.StoredResult`) under the protocol name
``<protocol>-clustering`` (IJB-B: ``ijbb_cluster-list<k>-clustering``; ``-dbscan`` and ``-sweep`` appended for those
runs: :func:`record_name`), whose metrics are the scores, so ``frbench leaderboard`` lists them. The record's
``details`` hold the assignment (item key -> cluster id).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import numpy as np

from fr_bench.clustering import DEFAULT_MIN_SAMPLES, METHODS, OPTIMISTIC_FLAG, cluster, sweep, threshold_from_pairs

__all__ = ["ClusterRun", "cluster_model", "record_name", "register_commands"]


@dataclass
class ClusterRun:
    """One ``frbench cluster`` run: the prepared protocol, its items, the clustering and the stored record."""

    prepared: Any  # fr_bench.runner.Prepared
    items: Any  # fr_bench.protocols.base.ClusterItems
    clustering: Any  # fr_bench.clustering.Clustering
    record: Any  # fr_bench.results.StoredResult
    path: Path | None = None


def record_name(protocol: str, proto: Any, *, method: str = "agglomerative", swept: bool = False) -> str:
    """The results-store protocol name of a clustering run: ``<protocol>-clustering``, with the protocol's variant
    (the IJB-B list: ``ijbb_cluster-list3-clustering``) when it has one, then ``-dbscan`` for DBSCAN and ``-sweep``
    for a swept threshold, so an optimistic or other-algorithm run never replaces the default one's file."""
    variant = getattr(proto, "variant", "")
    base = f"{protocol}-{variant}-clustering" if variant else f"{protocol}-clustering"
    return base + ("-dbscan" if method == "dbscan" else "") + ("-sweep" if swept else "")


def _choose_threshold(items: Any, *, threshold: float | None, do_sweep: bool, method: str, criterion: str,
                      min_samples: int) -> tuple[Any, dict[str, Any], list[str]]:
    """``(clustering, threshold details, flags)`` for the threshold rule asked (module docstring)."""
    if threshold is not None and do_sweep:
        raise ValueError("give a threshold or a sweep, not both")
    if do_sweep:
        sw = sweep(items.features, items.labels, method=method, criterion=criterion, min_samples=min_samples)
        info = {"value": sw.best_threshold, "rule": f"swept: the grid threshold with the best {criterion}",
                "optimistic": True, "sweep": sw.curve()}
        return sw.best_clustering, info, [OPTIMISTIC_FLAG]
    if threshold is not None:
        info = {"value": float(threshold), "rule": "given (--threshold)", "optimistic": False}
        return cluster(items.features, method=method, threshold=threshold, min_samples=min_samples), info, []
    if items.pair_scores is None:
        raise ValueError(f"no verification pairs to fix the clustering threshold ({items.pairs_source}): pass "
                         "--threshold T (a cosine similarity), or --sweep for an optimistic oracle figure")
    t, acc = threshold_from_pairs(items.pair_scores, items.pair_labels)
    info = {"value": t, "optimistic": False, "pairs_accuracy": acc, "n_pairs": int(len(items.pair_labels)),
            "rule": f"fixed from the protocol's verification pairs: best pair accuracy (same iff cosine > t, midpoint "
                    f"of the best gap) over {items.pairs_source}"}
    return cluster(items.features, method=method, threshold=t, min_samples=min_samples), info, []


def cluster_model(model: Any, protocol: str, root: str | Path | None = None, *, method: str = "agglomerative",
                  threshold: float | None = None, do_sweep: bool = False, criterion: str = "bcubed_f",
                  min_samples: int = DEFAULT_MIN_SAMPLES, out: str | Path | None = None, name: str | None = None,
                  **prepare_kwargs: Any) -> ClusterRun:
    """Run ``model`` on ``protocol`` and cluster its items; write the record under ``out`` when set (see the
    module docstring). ``prepare_kwargs`` go to :func:`fr_bench.runner.prepare`."""
    from fr_bench import provenance, results
    from fr_bench.metrics import clustering_scores, pair_counts
    from fr_bench.protocols import load_spec
    from fr_bench.runner import prepare

    prep = prepare(model, protocol, root, **prepare_kwargs)
    t0 = time.perf_counter()
    emb = prep.embeddings
    items = prep.protocol.cluster_items(emb.features, emb.norms)
    clustering, info, flags = _choose_threshold(items, threshold=threshold, do_sweep=do_sweep, method=method,
                                                criterion=criterion, min_samples=min_samples)
    scores = clustering_scores(items.labels, clustering.labels)
    spec = load_spec(protocol)
    data, data_flags = provenance.annotate_fingerprint(prep.data, spec.get("known_hashes", []), protocol)
    pname = record_name(protocol, prep.protocol, method=method, swept=do_sweep)
    result = results.ProtocolResult(
        protocol=pname, metrics=scores,
        conventions={"clustering": method, "threshold": "swept (optimistic)" if do_sweep else
                     ("given" if threshold is not None else "fixed from verification pairs"),
                     "similarity": "cosine of L2-normalised features", "flip": prep.flip},
        flags=[*getattr(prep.protocol, "load_flags", []), *flags, *data_flags], provenance=data,
        details=_details(items, clustering, info, pair_counts(items.labels, clustering.labels)))
    record = results.StoredResult(
        model={"name": name or prep.embedder.name, "spec": str(model) if isinstance(model, (str, Path)) else "",
               "format": prep.embedder.format, "fingerprint": prep.embedder.fingerprint,
               "preprocessing": dict(prep.embedder.preprocessing),
               "embedding_size": int(prep.embedder.embedding_size)},
        protocol={"name": pname,
                  "display_name": _display(spec.get("display_name", protocol), prep.protocol, method, do_sweep),
                  "root": None if root is None else str(root),
                  "options": {k: str(v) for k, v in prep.protocol_options.items()}, "data": data},
        result=result,
        extraction={"device": str(emb.device), "batch_size": int(emb.batch_size), "flip": prep.flip,
                    "feature_size": int(emb.features.shape[1]), "images": int(emb.features.shape[0]),
                    "from_cache": bool(emb.from_cache), "n_skipped": int(emb.n_skipped)},
        timings={"extract": prep.seconds, "cluster": time.perf_counter() - t0})
    path = results.write_result(out, record) if out is not None else None
    return ClusterRun(prep, items, clustering, record, path)


def _display(display: str, proto: Any, method: str, swept: bool) -> str:
    """The record's human protocol name: the protocol's, its variant, the method and (swept) the oracle mark."""
    variant = getattr(proto, "variant", "")
    return (f"{display}{' ' + variant if variant else ''} clustering ({method}"
            + (", swept threshold: optimistic)" if swept else ")"))


def _details(items: Any, clustering: Any, info: Mapping[str, Any], counts: Mapping[str, int]) -> dict[str, Any]:
    """What the record keeps beside the scores: the threshold and its rule, the algorithm's parameters, counts
    and the assignment (item key -> cluster id)."""
    return {
        "threshold": dict(info),
        "method": {"name": clustering.method, "sklearn_params": dict(clustering.params),
                   "distance": clustering.distance, "noise_as_singletons": clustering.n_noise},
        "counts": {"items": len(items.keys), "item_kind": items.item_kind,
                   "identities": int(np.unique(items.labels).size), "clusters": clustering.n_clusters,
                   "pairs": dict(counts)},
        "assignment": {k: int(c) for k, c in zip(items.keys, clustering.labels)},
    }


def print_run(run: ClusterRun) -> None:
    """The scores, the threshold and how it was chosen, and the flags."""
    from fr_bench.cli_output import fmt, pct
    from fr_bench.metrics import names

    rec, res = run.record, run.record.result
    click.echo(f"{rec.display_name}  |  model {rec.model['name']}")
    for key, value in res.metrics.items():  # rates in percent, as frbench evaluate prints them
        rate = names.is_rate(key)
        click.echo(f"  {key + (' (%)' if rate else ''):<24} {pct(value) if rate else fmt(value)}")
    th, counts = res.details["threshold"], res.details["counts"]
    click.echo(f"  threshold {th['value']:.6g} (cosine similarity): {th['rule']}")
    click.echo(f"  {counts['items']} {counts['item_kind']}s of {counts['identities']} identities -> "
               f"{counts['clusters']} clusters")
    for flag in res.flags:
        click.echo(f"  ! {flag}")
    if run.path is not None:
        click.echo(f"  written: {run.path}")


_HELP = """Cluster PROTOCOL's faces (IJB-B: templates) with MODEL and score the clusters against the identities.

\b
Items: every image of demo and folder (labelled by its identity folder); the templates of an IJB-B clustering list
(-p ijbb_cluster -o list=1..7, default 1, pooled as IJB-B 1:1 verification). Algorithms (scikit-learn):
agglomerative (average linkage on cosine distance) or dbscan (cosine; noise items become singleton clusters).
\b
The threshold T is a cosine SIMILARITY (scikit-learn gets the distance 1 - T):
  --threshold T   the honest number (your threshold, chosen without these labels);
  (none)          fixed from the protocol's own verification pairs: the T of best pair accuracy (demo/folder:
                  their pair lists, which use the same images; IJB-B: the 1:1 template pairs if present);
  --sweep         every T of a grid, the best F kept: an ORACLE figure, flagged optimistic in the result.
\b
Scores: pairwise and BCubed precision / recall / F and NMI (fr_bench.metrics.clustering_scores). The result goes to
OUT/<model>/<protocol>-clustering[-dbscan][-sweep].json (a results-store record: frbench leaderboard lists it), with
the assignment (item key -> cluster id), the threshold and how it was chosen.
\b
Examples:
  frbench cluster -m sface -p demo
  frbench cluster -m sface -p demo --method dbscan --min-samples 3
  frbench cluster -m sface -p demo --sweep --criterion pairwise_f
  frbench cluster -m sface -p folder -r /data/myfaces --threshold 0.4
  frbench cluster -m model.onnx -p ijbb_cluster -r /data/IJB_release/IJBB -o list=3
  frbench leaderboard results/
"""


def _cluster_command() -> click.Command:
    """The ``cluster`` command, built on ``frbench``'s shared model options (imported here, not at module load)."""
    from fr_bench.cli import DEFAULT_RESULTS, _model_options, _prepare_kwargs

    @click.command("cluster", help=_HELP, short_help="Cluster a protocol's faces and score the clusters.",
                   context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
    @_model_options
    @click.option("--method", type=click.Choice(METHODS), default=METHODS[0], show_default=True,
                  help="agglomerative (average linkage, cosine) or dbscan (cosine; noise -> singletons).")
    @click.option("--threshold", "-t", type=float, default=None,
                  help="Cosine-similarity threshold in [-1, 1). Default: fixed from the protocol's verification pairs.")
    @click.option("--sweep", "do_sweep", is_flag=True,
                  help="Sweep thresholds 0.00..0.98 and keep the best F (flagged optimistic).")
    @click.option("--criterion", type=click.Choice(["bcubed_f", "pairwise_f"]), default="bcubed_f",
                  show_default=True, help="The F-score --sweep maximises.")
    @click.option("--min-samples", type=int, default=DEFAULT_MIN_SAMPLES, show_default=True,
                  help="dbscan: items (itself included) a core point needs within the threshold.")
    @click.option("--out", type=click.Path(), default=DEFAULT_RESULTS, show_default=True,
                  help="Results folder; the result goes to OUT/<model-name>/<protocol>-clustering.json.")
    @click.option("--name", default=None, help="Model name in results and leaderboards (default: from the file).")
    @click.option("--json", "as_json", is_flag=True, help="Print the result record as JSON on stdout.")
    def command(model, protocol, root, method, threshold, do_sweep, criterion, min_samples, out, name, as_json,
                **kw) -> None:
        import json

        from fr_bench.cli_output import check_out_dir

        if threshold is not None and do_sweep:
            raise click.UsageError("give --threshold T or --sweep, not both")
        run = cluster_model(model, protocol, root, method=method, threshold=threshold, do_sweep=do_sweep,
                            criterion=criterion, min_samples=min_samples, out=check_out_dir(out), name=name,
                            **_prepare_kwargs(kw))
        if as_json:
            click.echo(json.dumps(run.record.to_dict(), indent=2))
        else:
            print_run(run)

    return command


def register_commands(group: click.Group) -> None:
    """Add ``cluster`` to the ``frbench`` group (called at the end of :mod:`fr_bench.cli`)."""
    group.add_command(_cluster_command())
