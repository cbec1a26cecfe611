"""The all-recipes study: every recipe trained with one backbone, data, schedule and seed, then one table.

:func:`run_study` trains each recipe of :data:`~fr_bench.train.recipe.RECIPE_NAMES` on the same synthetic train split
(:mod:`fr_bench.train.synthetic`, long-tailed so IR-Softmax's claim is testable), has each checkpoint evaluated by
the ``evaluate`` callable it is given (the CLI passes one that runs the ``folder`` protocol on the disjoint-identity
synthetic test split and the ``demo`` protocol; this module never imports protocols), and measures each seed paper's
claim whatever it shows (:mod:`fr_bench.train.claims`):

* UNPG: genuine/impostor score overlap on the synthetic test split, against its base head (cosface, arcface, magface);
* MagFace: Spearman correlation between feature norm and the generator's recorded image quality;
* IR-Softmax: nearest-class-weight accuracy on held-out images of the tail half of the training classes, against
  plain softmax (held-out images: the training identities rendered with another nuisance stream);
* GroupFace: EER of the group-aware similarity against plain cosine on the same test pairs, both through the
  ``evaluate`` callable as ``frbench evaluate`` scores the checkpoint: its default (the model's own score,
  ``group-aware``) and ``-c score=cosine`` (the final embeddings only). Its leaderboard row is the default.

A model that brings its own score has feature rows wider than its embedding (GroupFace: ``[final | intermediate]``);
the other claims read its embedding columns (:class:`fr_bench.similarity.FeatureLayout`, from the stored record).

It writes ``OUT/leaderboard.md``, ``OUT/study.json``, ``OUT/plots/score_distributions.png`` and each run's folder.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fr_bench.train import claims
from fr_bench.train.recipe import RECIPE_NAMES, load_recipe
from fr_bench.train.trainer import CHECKPOINT, STATE, train


@dataclass
class StudyConfig:
    """The study's shared settings; every recipe gets the same backbone, data, schedule and seed."""

    backbone: str = "tinyface"
    input_size: int = 64
    embedding_size: int = 128
    steps: int = 150
    batch_size: int = 64
    lr: float = 0.1
    warmup_fraction: float = 0.05
    seed: int = 0
    device: str | None = None
    num_workers: int = 0
    recipes: Sequence[str] = RECIPE_NAMES
    train_data: dict[str, Any] = field(default_factory=lambda: {
        "num_classes": 200, "images_per_class": 48, "image_size": 64, "imbalance": 0.6, "min_images": 4})
    test_data: dict[str, Any] = field(default_factory=lambda: {
        "num_classes": 60, "images_per_class": 6, "image_size": 64})
    heldout_per_class: int = 3
    extra_overrides: dict[str, Any] = field(default_factory=dict)  # any other recipe key, for every recipe

    def overrides(self) -> dict[str, Any]:
        """The recipe overrides every recipe of the study receives."""
        over = {"model.backbone": self.backbone, "model.input_size": self.input_size,
                "model.embedding_size": self.embedding_size, "optim.batch_size": self.batch_size,
                "optim.lr": self.lr, "optim.warmup_fraction": self.warmup_fraction, "run.seed": self.seed,
                "run.max_steps": self.steps, "run.log_every": max(1, self.steps // 10),
                "run.save_every": self.steps, "data.num_workers": self.num_workers}
        if self.backbone == "tinyface":
            over.update({"head.model_kwargs.shared_dim": self.embedding_size, "head.model_kwargs.intermediate_dim": 64})
        return {**over, **self.extra_overrides}


@dataclass
class ScoredRun:
    """One checkpoint on one protocol, as the ``evaluate`` callable returns it."""

    metrics: dict[str, float]
    features: np.ndarray          # (N, D) raw features as the protocol embedded them
    norms: np.ndarray             # (N,) their L2 norms
    keys: list[str]               # (N,) image keys (paths relative to the protocol root)
    pairs: np.ndarray             # (P, 2) indices into the images
    labels: np.ndarray            # (P,) True = genuine
    record: Any = None            # the stored result (fr_bench.results.StoredResult), for plots


#: ``evaluate(checkpoint, which, name[, conventions])``: "synthetic" or "demo"; conventions e.g. {"score": "cosine"}
Evaluate = Callable[..., ScoredRun]


def _heldout(train_options: Mapping[str, Any], seed: int, per_class: int) -> Any:
    """Held-out images of the training identities: same identities, nuisances from another random stream."""
    from fr_bench.train.synthetic import SyntheticFaces

    opts = {**dict(train_options), "images_per_class": per_class, "imbalance": 0.0, "min_images": per_class,
            "label_noise": 0.0}
    return SyntheticFaces(split="train", seed=seed, nuisance_stream=1, **opts)


@torch.no_grad()
def _embed(network: torch.nn.Module, images: np.ndarray, size: int, device: torch.device) -> torch.Tensor:
    from fr_bench.train.data import make_transform
    from fr_bench.train.export import training_preprocessing

    transform = make_transform(training_preprocessing(size, "study"), train=False, flip=False)
    network.eval().to(device)
    outs = []
    for start in range(0, len(images), 256):
        x = transform(torch.from_numpy(np.ascontiguousarray(images[start:start + 256]))).to(device)
        outs.append(network(x))
    return torch.cat(outs).float().cpu()


def _restore(run_dir: Path, recipe: Any, num_classes: int) -> tuple[torch.nn.Module, torch.nn.Module]:
    from fr_bench.train.export import build_network
    from fr_bench.train.trainer import _build_head

    state = torch.load(run_dir / STATE, map_location="cpu", weights_only=False)
    network, _, _ = build_network(recipe.config)
    network.load_state_dict(state["network"])
    head = _build_head(recipe.config, num_classes)
    head.load_state_dict(state["head"])
    return network.eval(), head.eval()


def _embedding_view(run: ScoredRun) -> ScoredRun:
    """``run`` with the features and norms of the embedding columns only, for a model that brings its own score
    (the rows of every other model are its embeddings)."""
    from dataclasses import replace

    from fr_bench.similarity import FeatureLayout

    declared = (run.record.model if run.record is not None else {}).get("score")
    if not declared:
        return run
    feats = FeatureLayout.from_declaration(declared, run.record.extraction["flip"]).split(run.features)[0]
    return replace(run, features=feats, norms=np.linalg.norm(feats, axis=1))


def _group_aware(run: ScoredRun, checkpoint: Path, name: str, evaluate: Evaluate) -> dict[str, float]:
    """GroupFace's claim through the evaluation path: its default score (group-aware) against ``score=cosine``."""
    used = run.record.result.conventions.get("score")
    if used != "group-aware":
        raise ValueError(f"{checkpoint}: evaluated with score {used!r}, expected the model's own 'group-aware'")
    cos = evaluate(checkpoint, "synthetic", name, {"score": "cosine"}).metrics
    return {"ga_eer": run.metrics["eer"], "ga_accuracy": run.metrics.get("accuracy"), "cos_eer": cos["eer"],
            "cos_accuracy": cos.get("accuracy")}


def _quality(test_root: Path, keys: Sequence[str]) -> np.ndarray:
    import csv

    with open(test_root / "quality.csv", newline="") as f:
        table = {row["image"]: float(row["score"]) for row in csv.DictReader(f)}
    missing = [k for k in keys if k not in table]
    if missing:
        raise ValueError(f"{test_root / 'quality.csv'}: no quality score for {missing[0]} ({len(missing)} missing)")
    return np.asarray([table[k] for k in keys])


def _train_one(name: str, cfg: StudyConfig, dataset: Any, run_dir: Path, progress: bool) -> tuple[Any, float]:
    recipe = load_recipe(name, cfg.overrides())
    t0 = time.perf_counter()
    if (run_dir / CHECKPOINT).is_file():  # a finished run of this study: reuse it (delete the folder to retrain)
        state = torch.load(run_dir / STATE, map_location="cpu", weights_only=False)
        if state["recipe_digest"] == recipe.digest() and state["step"] == cfg.steps:
            return recipe, float("nan")
        raise FileExistsError(f"{run_dir}: holds another run; remove it or choose another --out")
    train(recipe, dataset, run_dir, device=cfg.device, progress=progress)
    return recipe, time.perf_counter() - t0


def _measure(name: str, recipe: Any, run_dir: Path, train_s: float, cfg: StudyConfig, dataset: Any,
             heldout: tuple[np.ndarray, np.ndarray], test_root: Path, evaluate: Evaluate) -> tuple[dict, ScoredRun]:
    synth = _embedding_view(evaluate(run_dir / CHECKPOINT, "synthetic", name))
    demo = evaluate(run_dir / CHECKPOINT, "demo", name)
    log = list(csv_rows(run_dir / "log.csv"))
    network, head = _restore(run_dir, recipe, dataset.num_classes)
    device = torch.device(cfg.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    feats = _embed(network, heldout[0], cfg.input_size, device)
    tail = claims.class_accuracy(feats.numpy(), heldout[1], head.weight.detach().float().cpu().numpy(),
                                 dataset.class_counts())
    scores = claims.pair_cosines(synth.features, synth.pairs)
    row = {"recipe": name, "head": recipe.config["head"]["name"], "train_s": train_s,
           "final_loss": float(log[-1]["loss"]) if log else float("nan"),
           "synthetic_accuracy": synth.metrics.get("accuracy"), "synthetic_eer": synth.metrics.get("eer"),
           "synthetic_tar@far=1e-2": synth.metrics.get("tar@far=1e-2"),
           "demo_accuracy": demo.metrics.get("accuracy"), "demo_eer": demo.metrics.get("eer"),
           "overlap": claims.score_overlap(scores, synth.labels),
           "norm_quality_rho": claims.norm_quality_correlation(synth.norms, _quality(test_root, synth.keys)),
           "tail_accuracy": tail["tail_accuracy"], "head_accuracy": tail["head_accuracy"],
           "tail_counts": [tail["tail_correct"], tail["tail_n"]]}
    if synth.record is not None and synth.record.model.get("score"):
        row.update(_group_aware(synth, run_dir / CHECKPOINT, name, evaluate))
    return row, synth


def csv_rows(path: Path) -> list[dict[str, str]]:
    """The rows of a CSV file (for log.csv)."""
    from fr_bench.train.runtime import read_log

    return read_log(path)


def claim_columns(rows: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, str]]:
    """Per recipe, the text of each claim column (empty where the claim does not concern the recipe)."""
    by = {r["recipe"]: r for r in rows}
    out: dict[str, dict[str, str]] = {r["recipe"]: {} for r in rows}
    for base in ("cosface", "arcface", "magface"):
        u, b = by.get(f"unpg_{base}"), by.get(base)
        if u and b:
            out[u["recipe"]]["UNPG: overlap vs base"] = (f"{u['overlap']:.3f} vs {b['overlap']:.3f} "
                                                         f"({u['overlap'] - b['overlap']:+.3f})")
    ref = by.get("arcface")
    for name in ("magface", "unpg_magface"):
        if name in by:
            extra = f" (arcface {ref['norm_quality_rho']:+.2f})" if ref else ""
            out[name]["MagFace: rho(norm, quality)"] = f"{by[name]['norm_quality_rho']:+.2f}{extra}"
    soft = by.get("softmax")
    for name in ("ir_sphereface", "ir_cosface"):
        if name in by and soft:
            r = by[name]
            out[name]["IR: tail acc vs softmax"] = (f"{100 * r['tail_accuracy']:.1f}% vs "
                                                     f"{100 * soft['tail_accuracy']:.1f}%")
    if "groupface" in by and "ga_eer" in by["groupface"]:
        r = by["groupface"]
        out["groupface"]["GroupFace: EER group-aware vs cosine"] = (f"{100 * r['ga_eer']:.2f}% vs "
                                                                    f"{100 * r['cos_eer']:.2f}%")
    return out


_CLAIMS = ("UNPG: overlap vs base", "MagFace: rho(norm, quality)", "IR: tail acc vs softmax",
           "GroupFace: EER group-aware vs cosine")


def _pct(v: Any) -> str:
    return "n/a" if v is None or v != v else f"{100 * float(v):.2f}"


def leaderboard_markdown(rows: Sequence[Mapping[str, Any]], cfg: StudyConfig) -> str:
    """The study's table (rates in percent) with one column per claim, and a line saying how it was made."""
    texts = claim_columns(rows)
    head = ["recipe", "final loss", "synthetic acc %", "synthetic EER %", "demo acc %", "overlap",
            "rho(norm, quality)", "tail acc %", *_CLAIMS]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["recipe"], f"{r['final_loss']:.3f}", _pct(r["synthetic_accuracy"]), _pct(r["synthetic_eer"]),
                 _pct(r["demo_accuracy"]), f"{r['overlap']:.3f}", f"{r['norm_quality_rho']:+.2f}",
                 _pct(r["tail_accuracy"]), *(texts[r["recipe"]].get(c, "") for c in _CLAIMS)]
        lines.append("| " + " | ".join(cells) + " |")
    made = (f"`frbench study --backbone {cfg.backbone} --steps {cfg.steps}`: {cfg.input_size}x{cfg.input_size} "
            f"input, {cfg.embedding_size}-d, batch {cfg.batch_size}, lr {cfg.lr}, seed {cfg.seed}; train "
            f"{cfg.train_data}; test {cfg.test_data}")
    return "\n".join(lines) + "\n\n" + made + "\n"


