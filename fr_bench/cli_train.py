"""``frbench train`` and ``frbench study``: training recipes and the all-recipes study, wired to evaluation.

Training (:mod:`fr_bench.train`) never imports protocols or the runner; this module connects them: the validation
callbacks of ``train`` (one protocol: :func:`fr_bench.runner.evaluate_model`; a suite or a list of protocols:
:func:`fr_bench.suites.run.run_suite`, the paths ``frbench evaluate`` takes) and the evaluation of every study
checkpoint.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click

_CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 110}
#: Headline metrics a validation row records as ``val_<protocol>_<metric>`` (those the protocol reports).
VAL_METRICS = ("accuracy", "tar@far=1e-4", "tar@far=1e-3", "eer", "auc", "rank1")


def evaluate(model: Any, protocol: str, root: str | Path | None = None, *, out: str | Path | None = None,
             name: str | None = None, device: str | None = None, options: Mapping[str, Any] | None = None,
             model_options: Mapping[str, Any] | None = None, conventions: Mapping[str, str] | None = None) -> Any:
    """``frbench evaluate``'s path for a checkpoint (or an in-memory module): the runner's Evaluation record."""
    from fr_bench.runner import evaluate_model

    return evaluate_model(model, protocol, root, out=out, name=name, device=device, use_cache=False, progress=False,
                          protocol_options=dict(options or {}), model_options=dict(model_options or {}),
                          conventions=conventions)


def exported(model: Any, input_size: int) -> tuple[Any, dict[str, Any]]:
    """The network as its checkpoint would be evaluated: a copy of the module and its input contract as model
    options. A copy, because the embedder puts its module in eval mode and, on CUDA, in channels-last memory
    format: the network being trained stays as it was (training with validation = training without it)."""
    import copy

    from fr_bench.train.export import for_evaluation

    module, prep = for_evaluation(model, input_size)
    return copy.deepcopy(module), {"input_size": list(prep.input_size), "mean": list(prep.mean), "std": list(prep.std),
                    "channel_order": prep.channel_order}


def headline(protocol: str, metrics: Mapping[str, Any]) -> dict[str, float]:
    """``val_<protocol>_<metric>`` for each of :data:`VAL_METRICS` that ``metrics`` holds as a number."""
    return {f"val_{protocol}_{k}": float(metrics[k]) for k in VAL_METRICS
            if isinstance(metrics.get(k), numbers.Real) and not isinstance(metrics.get(k), bool)}


class ProtocolValidation:
    """Training callback: the network evaluated on a protocol (as its checkpoint would be) -> ``val_*`` metrics."""

    def __init__(self, protocol: str, root: str | None, input_size: int, device: str | None = None) -> None:
        self.protocol, self.root, self.input_size, self.device = protocol, root, input_size, device

    def possible_metrics(self) -> list[str]:
        """Every name :meth:`on_validate` can return (each only when the protocol reports it)."""
        return [f"val_{self.protocol}_{k}" for k in VAL_METRICS]

    def on_validate(self, step: int, model: Any) -> dict[str, float]:
        module, contract = exported(model, self.input_size)
        ev = evaluate(module, self.protocol, self.root, name=f"step{step}", device=self.device, model_options=contract)
        return headline(self.protocol, ev.result.metrics)


class SuiteValidation:
    """Training callback: the network evaluated on a suite (``run_suite``, as ``frbench evaluate -p suite:NAME``).

    Returns :func:`headline` of every member plus ``val_<suite>_mean_accuracy``, the plain mean of ``accuracy``
    over the members that report one (none: no mean). Members skipped (``allow_missing``) are said once.
    """

    def __init__(self, suite: Any, root: str | None, input_size: int, device: str | None = None, *,
                 allow_missing: bool = False, echo: Any = None) -> None:
        self.suite, self.root, self.input_size, self.device = suite, root, input_size, device
        self.allow_missing, self.echo, self._told = allow_missing, echo, False
        self._checked: Any = None  # the preflight of check(): reused by every validation (packs loaded once)

    @property
    def name(self) -> str:
        """The suite's name in metric names (``suite`` when it has none, e.g. a list of protocols)."""
        name = str(getattr(self.suite, "name", "") or "")
        return name if name.replace("_", "").isalnum() else "suite"

    def possible_metrics(self) -> list[str]:
        """Every name :meth:`on_validate` can return (each only when the member reports it)."""
        return [*(f"val_{p}_{k}" for p in self.suite.protocols for k in VAL_METRICS), f"val_{self.name}_mean_accuracy"]

    def check(self) -> None:
        """The suite's preflight before any training (members found and complete, the training contract against
        each member's): every problem at once, as a :class:`~fr_bench.suites.SuiteError`."""
        from fr_bench.suites.preflight import preflight
        from fr_bench.train.export import training_preprocessing

        prep = training_preprocessing(self.input_size, "in training")
        checked = preflight(self.suite, self.root, embedder=prep, allow_missing=self.allow_missing)
        checked.raise_for_problems()
        self._checked = checked

    def on_validate(self, step: int, model: Any) -> dict[str, float]:
        from fr_bench.suites.run import run_suite

        module, contract = exported(model, self.input_size)
        run = run_suite(module, self.suite, self.root, name=f"step{step}", allow_missing=self.allow_missing,
                        device=self.device, model_options=contract, use_cache=False, progress=False,
                        checked=self._checked)
        out: dict[str, float] = {}
        accuracies = []
        for protocol, ev in run.evaluations.items():
            metrics = headline(protocol, ev.result.metrics)
            out.update(metrics)
            if f"val_{protocol}_accuracy" in metrics:
                accuracies.append(metrics[f"val_{protocol}_accuracy"])
        if accuracies:
            out[f"val_{self.name}_mean_accuracy"] = float(sum(accuracies) / len(accuracies))
        skipped = getattr(run, "skipped", None) or {}
        if skipped and not self._told:
            self._told = True
            said = [f"{k} ({v})" for k, v in skipped.items()] if isinstance(skipped, Mapping) else map(str, skipped)
            if self.echo is not None and _main_rank():
                self.echo(f"validation on {self.name}: skipped {', '.join(said)}")
        return out


