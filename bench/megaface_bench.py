"""MegaFace challenge 1 speed: the megaface protocol's evaluate (rank-1 + TAR@FAR=1e-6) vs a brute-force baseline.

Synthetic tiny root (devkit JSON lists; no images: embeddings are given) with ``--probes`` FaceScrub-like probes over
``--ids`` identities and ``--distractors`` distractor embeddings (512-d), evaluated through
``load_protocol("megaface", ...).evaluate``, next to a straightforward baseline on the same data: the full probe x
distractor score matrix in one numpy product, max per probe, every (query, mate) pair compared in a Python loop over
identities, and the impostor scores fully sorted for the FAR threshold. Both must agree; the ratio is printed, and
the time is extrapolated linearly in probes x distractors to the full challenge (3,530 x 1,000,000).

    python bench/megaface_bench.py                              # 3,530 probes x 10,000 distractors
    python bench/megaface_bench.py --distractors 100000
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing

FULL = (3530, 1_000_000)


def write_root(root: Path, probe_ids: list[str], n_dis: int, size: int) -> None:
    tl = root / "templatelists"
    tl.mkdir(parents=True, exist_ok=True)
    paths = [f"{p}/{p}_{k}.png" for k, p in enumerate(probe_ids)]
    (tl / "facescrub_features_list.json").write_text(json.dumps({"path": paths, "id": probe_ids}))
    (tl / f"megaface_features_list.json_{size}_1").write_text(
        json.dumps({"path": [f"{k % 100}/{k}@N00/{k}_0.jpg" for k in range(n_dis)]}))


def baseline(probe: np.ndarray, ids: np.ndarray, dis: np.ndarray, far: float) -> tuple[float, float]:
    p = probe / np.linalg.norm(probe, axis=1, keepdims=True)
    d = dis / np.linalg.norm(dis, axis=1, keepdims=True)
    s = p @ d.T
    best = s.max(axis=1)
    n_ok = n_q = 0
    genuine = []
    for ident in np.unique(ids):
        idx = np.flatnonzero(ids == ident)
        for a in idx:
            for b in idx:
                if a != b:
                    n_q += 1
                    n_ok += p[a] @ p[b] > best[a]
                    if a < b:
                        genuine.append(p[a] @ p[b])
    imp = np.sort(s.ravel())[::-1]
    k = int(np.floor(far * imp.size))
    tar = float(np.mean(np.array(genuine) > imp[k])) if k >= 1 else float("nan")
    return n_ok / n_q, tar


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--probes", type=int, default=3530)
    ap.add_argument("--ids", type=int, default=80)
    ap.add_argument("--distractors", type=int, default=10_000)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--far", type=float, default=1e-6)
    ap.add_argument("--no-baseline", action="store_true")
    args = ap.parse_args()
    import fr_bench.metrics  # noqa: F401  (import time is not measured)
    from fr_bench.protocols import load_spec
    from fr_bench.protocols.megaface import load_megaface

    rng = np.random.default_rng(0)
    codes = rng.integers(0, args.ids, args.probes)
    probe_ids = [f"Person_{c:03d}" for c in codes]
    centres = rng.standard_normal((args.ids, args.dim), dtype=np.float32)
    probe = centres[codes] + 1.8 * rng.standard_normal((args.probes, args.dim), dtype=np.float32)
    dis = rng.standard_normal((args.distractors, args.dim), dtype=np.float32)
    emb = np.concatenate([probe, dis])
    size = next(s for s in (10, 100, 1000, 10000, 100000, 1000000) if s >= args.distractors)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_root(root, probe_ids, args.distractors, size)
        spec = load_spec("megaface")
        spec["metrics"]["fars"] = [args.far]
        p = load_megaface(root, spec, distractors=size, cleaned=False, check_counts=False)
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            r = p.evaluate(emb)
        t_ours = time.perf_counter() - t0
    name = next(k for k in r.metrics if k.startswith("tar@far="))
    scale = (FULL[0] * FULL[1]) / (args.probes * args.distractors)
    print(f"{args.probes:,} probes ({args.ids} ids) x {args.distractors:,} distractors, dim {args.dim}")
    print(f"ours      {t_ours:8.2f} s   rank1 {r.metrics['rank1']:.6f}  {name} {r.metrics[name]:.6f}"
          f"   (extrapolated to 3,530 x 1M: {t_ours * scale:,.0f} s)")
    if args.no_baseline:
        return
    t0 = time.perf_counter()
    rank1, tar = baseline(probe, codes, dis, args.far)
    t_base = time.perf_counter() - t0
    print(f"baseline  {t_base:8.2f} s   rank1 {rank1:.6f}  {name} {tar:.6f}"
          f"   (extrapolated: {t_base * scale:,.0f} s)")
    print(f"ratio baseline / ours: {t_base / t_ours:.1f}x;  agree: "
          f"{abs(rank1 - r.metrics['rank1']) < 1e-12 and (np.isnan(tar) and np.isnan(r.metrics[name]) or abs(tar - r.metrics[name]) < 1e-12)}")


if __name__ == "__main__":
    main()
