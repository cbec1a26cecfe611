"""Speed and memory of the verification metrics against scikit-learn, and of distractor_rank1 against a plain
blocked matmul, measured in the same run.

    python bench/metrics_bench.py                      # IJB-C sized: 15.7M scores, 0.12% genuine
    python bench/metrics_bench.py --n 1000000          # smaller
    python bench/metrics_bench.py --probes 353 --distractors 100000
    python bench/metrics_bench.py --sections bootstrap      # nearest vs strict replicates, 1,000 at IJB-C size

Ratios are ours / baseline time (< 1: faster than the baseline). Peak memory is the tracemalloc peak of one extra
call (numpy buffers are traced), in bytes per input score.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
import tracemalloc
import warnings

import numpy as np
from sklearn.metrics import roc_auc_score, roc_curve

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[1]))  # run from a checkout
import fr_bench.metrics as M  # noqa: E402


def best_time(fn, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def peak_bytes(fn) -> int:
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def sklearn_nearest(scores, labels, fars):
    """Baseline for the nearest reading: what the insightface IJB script does."""
    fpr, tpr, _ = roc_curve(labels, scores)
    fpr, tpr = fpr[::-1], tpr[::-1]
    return {f: tpr[np.argmin(np.abs(fpr - f))] for f in fars}


def verification_section(n: int, genuine_fraction: float, repeat: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    labels = rng.random(n) < genuine_fraction
    scores = np.where(labels, rng.normal(0.55, 0.12, n), rng.normal(0.0, 0.1, n)).astype(np.float32)
    fars = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1)
    print(f"\n== verification: {n:,} scores, {int(labels.sum()):,} genuine ({genuine_fraction:.2%}), float32, "
          f"best of {repeat}")
    t_sk = best_time(lambda: roc_curve(labels, scores, drop_intermediate=False), repeat)
    t_sk_default = best_time(lambda: sklearn_nearest(scores, labels, fars), repeat)
    rows = [("roc", lambda: M.roc(scores, labels), t_sk, "sklearn roc_curve(drop_intermediate=False)")]
    for conv in ("strict", "nearest", "interpolated"):
        base, name = ((t_sk_default, "sklearn roc_curve() + nearest reading") if conv == "nearest"
                      else (t_sk, "sklearn roc_curve(drop_intermediate=False)"))
        rows.append((f"tar_at_far[{conv}]", lambda c=conv: M.tar_at_far(scores, labels, fars=fars, convention=c),
                     base, name))
    rows.append(("eer", lambda: M.eer(scores, labels), t_sk, "sklearn roc_curve(drop_intermediate=False)"))
    t_auc = best_time(lambda: roc_auc_score(labels, scores), repeat)
    rows.append(("verification_report (no acc.)",
                 lambda: M.verification_report(scores, labels, fars=fars, accuracy_convention=None), t_auc,
                 "sklearn roc_auc_score"))
    rows.append(("roc_report [nearest]", lambda: M.roc_report(scores, labels, fars=fars, tar_convention="nearest"),
                 t_sk_default, "sklearn roc_curve() + nearest reading"))
    print(f"{'function':34s} {'ours s':>8s} {'base s':>8s} {'ratio':>6s} {'peak B/score':>12s}  baseline")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for label, fn, base, base_name in rows:
            t = best_time(fn, repeat)
            peak = peak_bytes(fn) / n
            print(f"{label:34s} {t:8.2f} {base:8.2f} {t / base:6.2f} {peak:12.1f}  {base_name}")
        peak_sk = peak_bytes(lambda: roc_curve(labels, scores, drop_intermediate=False)) / n
    print(f"{'(sklearn roc_curve peak)':34s} {'':8s} {'':8s} {'':6s} {peak_sk:12.1f}")
    fold_n = min(n, 600_000)
    s_small, y_small = scores[:fold_n], labels[:fold_n]
    t_kf = best_time(lambda: M.pair_accuracy(s_small, y_small, convention="kfold-exact"), 1)
    t_kg = best_time(lambda: M.pair_accuracy(s_small, y_small, convention="kfold-grid"), 1)
    t_sort = best_time(lambda: np.argsort(s_small.astype(np.float64)), 1)
    print(f"pair_accuracy on {fold_n:,}: kfold-exact {t_kf:.2f} s, kfold-grid {t_kg:.2f} s "
          f"(ratios to one argsort: {t_kf / t_sort:.1f}, {t_kg / t_sort:.1f})")
    distribution_section(scores, labels, repeat)


def distribution_section(scores: np.ndarray, labels: np.ndarray, repeat: int) -> None:
    """The two histograms of distribution_overlap (200 equal-width bins over the score range) from an edges array
    (what it does) against numpy's fixed-bin path (``bins=200, range=...``), same counts, best of 3."""
    g, i = scores[labels].astype(np.float64), scores[~labels].astype(np.float64)
    rng_ = (min(g.min(), i.min()), max(g.max(), i.max()))
    edges = np.histogram_bin_edges(np.r_[g[:1], i[:1]], bins=200, range=rng_)
    t_edges = best_time(lambda: (np.histogram(g, bins=edges), np.histogram(i, bins=edges)), max(3, repeat))
    t_fixed = best_time(lambda: (np.histogram(g, bins=200, range=rng_), np.histogram(i, bins=200, range=rng_)),
                        max(3, repeat))
    t_all = best_time(lambda: M.distribution_overlap(scores[labels], scores[~labels]), repeat)
    same = bool((np.histogram(i, bins=edges)[0] == np.histogram(i, bins=200, range=rng_)[0]).all())
    print(f"histograms: edges array {t_edges:.2f} s, fixed bins over the range {t_fixed:.2f} s (ratio "
          f"{t_fixed / t_edges:.2f}), identical counts: {same}; distribution_overlap, all statistics, {t_all:.2f} s "
          f"(numpy {np.__version__})")