def _main_rank() -> bool:
    import torch.distributed as dist

    return not dist.is_initialized() or dist.get_rank() == 0


def validation_callback(spec: str, root: str | None, input_size: int, device: str | None = None, *,
                        allow_missing: bool = False, echo: Any = None) -> Any:
    """The callback of ``--val SPEC``: ``suite:NAME`` or ``a,b,c`` -> :class:`SuiteValidation` (its preflight
    run now, before any training step), one protocol -> :class:`ProtocolValidation` (``frbench evaluate``'s
    one-protocol path)."""
    spec = spec.strip()
    if spec.startswith("suite:") or "," in spec:
        from fr_bench.suites import parse_protocols_arg

        suite = parse_protocols_arg(spec)
        if suite is not None:
            callback = SuiteValidation(suite, root, input_size, device, allow_missing=allow_missing, echo=echo)
            callback.check()
            return callback
    if not spec:
        raise ValueError("--val: empty; give suite:NAME, a comma list of protocols or one protocol")
    return ProtocolValidation(spec, root, input_size, device)


@click.command("train", context_settings=_CONTEXT, short_help="Train a reference recipe (validation, best checkpoint).")
@click.argument("recipe")
@click.argument("overrides", nargs=-1, metavar="[KEY=VALUE]...")
@click.option("--data", required=True, help="Training data: an ImageFolder root/<identity>/<image>, a RecordIO "
              "pack folder (train.rec + train.idx [+ property]) or the word 'synthetic'.")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Output folder (checkpoint.pt, "
              "log.csv, training_state.pt).")
@click.option("--max-steps", type=int, default=None, help="Train exactly N steps (the schedule is fitted to N).")
@click.option("--device", default=None, help="cpu, cuda, cuda:1 (default: cuda if available). Under torchrun each "
              "rank takes cuda:<LOCAL_RANK>.")
@click.option("--resume", is_flag=True, help="Continue the run in --out from its training state, to the same step.")
@click.option("--val", "val", default=None, metavar="SPEC",
              help="Validate every run.validate_every steps and at the end, as `frbench evaluate -p SPEC` would: "
                   "suite:NAME, a comma list of protocols or one protocol; val_<protocol>_<metric> columns "
                   "(and val_<suite>_mean_accuracy) go to log.csv.")
@click.option("--val-root", default=None, type=click.Path(), help="Data root of --val (the folder of the suite's "
              "packs, or the protocol's root).")
@click.option("--val-every", type=int, default=None, help="Validate every N steps (sets run.validate_every).")
@click.option("--val-allow-missing", is_flag=True, help="Validate on the suite members found; say which are "
              "skipped.")
@click.option("--keep-best", default=None, metavar="METRIC", help="Keep OUT/best.pt, the checkpoint of the best "
              "validation by METRIC (e.g. val_lfw_accuracy; sets run.keep_best; higher is better but for eer, "
              "run.keep_best_mode=min|max overrides); best.json records its step and value.")
