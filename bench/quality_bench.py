"""ISO EDC (``fr_bench.metrics.edc``) at IJB-C size against one ROC and a naive loop, measured in the same run.

Synthetic 1:1 pairs with IJB-C's counts (15,658,489 pairs, 19,557 mated), float32 scores and a continuous float64
pairwise quality (every value distinct: the most discard steps, the worst case for the curve). Times

  (a) one ROC: ``fr_bench.metrics.roc`` (the full curve over every distinct score; one sort),
  (b) the ISO EDC whole curve, FNM-EDC and FM-EDC (and each with ``relative_to_best=True``), in the default reading
      ``discard_over="class"`` (FNM-EDC discards among the mated pairs only, FM-EDC among the non-mated ones;
      ``--reading all`` times the earlier all-pairs reading instead, ``both`` each),
  (c) a naive loop: at each of 20 discard steps (fractions 0, 0.05, ..., 0.95 of the discarded pairs, each realised
      as the smallest tie-group boundary at or above it) the quality level is found from scratch (a partition) and
      the error is recounted on the pairs that remain (fixed threshold),

checks that (b) equals (c) exactly at those 20 steps, and prints ratios against (a); (a) and (b) are timed in
interleaved rounds (fastest of each, and the median of the per-round ratios, robust to a shared machine's load).
The MagFace convention (threshold re-estimated after each discard: an argsort and 20 re-selections) is timed on
``--magface-n`` pairs with its own ROC at that size.

    python bench/quality_bench.py                  # IJB-C size (about a minute on 2 cores, 2 GB)
    python bench/quality_bench.py --n 1000000      # smaller
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout
import fr_bench.metrics as M  # noqa: E402
from fr_bench.metrics._common import allowed_count  # noqa: E402

STEPS = [i / 20 for i in range(20)]  # 0, 0.05, ..., 0.95


def synthetic(n: int, n_mated: int, seed: int):
    """Labels (``n_mated`` True at random places), float32 scores, float64 quality mildly tied to the score of
    mated pairs (so the curve falls as low-quality pairs go)."""
    rng = np.random.default_rng(seed)
    y = np.zeros(n, dtype=bool)
    y[rng.choice(n, n_mated, replace=False)] = True
    s = np.where(y, rng.normal(0.55, 0.15, n), rng.normal(0.0, 0.1, n)).astype(np.float32)
    q = rng.normal(0.0, 1.0, n) + np.where(y, 3.0 * (s - 0.55), 0.0)
    return y, s, q


def naive_threshold(s: np.ndarray, y: np.ndarray, error: str, rate: float) -> float:
    """The ISO threshold by full sorts (the module uses partitions): FNM: the (k+1)-th smallest mated score; FM: the
    smallest score above the (k+1)-th largest non-mated one."""
    if error == "fnm":
        mated = np.sort(s[y])
        k = allowed_count(rate, mated.size)
        return float(mated[k]) if k < mated.size else float("inf")
    non = np.sort(s[~y])[::-1]
    k = allowed_count(rate, non.size)
    if k >= non.size:
        return float(s.min())
    above = np.sort(s[s > non[k]])
    return float(above[0]) if above.size else float("inf")


def naive_loop(y: np.ndarray, s: np.ndarray, q: np.ndarray, error: str, rate: float, reading: str):
    """(removed counts, errors) at the 20 steps, each recounted from scratch on the remaining pairs (``"class"``:
    the counted class's pairs alone are discarded; ``"all"``: every pair)."""
    t = naive_threshold(s, y, error, rate)
    cls = y if error == "fnm" else ~y
    bad = (y & (s < t)) if error == "fnm" else (~y & (s >= t))
    if reading == "class":
        q, bad, cls = q[cls], bad[cls], np.ones(int(cls.sum()), dtype=bool)
    n, removed, errors = q.size, [], []
    for u in STEPS:
        m = int(np.ceil(u * n))  # at least this many pairs go: every pair with quality <= the m-th smallest
        keep = np.ones(n, dtype=bool) if m == 0 else q > np.partition(q, m - 1)[m - 1]
        n_cls, n_bad = int(np.count_nonzero(keep & cls)), int(np.count_nonzero(keep & bad))
        removed.append(n - int(np.count_nonzero(keep)))
        errors.append(n_bad / n_cls if n_cls else float("nan"))
    return t, removed, errors


def agree(r, t: float, removed: list[int], errors: list[float], reading: str, n: int, n_mated: int) -> bool:
    """The curve holds the naive loop's fractions and errors exactly at its 20 steps, with the same threshold."""
    if r.threshold != t:
        return False
    if reading == "class":
        n = n_mated if r.error == "fnm" else n - n_mated
    for k, e in zip(removed, errors):
        j = int(np.searchsorted(r.discard_fractions, k / n))
        if j >= r.discard_fractions.size or r.discard_fractions[j] != k / n:
            return False
        if not (r.errors[j] == e or (np.isnan(r.errors[j]) and np.isnan(e))):
            return False
    return True


def iso_section(n: int, n_mated: int, rounds: int, seed: int, reading: str) -> None:
    """ROC and the four EDC variants timed in ``rounds`` interleaved rounds (each round times all five, so a load
    change on a shared machine hits them alike): fastest time of each, and the median of the per-round ratios."""
    y, s, q = synthetic(n, n_mated, seed)
    print(f"== ISO EDC, discard_over={reading!r}: {n:,} pairs, {n_mated:,} mated, float32 scores, float64 quality "
          f"({np.unique(q).size:,} distinct values), {rounds} interleaved rounds; load at start {os.getloadavg()}")
    variants = [(e, rate, best) for e, rate in (("fnm", 0.05), ("fm", 1e-3)) for best in (False, True)]
    times: dict = {"roc": []}
    results = {}
    for _ in range(rounds):
        t0 = time.perf_counter()
        M.roc(s, y)
        times["roc"].append(time.perf_counter() - t0)
        for v in variants:
            t0 = time.perf_counter()
            results[v] = M.edc(y, s, q, error=v[0], starting_error=v[1], relative_to_best=v[2], discard_over=reading)
            times.setdefault(v, []).append(time.perf_counter() - t0)
    t_roc = min(times["roc"])
    print(f"(a) one ROC, fr_bench.metrics.roc: fastest {t_roc:.3f} s (rounds: "
          f"{', '.join(f'{t:.2f}' for t in times['roc'])})")
    for error, rate in (("fnm", 0.05), ("fm", 1e-3)):
        for best in (False, True):
            ts = times[(error, rate, best)]
            ratio = float(np.median(np.divide(ts, times["roc"])))
            print(f"(b) {error.upper()}-EDC at {rate:g}{' + best curve' if best else '':13s} whole curve "
                  f"({results[(error, rate, best)].errors.size:,} steps): fastest {min(ts):.3f} s = "
                  f"{min(ts) / t_roc:.2f}x the fastest ROC; median per-round ratio {ratio:.2f}x")
        r = results[(error, rate, False)]
        t0 = time.perf_counter()
        t, removed, errors = naive_loop(y, s, q, error, rate, reading)
        t_naive = time.perf_counter() - t0
        print(f"(c)   naive loop, 20 steps from scratch: {t_naive:.3f} s = {t_naive / t_roc:.2f}x ROC "
              f"(= {t_naive / min(times[(error, rate, False)]):.1f}x the whole curve); identical at the 20 steps: "
              f"{agree(r, t, removed, errors, r.discard_over, n, n_mated)}; pAUC {r.pauc:.5f}")
    print(f"load at end {os.getloadavg()}")


def magface_section(n: int, n_mated: int, seed: int) -> None:
    y, s, q = synthetic(n, n_mated, seed)
    t0 = time.perf_counter()
    M.roc(s, y)
    t_roc = time.perf_counter() - t0
    t0 = time.perf_counter()
    r = M.edc(y, s, q, convention="magface")
    t_mf = time.perf_counter() - t0
    print(f"== MagFace convention on {n:,} pairs ({n_mated:,} mated): {t_mf:.2f} s = {t_mf / t_roc:.2f}x one ROC "
          f"({t_roc:.2f} s) at that size; FNMR at 0 / 0.95 discarded {r.errors[0]:.4f} / {r.errors[-1]:.4f}; "
          f"load {os.getloadavg()}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=15_658_489, help="pairs (IJB-C 1:1: 15,658,489)")
    p.add_argument("--mated", type=int, default=19_557, help="mated pairs (IJB-C: 19,557)")
    p.add_argument("--rounds", type=int, default=5, help="interleaved timing rounds for (a) and (b)")
    p.add_argument("--magface-n", type=int, default=2_000_000, help="pairs for the MagFace convention (0: skip)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--reading", choices=["class", "all", "both"], default="class",
                   help="edc's discard_over to time (default: class, the default reading)")
    a = p.parse_args()
    for reading in (["class", "all"] if a.reading == "both" else [a.reading]):
        iso_section(a.n, a.mated, a.rounds, a.seed, reading)
    if a.magface_n:
        magface_section(a.magface_n, max(1, round(a.mated * a.magface_n / a.n)), a.seed)
    print(f"process max RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