def identification_section(n_probes: int, n_distractors: int, dim: int, seed: int) -> None:
    print(f"\n== distractor_rank1: {n_probes:,} probes x {n_distractors:,} distractors x {dim}-d, float32")
    rng = np.random.default_rng(seed)
    probe = rng.normal(size=(n_probes, dim)).astype(np.float32)
    probe /= np.linalg.norm(probe, axis=1, keepdims=True)
    ids = np.repeat(np.arange(max(1, n_probes // 10)), 10)[:n_probes]
    if ids.size < n_probes:
        ids = np.r_[ids, np.full(n_probes - ids.size, ids[-1] if ids.size else 0)]
    distractors = rng.normal(size=(n_distractors, dim)).astype(np.float32)
    distractors /= np.linalg.norm(distractors, axis=1, keepdims=True)

    def baseline():  # the unavoidable work: every probe-distractor score, max per probe, in blocks
        best = np.full(n_probes, -np.inf, dtype=np.float32)
        for start in range(0, n_distractors, 65536):
            np.maximum(best, (probe @ distractors[start:start + 65536].T).max(axis=1), out=best)
        return best

    t_base = best_time(baseline, 1)
    scale = (3530 * 1_000_000) / (n_probes * n_distractors)
    t0 = time.perf_counter()
    both = M.distractor_metrics(probe, ids, distractors, fars=(1e-6,))
    t = time.perf_counter() - t0
    t0 = time.perf_counter()  # the two passes the protocol made before
    two = (M.distractor_rank1(probe, ids, distractors), M.distractor_verification(probe, ids, distractors))
    t_two = time.perf_counter() - t0
    print(f"{'':30s} {'time s':>8s} {'at 3,530 x 1M (P*N scaling)':>30s}")
    print(f"{'distractor_metrics (one pass)':30s} {t:8.2f} {t * scale:28.0f} s")
    print(f"{'rank1 + verification (2 passes)':30s} {t_two:8.2f} {t_two * scale:28.0f} s   ratio {t / t_two:.2f}")
    print(f"{'baseline matmul+max':30s} {t_base:8.2f} {t_base * scale:28.0f} s   ratio {t / t_base:.2f}")
    print(f"same numbers: {both[0] == two[0] and both[1] == two[1]}")


def bootstrap_section(n: int, n_subjects: int, n_boot: int, n_loop: int, seed: int) -> None:
    """TAR@FAR replicates at IJB-C size: strict (vectorised) against nearest vectorised, and the nearest reading one
    replicate at a time (the previous implementation, on ``n_loop`` replicates, extrapolated), identical values."""
    from fr_bench.metrics import _nearest

    rng = np.random.default_rng(seed)
    n_gen = int(n * 0.0012)
    offset = rng.normal(0.0, 0.05, n_subjects)
    a = rng.integers(0, n_subjects, n)
    b = rng.integers(0, n_subjects - 1, n)
    b = np.where(b >= a, b + 1, b)
    b[:n_gen] = a[:n_gen]
    labels = np.zeros(n, bool)
    labels[:n_gen] = True
    scores = (rng.normal(0.0, 0.1, n) + offset[a] + offset[b]).astype(np.float32)
    scores[:n_gen] = (rng.normal(0.55, 0.15, n_gen) + offset[a[:n_gen]]).astype(np.float32)
    fars = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1)
    w = M.draw_unit_weights(n_subjects, n_boot, seed=1)
    print(f"\n== bootstrap replicates: {n:,} pairs, {n_subjects:,} subjects, {n_boot} replicates, FAR {fars}")
    times = {}
    for conv in ("strict", "nearest"):
        t0 = time.perf_counter()
        reps = M.tar_replicates(scores, labels, a, b, w, fars=fars, convention=conv)
        times[conv] = time.perf_counter() - t0
        if conv == "nearest":
            vec = reps
    _nearest.VECTORISED_NEAREST = False
    try:
        t0 = time.perf_counter()
        loop = M.tar_replicates(scores, labels, a, b, w[:n_loop], fars=fars, convention="nearest")
        t_loop = (time.perf_counter() - t0) * n_boot / n_loop
    finally:
        _nearest.VECTORISED_NEAREST = True
    same = bool(np.array_equal(loop, vec[:, :n_loop], equal_nan=True))
    print(f"strict {times['strict']:.1f} s; nearest vectorised {times['nearest']:.1f} s "
          f"(x{times['nearest'] / times['strict']:.2f} strict); nearest one replicate at a time {t_loop:.0f} s "
          f"(from {n_loop}, extrapolated; x{t_loop / times['nearest']:.0f} the vectorised); identical on those "
          f"{n_loop}: {same}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=15_700_000, help="number of verification scores (IJB-C: 15.7M)")
    p.add_argument("--genuine-fraction", type=float, default=0.0012)
    p.add_argument("--repeat", type=int, default=1, help="timing repeats (best of)")
    p.add_argument("--probes", type=int, default=353)
    p.add_argument("--distractors", type=int, default=100_000)
    p.add_argument("--dim", type=int, default=512)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--sections", nargs="+", default=["verification", "distractors", "bootstrap"],
                   choices=["verification", "distractors", "bootstrap"])
    p.add_argument("--subjects", type=int, default=3500, help="bootstrap units")
    p.add_argument("--boot", type=int, default=1000, help="bootstrap replicates")
    p.add_argument("--loop", type=int, default=10, help="replicates timed one at a time (extrapolated)")
    a = p.parse_args()
    if "verification" in a.sections:
        verification_section(a.n, a.genuine_fraction, a.repeat, a.seed)
    if "distractors" in a.sections:
        identification_section(a.probes, a.distractors, a.dim, a.seed)
    if "bootstrap" in a.sections:
        bootstrap_section(a.n, a.subjects, a.boot, a.loop, a.seed)
    print(f"\nprocess max RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
    print(f"load: {open('/proc/loadavg').read().strip()}")


if __name__ == "__main__":
    main()