@click.option("--validate", "validate", default=None, metavar="PROTOCOL[:ROOT]",
              help="Older spelling of --val PROTOCOL --val-root ROOT, e.g. demo or lfw:/data/lfw.bin.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def train(recipe, overrides, data, out, max_steps, device, resume, val, val_root, val_every, val_allow_missing,
          keep_best, validate, quiet) -> None:
    """Train a reference RECIPE (a name in reference_models/recipes or a .toml path) into --out.

    \b
    Every recipe inherits reference_models/recipes/base.toml (backbone, 112x112 input, SGD, schedule, seed) and
    sets only its loss head; KEY=VALUE arguments override any recipe key (typed like the value they replace).
    The checkpoint is self-describing: `frbench evaluate -m OUT/checkpoint.pt -p PROTOCOL` needs no other flag.
    \b
    Examples:
      frbench train arcface --data synthetic --out runs/arc --max-steps 200 \\
          model.backbone=tinyface model.input_size=64 optim.batch_size=64
      frbench train cosface --data /data/faces_emore --out runs/cos --device cuda
      torchrun --nproc_per_node 8 -m fr_bench train arcface --data /data/ms1m-retinaface-t1 --out runs/r50
      frbench train arcface --data /data/faces_emore --out runs/r50 --resume
      frbench train arcface --data /data/faces_emore --out runs/r50 --val suite:quick --val-root /data/val \\
          --val-every 2000 --keep-best val_quick_mean_accuracy
      frbench evaluate -m runs/arc/checkpoint.pt -p demo
    """
    from fr_bench.train.recipe import load_recipe
    from fr_bench.train.trainer import train as run_train

    if val and validate:
        raise click.UsageError("give --val or its older spelling --validate, not both")
    if val_every is not None and not (val or validate):
        raise click.UsageError("--val-every needs --val")
    over = dict(_parse_overrides(overrides))
    if max_steps is not None:
        over["run.max_steps"] = int(max_steps)
    if val_every is not None:
        over["run.validate_every"] = int(val_every)
    if keep_best:
        over["run.keep_best"] = keep_best
    rec = load_recipe(recipe, over)
    size = int(rec.config["model"]["input_size"])
    callbacks = []
    if validate:
        protocol, _, root = validate.partition(":")
        callbacks.append(ProtocolValidation(protocol, root or None, size, device))
    elif val:
        callbacks.append(validation_callback(val, val_root, size, device, allow_missing=val_allow_missing,
                                             echo=lambda msg: click.echo(msg, err=True)))
    _check_keep_best(str(rec.config["run"]["keep_best"]), callbacks)
    import torch.distributed as dist

    try:
        result = run_train(rec, data, out, device=device, resume=resume, callbacks=callbacks, progress=not quiet)
        main_rank = not dist.is_initialized() or dist.get_rank() == 0
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    if main_rank:
        click.echo(f"trained {rec.name}: {result.step} steps, last loss {result.last_loss:.4g}; "
                   f"checkpoint {result.checkpoint}; log {Path(out) / 'log.csv'}")
        if result.best and result.best["step"] is not None:
            b = result.best
            click.echo(f"best {b['metric']} = {b['value']:.6g} at step {b['step']}: {Path(out) / b['checkpoint']}")


def _check_keep_best(metric: str, callbacks: list[Any]) -> None:
    """Before training: ``--keep-best`` must be a name the validation can report (it may still be absent from a
    protocol's result: then the first validation says so)."""
    possible = [n for cb in callbacks for n in getattr(cb, "possible_metrics", lambda: [])()]
    if metric and possible and metric not in possible:
        raise click.UsageError(f"--keep-best / run.keep_best {metric!r}: this validation reports none such; it can "
                               f"report: {', '.join(possible)}")


def _parse_overrides(items: tuple[str, ...]) -> dict[str, Any]:
    from fr_bench.train.recipe import parse_overrides

    return parse_overrides(items)


def _scored(ev: Any) -> Any:
    """A runner Evaluation of a pair protocol -> the study's :class:`~fr_bench.train.study.ScoredRun`."""
    from fr_bench.train.study import ScoredRun

    proto, emb = ev.protocol, ev.embeddings
    keys = [str(proto.images.ref(i).key) for i in range(len(proto.images))]
    return ScoredRun(metrics={k: v for k, v in ev.result.metrics.items() if isinstance(v, (int, float))},
                     features=emb.features, norms=emb.norms, keys=keys, pairs=proto.pairs, labels=proto.labels,
                     record=ev.record)


def study_evaluator(test_root: Path, results: Path, device: str | None) -> Any:
    """The study's ``evaluate(checkpoint, which, name)``: ``folder`` on the synthetic test split, or ``demo``."""

    def run(checkpoint: Path, which: str, name: str, conventions: Mapping[str, str] | None = None) -> Any:
        if which == "synthetic":  # -c score=... (conventions) only here: the study's GroupFace claim
            return _scored(evaluate(checkpoint, "folder", test_root, out=None if conventions else results, name=name,
                                    device=device, options={"pairs": str(test_root / "pairs.txt")},
                                    conventions=conventions))
        if which == "demo":
            return _scored(evaluate(checkpoint, "demo", out=results, name=name, device=device))
        raise ValueError(f"unknown study evaluation {which!r}")

    return run


