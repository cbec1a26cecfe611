"""A suite run against five separate ``frbench evaluate`` calls, on the five 10-fold pair sets, in one run.

    python bench/suite_bench.py                 # real sizes: 62,000 images per side (long on CPU)
    python bench/suite_bench.py --scale 0.05    # 3,100 images per side: a few minutes on 2 shared cores

Data: five insightface ``.bin`` packs of synthetic JPEG crops at the real sizes times ``--scale`` (LFW 12,000
images, CFP-FP 14,000, AgeDB-30 12,000, CALFW 12,000, CPLFW 12,000; 10 folds each), a suite TOML naming them with
their pair counts, and a small convolutional model (TorchScript, CPU). The cache is off on both sides.

* suite: ``frbench evaluate -m MODEL -p suite:bench.toml -r ROOT --no-cache`` (one process); its suite record gives
  each extraction's seconds and the run's total inside the process (model load, preflight, extractions,
  evaluations, writes).
* separate: ``frbench evaluate -m MODEL -p NAME -r ROOT/NAME.bin -o expected_pairs=N --no-cache``, five processes.
* the suite runs again after the separate calls (unless ``--once``): the load of a shared machine drifts.

Printed: each extraction's time (suite and separate), the ratio suite total / sum of its extractions (the issue's
goal: <= 1.05, the suite machinery costs at most 5% over the extractions), and the ratio of the suite's wall time to
the five separate calls' (process start-up, imports and model loads included), with the load average before and
after.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import pickle
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

REPO = Path(__file__).resolve().parent.parent
#: (protocol, images at real size): the five 10-fold pair sets of the quick suite.
PACKS = [("lfw", 12000), ("cfp_fp", 14000), ("agedb_30", 12000), ("calfw", 12000), ("cplfw", 12000)]


class SmallNet(nn.Module):
    """Three strided 3x3 convolutions, global pooling and a 128-d linear head (about 25k parameters)."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, 16, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 128),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def n_pairs(images: int, scale: float) -> int:
    """Pairs of a pack at ``scale``: a multiple of 20 (10 folds of genuine + impostor halves), at least 20."""
    return max(20, int(round(images / 2 * scale / 20)) * 20)


