"""``frbench train`` and ``frbench study``: training recipes and the all-recipes study, wired to evaluation.

Training (:mod:`fr_bench.train`) never imports protocols or the runner; this module connects them: the validation
callback of ``train`` and the evaluation of every study checkpoint run :func:`fr_bench.runner.evaluate_model`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click

_CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 110}
#: Metrics a validation row records (when the protocol reports them).
_VAL_METRICS = ("accuracy", "eer", "tar@far=1e-3", "auc")


def evaluate(model: Any, protocol: str, root: str | Path | None = None, *, out: str | Path | None = None,
             name: str | None = None, device: str | None = None, options: Mapping[str, Any] | None = None,
             model_options: Mapping[str, Any] | None = None) -> Any:
    """``frbench evaluate``'s path for a checkpoint (or an in-memory module): the runner's Evaluation record."""
    from fr_bench.runner import evaluate_model

    return evaluate_model(model, protocol, root, out=out, name=name, device=device, use_cache=False, progress=False,
                          protocol_options=dict(options or {}), model_options=dict(model_options or {}))


class ProtocolValidation:
    """Training callback: the network evaluated on a protocol (as its checkpoint would be) -> ``val_*`` metrics."""

    def __init__(self, protocol: str, root: str | None, input_size: int, device: str | None = None) -> None:
        self.protocol, self.root, self.input_size, self.device = protocol, root, input_size, device

    def on_validate(self, step: int, model: Any) -> dict[str, float]:
        from fr_bench.train.export import for_evaluation

        module, prep = for_evaluation(model, self.input_size)
        contract = {"input_size": list(prep.input_size), "mean": list(prep.mean), "std": list(prep.std),
                    "channel_order": prep.channel_order}
        ev = evaluate(module, self.protocol, self.root, name=f"step{step}", device=self.device, model_options=contract)
        metrics = ev.result.metrics
        return {f"val_{self.protocol}_{k}": float(metrics[k]) for k in _VAL_METRICS if k in metrics}


@click.command("train", context_settings=_CONTEXT)
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
@click.option("--validate", "validate", default=None, metavar="PROTOCOL[:ROOT]",
              help="Validate on a protocol every run.validate_every steps and at the end, e.g. demo or "
                   "lfw:/data/lfw.bin; the metrics go to log.csv.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def train(recipe, overrides, data, out, max_steps, device, resume, validate, quiet) -> None:
    """Train a reference RECIPE (a name in reference_models/recipes or a .toml path) into --out.

    \b
    Every recipe inherits reference_models/recipes/base.toml (backbone, 112x112 input, SGD, schedule, seed) and
    sets only its loss head; KEY=VALUE arguments override any recipe key (typed like the value they replace).
    The checkpoint is self-describing: `frbench evaluate -m OUT/checkpoint.pt -p PROTOCOL` needs no other flag.
    \b
    Examples:
      frbench train arcface --data synthetic --out runs/arc --max-steps 200 model.backbone=tinyface model.input_size=64 optim.batch_size=64
      frbench train cosface --data /data/faces_emore --out runs/cos --device cuda
      torchrun --nproc_per_node 8 -m fr_bench train arcface --data /data/ms1m-retinaface-t1 --out runs/r50
      frbench train arcface --data /data/faces_emore --out runs/r50 --resume
      frbench evaluate -m runs/arc/checkpoint.pt -p demo
    """
    from fr_bench.train.recipe import load_recipe
    from fr_bench.train.trainer import train as run_train

    over = dict(_parse_overrides(overrides))
    if max_steps is not None:
        over["run.max_steps"] = int(max_steps)
    rec = load_recipe(recipe, over)
    callbacks = []
    if validate:
        protocol, _, root = validate.partition(":")
        callbacks.append(ProtocolValidation(protocol, root or None, int(rec.config["model"]["input_size"]), device))
    result = run_train(rec, data, out, device=device, resume=resume, callbacks=callbacks, progress=not quiet)
    from fr_bench.train.runtime import setup_distributed

    if setup_distributed(device)[0] == 0:
        click.echo(f"trained {rec.name}: {result.step} steps, last loss {result.last_loss:.4g}; "
                   f"checkpoint {result.checkpoint}; log {Path(out) / 'log.csv'}")


def _parse_overrides(items: tuple[str, ...]) -> dict[str, Any]:
    from fr_bench.train.recipe import parse_overrides

    return parse_overrides(items)