@click.command("study", context_settings=_CONTEXT, short_help="Train every reference recipe alike; one table.")
@click.option("--data", default="synthetic", show_default=True, type=click.Choice(["synthetic"]),
              help="Training data of the study (synthetic identities, long-tailed; no download).")
@click.option("--backbone", default="tinyface", show_default=True,
              help="Backbone of every recipe: tinyface (CPU, 64x64) or e.g. iresnet50 (GPU, 112x112).")
@click.option("--steps", default=None, type=int, help="Training steps per recipe [default: 150; 2000 for GPU "
              "backbones].")
@click.option("--input-size", default=None, type=int, help="Training input size [64 for tinyface, else 112].")
@click.option("--batch-size", default=None, type=int, help="Global batch [64 for tinyface, else 256].")
@click.option("--recipes", default=None, help="Comma-separated subset of the recipes (default: all twelve).")
@click.option("--out", default="runs/study", show_default=True, type=click.Path(file_okay=False),
              help="Study folder: one training run per recipe under it, and the study table.")
@click.option("--device", default=None, help="cpu, cuda (default: cuda if available).")
@click.option("--seed", default=0, show_default=True, type=int,
              help="Seed of every recipe's run (data order, initialisation): the same for all, so they compare.")
@click.option("--readme", type=click.Path(dir_okay=False), default=None,
              help="Also write the table into this README between '<!-- study:begin -->' and '<!-- study:end -->'.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars.")
def study(data, backbone, steps, input_size, batch_size, recipes, out, device, seed, readme, quiet) -> None:
    """Train every reference recipe the same way and compare them in one table.

    \b
    Same backbone, synthetic data, schedule and seed for all twelve recipes; each checkpoint is evaluated on the
    disjoint-identity synthetic test split (`folder` protocol) and on the shipped demo faces. The table has one
    column per paper claim, measured whatever it shows: UNPG's score overlap vs its base head, MagFace's
    norm-quality correlation, IR-Softmax's tail-class accuracy vs softmax, GroupFace's group-aware vs cosine EER.
    Writes OUT/leaderboard.md, OUT/study.json, OUT/plots/score_distributions.png, OUT/results/, OUT/runs/<recipe>/.
    \b
    Examples:
      frbench study                                   # CPU default: tinyface, 64x64, 150 steps per recipe
      frbench study --recipes softmax,ir_cosface --steps 50 --out runs/quick
      frbench study --backbone iresnet50 --device cuda --out runs/study_r50
    """
    from fr_bench.train.study import StudyConfig, run_study
    from fr_bench.train.synthetic import write_test_protocol

    small = backbone == "tinyface"
    cfg = StudyConfig(backbone=backbone, seed=seed, device=device,
                      input_size=input_size or (64 if small else 112),
                      steps=steps or (150 if small else 2000), batch_size=batch_size or (64 if small else 256))
    if not small:
        cfg.embedding_size = 512
        cfg.train_data = {**cfg.train_data, "image_size": cfg.input_size, "num_classes": 1000}
    if recipes:
        cfg.recipes = tuple(r.strip() for r in recipes.split(",") if r.strip())
    out = Path(out)
    test_root = out / "test"
    if not (test_root / "quality.csv").is_file():
        write_test_protocol(test_root, seed=cfg.seed, **cfg.test_data)
    rows = run_study(cfg, out, study_evaluator(test_root, out / "results", device), test_root=test_root,
                     progress=not quiet, echo=click.echo)
    table = (out / "leaderboard.md").read_text()
    click.echo(table)
    if readme:
        _write_between_markers(Path(readme), table)
        click.echo(f"table written into {readme}")
    click.echo(f"{len(rows)} recipes; written: {out / 'leaderboard.md'}, {out / 'plots' / 'score_distributions.png'}")


def _write_between_markers(path: Path, text: str) -> None:
    from fr_bench.provenance import atomic_write_bytes

    begin, end = "<!-- study:begin -->", "<!-- study:end -->"
    content = path.read_text()
    if begin not in content or end not in content:
        raise ValueError(f"{path}: no '{begin}' ... '{end}' markers to put the study table between")
    head, rest = content.split(begin, 1)
    _, tail = rest.split(end, 1)
    atomic_write_bytes(path, f"{head}{begin}\n{text}{end}{tail}".encode())


def register_commands(group: click.Group) -> None:
    """Add ``train`` and ``study`` to the ``frbench`` group (called by :mod:`fr_bench.cli`)."""
    group.add_command(train)
    group.add_command(study)