def write_pack(path: Path, pairs: int, seed: int, distinct: int = 256) -> None:
    """An insightface pack ``(bins, issame)`` of ``2 * pairs`` JPEG crops (``distinct`` images, cycled) in 10
    contiguous folds, each half genuine then half impostor."""
    rng = np.random.default_rng(seed)
    blobs = []
    for _ in range(distinct):
        small = rng.integers(0, 256, (14, 14, 3), dtype=np.uint8)
        buf = io.BytesIO()
        Image.fromarray(small).resize((112, 112), Image.BILINEAR).save(buf, format="JPEG", quality=95)
        blobs.append(buf.getvalue())
    order = rng.integers(0, distinct, size=2 * pairs)
    labels = np.tile(np.repeat([True, False], pairs // 20), 10).tolist()
    with open(path, "wb") as f:
        pickle.dump(([blobs[i] for i in order], labels), f, protocol=pickle.HIGHEST_PROTOCOL)


def build(folder: Path, scale: float) -> tuple[Path, Path, dict[str, int]]:
    """The packs, the suite TOML and the TorchScript model under ``folder``."""
    root = folder / "root"
    root.mkdir()
    pairs = {}
    members = []
    for k, (name, images) in enumerate(PACKS):
        pairs[name] = n_pairs(images, scale)
        write_pack(root / f"{name}.bin", pairs[name], seed=k)
        members.append(f'[[members]]\nprotocol = "{name}"\ncandidates = ["{name}.bin"]\n'
                       f"options = {{expected_pairs = {pairs[name]}}}\n")
    suite = folder / "bench.toml"
    suite.write_text('display_name = "Bench"\ndescription = "five synthetic pair packs"\n\n' + "\n".join(members))
    torch.manual_seed(0)
    model = folder / "smallnet.pt"
    torch.jit.script(SmallNet().eval()).save(str(model))
    return root, suite, pairs


def frbench(args: list[str], out: Path) -> tuple[float, str]:
    """``frbench ARGS`` in a fresh process: (wall seconds, stdout)."""
    cmd = [sys.executable, "-m", "fr_bench", "evaluate", *args, "--no-cache", "-q", "--out", str(out), "--json"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{proc.stderr[-3000:]}")
    return wall, proc.stdout


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=1.0, help="Fraction of the real pack sizes (default 1).")
    parser.add_argument("--workers", type=int, default=None, help="Decoding workers (frbench --workers).")
    parser.add_argument("--batch-size", type=int, default=None, help="frbench --batch-size.")
    parser.add_argument("--once", action="store_true", help="Run the suite once (before the separate calls) only.")
    args = parser.parse_args(argv)
    extra = [*(["--workers", str(args.workers)] if args.workers is not None else []),
             *(["--batch-size", str(args.batch_size)] if args.batch_size is not None else [])]
    with tempfile.TemporaryDirectory(prefix="suite_bench_") as tmp:
        folder = Path(tmp)
        root, suite, pairs = build(folder, args.scale)
        model = str(folder / "smallnet.pt")
        total = sum(2 * p for p in pairs.values())
        load0 = os.getloadavg()
        print(f"scale={args.scale} images={total:,} ({', '.join(f'{k} {2 * v:,}' for k, v in pairs.items())}) "
              f"cores={os.cpu_count()} torch threads={torch.get_num_threads()} load before={load0}")

        suites = [run_suite_call(model, suite, root, extra, folder / "s1")]
        separate: dict[str, tuple[float, float]] = {}
        for name, _ in PACKS:
            wall, stdout = frbench(["-m", model, "-p", name, "-r", str(root / f"{name}.bin"),
                                    "-o", f"expected_pairs={pairs[name]}", *extra], folder / "p")
            rec = json.loads(stdout[stdout.index("{"):])
            separate[name] = (wall, rec["timings"]["extract"])
        if not args.once:  # the suite again after the separate calls: the load drifts on a shared machine
            suites.append(run_suite_call(model, suite, root, extra, folder / "s2"))
        load1 = os.getloadavg()
    report(suites, separate, pairs)
    print(f"load before={load0} after={load1}")


def run_suite_call(model: str, suite: Path, root: Path, extra: list[str], out: Path) -> dict:
    """One suite call: its wall time, each extraction's seconds and the in-process total from its suite record."""
    wall, stdout = frbench(["-m", model, "-p", f"suite:{suite}", "-r", str(root), *extra], out)
    record = json.loads(stdout[stdout.index("{"):])
    return {"wall": wall, "extract": {e["protocols"][0]: e["seconds"] for e in record["extractions"]},
            "timings": record["timings"]}


def report(suites: list[dict], separate: dict[str, tuple[float, float]], pairs: dict[str, int]) -> None:
    """Each extraction's seconds (suite runs and separate calls) and the two ratios."""
    heads = "".join(f" {'suite ' + str(i + 1) + ' extract s':>17s}" for i in range(len(suites)))
    print(f"{'protocol':10s} {'images':>8s}{heads} {'separate extract s':>19s} {'separate call s':>16s}")
    for name, _ in PACKS:
        cells = "".join(f" {s['extract'][name]:17.2f}" for s in suites)
        print(f"{name:10s} {2 * pairs[name]:8,d}{cells} {separate[name][1]:19.2f} {separate[name][0]:16.2f}")
    sum_calls = sum(w for w, _ in separate.values())
    for i, s in enumerate(suites):
        t, sum_ext = s["timings"], sum(s["extract"].values())
        print(f"suite {i + 1}: in-process total {t['total']:.2f} s (load model {t['load_model']:.2f}, preflight "
              f"{t['preflight']:.2f}, extract {t['extract']:.2f}, evaluate {t['evaluate']:.2f}); sum of its "
              f"extractions {sum_ext:.2f} s; ratio suite / sum of its extractions {t['total'] / sum_ext:.3f} "
              f"(goal <= 1.05); call {s['wall']:.2f} s vs five separate calls {sum_calls:.2f} s: ratio "
              f"{s['wall'] / sum_calls:.3f}")


if __name__ == "__main__":
    main()
