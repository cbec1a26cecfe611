"""Samples/s of one training step (forward, backward, SGD) with each recipe's head, against a bare linear
cross-entropy head on the same backbone, batch and device, measured in the same run.

    python bench/train_bench.py                               # CPU: tinyface, 64x64, batch 32, 1,000 classes
    python bench/train_bench.py --device cuda --backbone iresnet50 --batch 128 --bf16 --classes 10000

Each row: the fastest step of ``--rounds`` rounds of ``--steps`` timed steps (after ``--warmup``), the heads taking
turns round by round so that a change of machine load hits all of them alike (the minimum resists the load of a
shared machine better than the median), samples/s, and the ratio
to the linear baseline's step time; ``head cost`` = (step - baseline step) / step, the share of the step the head
adds (the issue's goal on GPU: under 5% for every margin head, UNPG's pair step included). GroupFace's row includes
its embedding module (instance and group FCs and the group decision network) on top of the backbone. The network
runs under bf16 autocast with ``--bf16`` (CUDA); heads compute in float32, as in the trainer.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

import torch
from torch import nn

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[1]))  # run from a checkout
from fr_bench.train.export import build_network  # noqa: E402
from fr_bench.train.recipe import RECIPE_NAMES, load_recipe  # noqa: E402
from fr_bench.train.trainer import _build_head, _Step  # noqa: E402


class LinearCE(nn.Module):
    """The baseline: ``cross_entropy(x W^T + b, y)``."""

    def __init__(self, dim: int, classes: int) -> None:
        super().__init__()
        self.fc = nn.Linear(dim, classes)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return nn.functional.cross_entropy(self.fc(x), y)


def timer(step: nn.Module, x: torch.Tensor, y: torch.Tensor):
    """A function timing ``n`` SGD steps of ``step(x, y)``; returns the fastest step's seconds."""
    opt = torch.optim.SGD(step.parameters(), lr=1e-3, momentum=0.9, weight_decay=5e-4)
    sync = torch.cuda.synchronize if x.is_cuda else (lambda: None)
    count = [0]

    def run(n: int) -> float:
        best = float("inf")
        for _ in range(n):
            sync()
            t0 = time.perf_counter()
            if hasattr(step.head, "on_step"):
                step.head.on_step(count[0])
            loss = step(x, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sync()
            best = min(best, time.perf_counter() - t0)
            count[0] += 1
        return best

    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backbone", default="tinyface")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--input-size", type=int, default=None, help="64 for tinyface, else 112")
    ap.add_argument("--classes", type=int, default=1000)
    ap.add_argument("--embedding", type=int, default=512)
    ap.add_argument("--bf16", action="store_true")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--steps", type=int, default=3, help="timed steps per head per round")
    ap.add_argument("--rounds", type=int, default=4, help="rounds over all heads (interleaved against drift)")
    ap.add_argument("--recipes", default=",".join(RECIPE_NAMES))
    args = ap.parse_args()
    size = args.input_size or (64 if args.backbone == "tinyface" else 112)
    dev = torch.device(args.device)
    over = {"model.backbone": args.backbone, "model.input_size": size, "model.embedding_size": args.embedding}
    autocast = torch.bfloat16 if args.bf16 and dev.type == "cuda" else None
    torch.manual_seed(0)
    x = torch.randn(args.batch, 3, size, size, device=dev)
    y = torch.randint(0, args.classes, (args.batch,), device=dev)
    net, _, _ = build_network(load_recipe("softmax", over).config)
    runs = {"linear CE (baseline)": timer(_Step(net, LinearCE(args.embedding, args.classes), autocast,
                                                dev.type).to(dev).train(), x, y)}
    for name in args.recipes.split(","):
        cfg = load_recipe(name, over).config
        torch.manual_seed(0)
        net, _, _ = build_network(cfg)
        runs[name] = timer(_Step(net, _build_head(cfg, args.classes), autocast, dev.type).to(dev).train(), x, y)
    best = {name: (run(args.warmup), float("inf"))[1] for name, run in runs.items()}
    for _ in range(args.rounds):
        for name, run in runs.items():
            best[name] = min(best[name], run(args.steps))
    load = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    print(f"backbone {args.backbone} {size}x{size}, batch {args.batch}, {args.classes} classes, "
          f"{args.embedding}-d, device {dev}, bf16 {autocast is not None}, torch {torch.__version__}, "
          f"threads {torch.get_num_threads()}; fastest of {args.rounds} x {args.steps} steps; {load}")
    print("| head | ms/step | samples/s | step / linear-CE step | head cost |")
    print("|---|---|---|---|---|")
    t_base = best["linear CE (baseline)"]
    for name, t in best.items():
        cost = "-" if t is t_base else f"{100 * (t - t_base) / t:+.1f}%"
        print(f"| {name} | {1e3 * t:.1f} | {args.batch / t:.0f} | {t / t_base:.2f} | {cost} |")


if __name__ == "__main__":
    main()