def _plot(runs: Mapping[str, ScoredRun], path: Path) -> Path | None:
    from fr_bench.report.plots import draw_distribution, new_figure, save_figure

    records = {n: r.record for n, r in runs.items() if r.record is not None}
    if not records:
        return None
    cols = 4
    nrows = -(-len(records) // cols)
    fig = new_figure(4.0 * cols, 3.0 * nrows)
    for k, (name, rec) in enumerate(records.items()):
        ax = fig.add_subplot(nrows, cols, k + 1)
        draw_distribution(ax, rec, name)
        if ax.get_legend() is not None:
            ax.get_legend().remove()
    return save_figure(fig, path)[0]


def run_study(cfg: StudyConfig, out: str | Path, evaluate: Evaluate, *, test_root: str | Path,
              progress: bool = True, echo: Callable[[str], None] = print) -> list[dict[str, Any]]:
    """Train and measure every recipe of ``cfg`` into ``out``; returns the table rows (see the module doc).

    ``test_root`` is the synthetic test split written by :func:`fr_bench.train.synthetic.write_test_protocol`
    (images + ``quality.csv``); ``evaluate(checkpoint, "synthetic" | "demo", name)`` scores a checkpoint.
    """
    from fr_bench.train.data import open_dataset
    from fr_bench.provenance import atomic_write_bytes

    out, test_root = Path(out), Path(test_root)
    dataset = open_dataset("synthetic", seed=cfg.seed, **cfg.train_data)
    dataset.materialize()  # rendered once, shared by every recipe
    held = _heldout(cfg.train_data, cfg.seed, cfg.heldout_per_class)
    heldout = (held.materialize(), held.true_labels)
    rows, runs = [], {}
    for name in cfg.recipes:
        run_dir = out / "runs" / name
        recipe, train_s = _train_one(name, cfg, dataset, run_dir, progress)
        row, runs[name] = _measure(name, recipe, run_dir, train_s, cfg, dataset, heldout, test_root, evaluate)
        rows.append(row)
        echo(f"{name}: synthetic acc {_pct(row['synthetic_accuracy'])}%, demo acc {_pct(row['demo_accuracy'])}%, "
             f"overlap {row['overlap']:.3f}, tail acc {_pct(row['tail_accuracy'])}% ({row['train_s']:.0f} s)")
    table = leaderboard_markdown(rows, cfg)
    atomic_write_bytes(out / "leaderboard.md", table.encode())
    atomic_write_bytes(out / "study.json", json.dumps({"config": asdict(cfg), "rows": rows}, indent=2,
                                                      default=str).encode())
    _plot(runs, out / "plots" / "score_distributions.png")
    return rows
