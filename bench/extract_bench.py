"""Throughput of the full extraction pipeline against the model's bare forward pass, measured in one run.

    python bench/extract_bench.py                       # CPU default: SFace (ONNX) and iresnet18, few images
    python bench/extract_bench.py --device cuda --model iresnet50 --model iresnet100 --n 20000 --batch-size 256

Pipeline: ``fr_bench.extract.extract`` on a synthetic ImageSource of JPEG-encoded 112x112 crops (decoding in
DataLoader workers included, no cache). Baseline: the same model's forward pass alone on pre-made float tensors
already on the device, at the same batch size (doubled when flip is on, as the pipeline does), with the same
autocast. Both count images/s per *input image*; the ratio pipeline/baseline says how much of the model's speed the
pipeline delivers (1.0 = decoding and transfers fully hidden).

Memory (``--memory``): peak resident memory of one extraction per (batch size, onnxruntime CPU arena on/off), each
in a fresh process (``resource.getrusage`` ``ru_maxrss``; decoding in-process, ``--workers`` ignored), with the
machine's load average beside it::

    python bench/extract_bench.py --memory --model sface --n 1100 --mem-batches 128,32
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fr_bench.extract import extract  # noqa: E402
from fr_bench.models import amp_dtype, create_backbone, list_archs, load_model  # noqa: E402
from fr_bench.models.onnx_model import OnnxEmbedder  # noqa: E402
from fr_bench.models.preprocess import to_model_input  # noqa: E402


class _Ref:
    def __init__(self, key: str) -> None:
        self.key = self.source = key


class JpegSource:
    """``n`` crops as in-memory JPEG bytes (``distinct`` different images, cycled), decoded with PIL on load."""

    color_space = "RGB"

    def __init__(self, n: int, distinct: int = 64, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.n, self.blobs = n, []
        for _ in range(min(distinct, n)):
            small = rng.integers(0, 256, (14, 14, 3), dtype=np.uint8)  # smooth content, face-like JPEG size
            img = Image.fromarray(small).resize((112, 112), Image.BILINEAR)
            buf = io.BytesIO()
            img.save(buf, format="JPEG", quality=95)
            self.blobs.append(buf.getvalue())

    def __len__(self) -> int:
        return self.n

    def ref(self, i: int) -> _Ref:
        return _Ref(f"synthetic/{i:07d}.jpg")

    def keys(self) -> list[str]:
        return [self.ref(i).key for i in range(self.n)]

    def load(self, i: int) -> np.ndarray:
        with Image.open(io.BytesIO(self.blobs[i % len(self.blobs)])) as im:
            return np.asarray(im.convert("RGB"))


def build(model: str, device: str):
    if model in list_archs():
        torch.manual_seed(0)
        return load_model(create_backbone(model), name=f"{model} (random init)", device=device)
    return load_model(model, device=device)


def bare_forward(emb, n: int, batch: int, flip: bool, amp) -> float:
    """Images/s of the model alone on pre-made input (preprocessing done beforehand, outside the timing)."""
    rows = batch * (2 if flip else 1)
    crops = torch.from_numpy(np.random.default_rng(1).integers(0, 256, (rows, *emb.prep.input_size, 3), np.uint8))
    if isinstance(emb, OnnxEmbedder):
        x = to_model_input(crops, emb.prep, channels_last=False).numpy()
        if emb.nhwc:
            x = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
        step = emb.max_batch or rows

        def forward():
            for i in range(0, rows, step):
                emb.session.run(None, {emb.input_name: x[i : i + step]})
    else:
        x = to_model_input(crops.to(emb.device), emb.prep, channels_last=emb.channels_last)
        dtype = amp_dtype(amp) if emb.device.type == "cuda" else None

        def forward():
            ctx = torch.autocast("cuda", dtype=dtype) if dtype else contextlib.nullcontext()
            with torch.inference_mode(), ctx:
                emb.module(x)

    def sync():
        if emb.device.type == "cuda":
            torch.cuda.synchronize(emb.device)

    forward()  # warm-up
    sync()
    steps = max(1, -(-n // batch))
    t = time.perf_counter()
    for _ in range(steps):
        forward()
    sync()
    return steps * batch / (time.perf_counter() - t)


def memory_child(config: dict) -> None:
    """One extraction in this (fresh) process; prints its peak RSS and throughput as one JSON line."""
    from fr_bench.models import onnx_model

    onnx_model.CPU_MEM_ARENA = bool(config["arena"])
    emb = build(config["model"], "cpu")
    loaded = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t = time.perf_counter()
    extract(JpegSource(config["n"]), emb, batch_size=config["batch"], flip=config["flip"], num_workers=0,
            progress=False)
    seconds = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"loaded_mb": loaded, "peak_mb": peak, "img_s": config["n"] / seconds}))


def memory_table(models: list[str], n: int, batches: list[int], flip: bool) -> None:
    """Peak RSS per (model, batch, arena), each run in a fresh process, with the load average before each run."""
    print(f"n={n} flip={flip} cores={os.cpu_count()} (peak RSS from ru_maxrss; load = 1-min load average)")
    print("| model | batch | onnxruntime CPU arena | RSS after load (MB) | peak RSS (MB) | img/s | load |")
    print("|---|---|---|---|---|---|---|")
    for spec in models:
        for batch in batches:
            for arena in (True, False):
                load = os.getloadavg()[0]
                config = {"model": spec, "n": n, "batch": batch, "arena": arena, "flip": flip}
                out = subprocess.run([sys.executable, __file__, "--memory-child", json.dumps(config)],
                                     check=True, capture_output=True, text=True).stdout
                r = json.loads(out.strip().splitlines()[-1])
                print(f"| {spec} | {batch} | {'on' if arena else 'off'} | {r['loaded_mb']:.0f} | {r['peak_mb']:.0f} "
                      f"| {r['img_s']:.1f} | {load:.1f} |", flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", action="append", help="built-in name, file, or arch (random init); repeatable")
    parser.add_argument("--n", type=int, default=None, help="images per model (default 16 on CPU, 20000 on CUDA)")
    parser.add_argument("--batch-size", type=int, default=None, help="default 8 on CPU, 256 on CUDA")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--workers", type=int, default=None, help="DataLoader workers (default: extract's)")
    parser.add_argument("--no-flip", action="store_true", help="embed without the mirrored copy")
    parser.add_argument("--amp", default="bf16", help="bf16, fp16 or off (CUDA only)")
    parser.add_argument("--memory", action="store_true", help="peak RSS per batch size and CPU arena setting (CPU)")
    parser.add_argument("--mem-batches", default="128,32", help="batch sizes for --memory (comma-separated)")
    parser.add_argument("--memory-child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_child:
        memory_child(json.loads(args.memory_child))
        return
    if args.memory:
        memory_table(args.model or ["sface"], args.n or 1100, [int(b) for b in args.mem_batches.split(",")],
                     not args.no_flip)
        return
    cuda = args.device.startswith("cuda")
    models = args.model or (["iresnet50", "iresnet100"] if cuda else ["sface", "iresnet18"])
    n = args.n or (20000 if cuda else 16)
    batch = args.batch_size or (256 if cuda else 8)
    amp = False if args.amp == "off" else args.amp
    flip = not args.no_flip
    print(f"device={args.device} torch={torch.__version__} threads={torch.get_num_threads()} n={n} batch={batch} "
          f"flip={flip} amp={amp if cuda else 'off (CPU)'}")
    print(f"{'model':32s} {'pipeline img/s':>15s} {'bare fwd img/s':>15s} {'ratio':>7s}")
    source = JpegSource(n)
    for spec in models:
        emb = build(spec, args.device)
        extract(JpegSource(batch), emb, batch_size=batch, flip=flip, amp=amp, num_workers=0, progress=False)
        out = extract(source, emb, batch_size=batch, flip=flip, amp=amp, num_workers=args.workers, progress=False)
        pipe = out.timings["images_per_s"]
        bare = bare_forward(emb, n, batch, flip, amp)
        print(f"{emb.name[:32]:32s} {pipe:15.1f} {bare:15.1f} {pipe / bare:7.2f}")


if __name__ == "__main__":
    main()
