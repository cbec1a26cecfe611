"""IJB-C 1:1 speed: fr_bench's loader + evaluate vs the reference procedure (insightface eval_ijbc.py logic).

Synthetic meta files shaped like IJB-C (469,375 images, 23,124 templates = 3,531 gallery + 19,593 probe templates,
15,658,489 gallery x probe pairs, i.e. ~22.6% of all gallery x probe combinations; media of 1-12 frames) and
512-d image embeddings (subject centre + noise, varied norms) go through

* ours: ``load_protocol("ijbc", root, check_counts=False)`` (parse) and ``protocol.evaluate(embeddings)``, the real
  end-to-end path. Stages are timed by wrapping the functions that path calls (no separate re-run): parse = meta
  files (``read_ijb_meta``) + pair file (``read_template_pairs``) + template id -> row (``template_lookup``) + the
  rest of the constructor; pool = ``template_features``; score = ``pair_scores``; metrics = the rest of
  ``evaluate`` (metric engine, result assembly);
* reference: pandas parse, per-template loop pooling, 100k-pair batch scores (float64), scikit-learn
  ``roc_curve`` and the nearest-FPR reading,

timed per stage in the same run, with the ratio per stage, a check that both give the same scores and TAR@FAR, and
the load average (the 2-core development machine is shared: compare ratios from one run, not times across runs).
``--memory`` measures instead the peak memory of the evaluation above its inputs, ours against the reference, each in
a fresh child process: the inputs (embeddings + parsed files) are loaded, the resident set is read (``VmRSS``) and
the kernel's peak counter is reset (``/proc/self/clear_refs``), then ours runs ``protocol.evaluate`` and writes the
scores file as ``frbench evaluate`` does (``save_scores``), the reference pools, scores and reads its ROC; the peak
(``VmHWM``) minus the inputs is what the evaluation held. ``resource.getrusage`` gives the same peak where
``clear_refs`` is unavailable (then the parse's own peak may hide it: said in the output).

``--precision`` also scores our template features with float64 dots, to separate the float32-dot effect from the
pooling differences when a TAR@FAR reading differs from the reference by a pair.

    python bench/ijb_bench.py                 # --scale 0.1 (a few seconds on 2 cores)
    python bench/ijb_bench.py --scale 1       # full IJB-C size (needs ~6 GB RAM; the reference takes ~1-2 min)
    python bench/ijb_bench.py --scale 1 --memory   # peak memory above the inputs, ours vs reference

Pairs grow with scale squared (gallery x probe), images and templates linearly. The synthetic files are cached in a
temp folder (``--cache``) so reruns skip writing them.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing

IJBC = {"images": 469_375, "gallery": 3_531, "probe": 19_593, "pairs": 15_658_489}
NOISE = 4.0  # per-dimension noise vs unit-variance subject centres: keeps TAR@FAR away from 1 after pooling
DENSITY = IJBC["pairs"] / (IJBC["gallery"] * IJBC["probe"])


def sizes(scale: float) -> dict[str, int]:
    g = max(4, round(IJBC["gallery"] * scale))
    p = max(8, round(IJBC["probe"] * scale))
    return {"images": max(g + p, round(IJBC["images"] * scale)), "gallery": g, "probe": p,
            "pairs": max(10, round(DENSITY * g * p) if scale < 1 else IJBC["pairs"])}


def write_synthetic(root: Path, n: dict[str, int], seed: int = 0) -> dict[str, np.ndarray]:
    """Write meta/ijbc_*.txt under ``root``; return the ground truth needed to build embeddings."""
    rng = np.random.default_rng(seed)
    n_t = n["gallery"] + n["probe"]
    n_subjects = n["gallery"]  # one gallery template per subject, as in IJB-C's G1 + G2 (3,531 subjects)
    template_subject = np.concatenate([np.arange(n["gallery"]), rng.integers(0, n_subjects, n["probe"])])
    # every template has >= 1 image; the rest spread with a long tail
    extra = rng.multinomial(n["images"] - n_t, rng.dirichlet(np.full(n_t, 0.3)))
    image_template = np.repeat(np.arange(n_t), 1 + extra)
    rng.shuffle(image_template)
    image_template = np.sort(image_template)  # the release lists templates in blocks
    # media: runs of 1-12 frames inside each template, globally numbered
    run = rng.integers(1, 13, size=len(image_template))
    new_media = np.ones(len(image_template), bool)
    pos_in_t = np.arange(len(image_template)) - np.searchsorted(image_template, image_template)
    new_media[1:] = (image_template[1:] != image_template[:-1]) | (pos_in_t[1:] % run[1:] == 0)
    image_media = np.cumsum(new_media)
    tids = 1 + np.arange(n_t)
    meta = root / "meta"
    meta.mkdir(parents=True, exist_ok=True)
    names = np.char.add(np.arange(1, len(image_template) + 1).astype(str), ".jpg")
    pd.DataFrame({"n": names, "t": tids[image_template], "m": image_media}).to_csv(
        meta / "ijbc_face_tid_mid.txt", sep=" ", header=False, index=False)
    pts = pd.DataFrame(rng.uniform(20, 100, size=(len(names), 10)).round(3))
    pts.insert(0, "n", names)
    pts["s"] = rng.uniform(0.5, 1.0, size=len(names)).round(4)
    pts.to_csv(meta / "ijbc_name_5pts_score.txt", sep=" ", header=False, index=False)
    # pairs: gallery x probe, all genuine combinations plus random impostors up to the target count
    g_idx, p_idx = np.arange(n["gallery"]), n["gallery"] + np.arange(n["probe"])
    genuine_p = p_idx
    genuine_g = template_subject[p_idx]  # gallery template of the probe's subject
    n_imp = n["pairs"] - len(genuine_p)
    flat = rng.choice(n["gallery"] * n["probe"], size=n_imp + len(genuine_p) * 2, replace=False)
    ga, pb = g_idx[flat // n["probe"]], p_idx[flat % n["probe"]]
    imp = template_subject[ga] != template_subject[pb]
    ga, pb = ga[imp][:n_imp], pb[imp][:n_imp]
    a = np.concatenate([genuine_g, ga])
    b = np.concatenate([genuine_p, pb])
    labels = np.concatenate([np.ones(len(genuine_p), np.int64), np.zeros(len(ga), np.int64)])
    order = rng.permutation(len(a))
    pd.DataFrame({"a": tids[a[order]], "b": tids[b[order]], "y": labels[order]}).to_csv(
        meta / "ijbc_template_pair_label.txt", sep=" ", header=False, index=False)
    np.save(root / "image_subject.npy", template_subject[image_template])
    return {"image_subject": template_subject[image_template]}


def make_embeddings(image_subject: np.ndarray, dim: int, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((int(image_subject.max()) + 1, dim), dtype=np.float32)
    emb = centres[image_subject]
    emb += NOISE * rng.standard_normal(emb.shape, dtype=np.float32)
    emb *= rng.uniform(5, 30, size=(len(emb), 1)).astype(np.float32)
    return emb


# ------------------------------------------------------------------------------------------------------- reference


def reference_parse(root: Path) -> tuple:
    """The reference's parse: pandas reads of the three meta files, int64 columns as eval_ijbc.py keeps them."""
    meta = pd.read_csv(root / "meta/ijbc_face_tid_mid.txt", sep=" ", header=None).values
    templates, medias = meta[:, 1].astype(int), meta[:, 2].astype(int)
    pairs = pd.read_csv(root / "meta/ijbc_template_pair_label.txt", sep=" ", header=None).values.astype(int)
    p1, p2, label = pairs[:, 0], pairs[:, 1], pairs[:, 2]
    faceness = pd.read_csv(root / "meta/ijbc_name_5pts_score.txt", sep=" ", header=None).values[:, -1].astype(
        np.float32)
    return templates, medias, p1, p2, label, faceness


def reference_evaluate(parsed: tuple, emb: np.ndarray, fars, times: dict[str, float]) -> tuple[np.ndarray, dict]:
    """The reference's pooling (per-template loop), 100k-pair float64 batch scores and sklearn ROC reading."""
    import sklearn.preprocessing
    templates, medias, p1, p2, label, faceness = parsed
    t0 = time.perf_counter()
    img_feats = emb * faceness[:, None]
    unique_templates = np.unique(templates)
    template_feats = np.zeros((len(unique_templates), img_feats.shape[1]))
    for i, uqt in enumerate(unique_templates):
        (ind_t,) = np.where(templates == uqt)
        face_feats, face_medias = img_feats[ind_t], medias[ind_t]
        media_feats = []
        for u, ct in zip(*np.unique(face_medias, return_counts=True)):
            (ind_m,) = np.where(face_medias == u)
            media_feats.append(face_feats[ind_m] if ct == 1 else np.mean(face_feats[ind_m], axis=0, keepdims=True))
        template_feats[i] = np.sum(np.array(media_feats), axis=0)
    template_norm = sklearn.preprocessing.normalize(template_feats)
    times["pool"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    t2i = np.zeros(max(templates) + 1, dtype=int)
    t2i[unique_templates] = np.arange(len(unique_templates))
    score = np.zeros(len(p1))
    batch = 100_000
    for s in range(0, len(p1), batch):
        f1 = template_norm[t2i[p1[s:s + batch]]]
        f2 = template_norm[t2i[p2[s:s + batch]]]
        score[s:s + batch] = np.sum(f1 * f2, -1)
    times["score"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    tars = nearest_tars(label, score, fars)
    times["metrics"] = time.perf_counter() - t0
    return score, tars


def reference(root: Path, emb: np.ndarray, fars) -> tuple[dict[str, float], np.ndarray, dict[str, float]]:
    """insightface eval_ijbc.py, straightforwardly: per-template loop, 100k-pair batches, sklearn roc_curve."""
    t0 = time.perf_counter()
    parsed = reference_parse(root)
    times = {"parse": time.perf_counter() - t0}
    score, tars = reference_evaluate(parsed, emb, fars, times)
    return times, score, tars


@contextlib.contextmanager
def timing(owner: object, name: str, totals: dict[str, float], key: str):
    """Within the block, calls to ``owner.name`` add their wall time to ``totals[key]``."""
    original = owner.__dict__[name] if isinstance(owner, type) else getattr(owner, name)
    func = getattr(owner, name)

    @functools.wraps(func)
    def timed(*args, **kwargs):
        t0 = time.perf_counter()
        try:
            return func(*args, **kwargs)
        finally:
            totals[key] = totals.get(key, 0.0) + time.perf_counter() - t0

    setattr(owner, name, timed)
    try:
        yield
    finally:
        setattr(owner, name, original)


def ours(root: Path, emb: np.ndarray):
    """Load + evaluate through the public path, stage times from wrapped internals."""
    from fr_bench.protocols import ijb, load_protocol

    times: dict[str, float] = {}
    parse: dict[str, float] = {}
    with contextlib.ExitStack() as stack:
        for fn, key in (("read_ijb_meta", "meta files"), ("read_template_pairs", "pair file"),
                        ("template_lookup", "template lookup")):
            stack.enter_context(timing(ijb, fn, parse, key))
        t0 = time.perf_counter()
        p = load_protocol("ijbc", root, check_counts=False)
        times["parse"] = time.perf_counter() - t0
    parse["other"] = times["parse"] - sum(parse.values())
    from fr_bench.metrics import distributions, verification

    engine: dict[str, float] = {}
    with contextlib.ExitStack() as stack:
        for owner, fn in ((verification, "roc_report"), (verification, "downsample_roc"),
                          (distributions, "distribution_overlap")):  # the metric engine's share of "metrics"
            stack.enter_context(timing(owner, fn, engine, fn))
        stack.enter_context(timing(ijb.IJBBase, "template_features", times, "pool"))
        stack.enter_context(timing(ijb, "pair_scores", times, "score"))
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = p.evaluate(emb)
        evaluate = time.perf_counter() - t0
    missing = {"pool", "score"} - set(times)
    if missing:  # evaluate no longer goes through the wrapped functions: the breakdown would be wrong
        raise SystemExit(f"evaluate did not call the functions timed as {sorted(missing)}: update ours() in this bench")
    times["metrics"] = evaluate - times["pool"] - times["score"]
    engine["rest of evaluate"] = times["metrics"] - sum(engine.values())
    parse.update({f"metrics: {k}": v for k, v in engine.items()})
    return times, parse, result, p


def nearest_tars(labels: np.ndarray, scores: np.ndarray, fars) -> dict[float, float]:
    """The reference's reading: sklearn roc_curve, TPR at the FPR nearest each target."""
    from sklearn.metrics import roc_curve

    fpr, tpr, _ = roc_curve(labels, scores)
    fpr, tpr = np.flipud(fpr), np.flipud(tpr)  # as eval_ijbc.py: argmin then takes the lowest threshold on ties
    return {f: float(tpr[np.argmin(np.abs(fpr - f))]) for f in fars}


def _status_kb(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def _reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS (Linux >= 4.0)
        return True
    except OSError:
        return False


def memory_child(which: str, root: Path, dim: int) -> None:
    """One side of ``--memory`` in this (fresh) process. Prints, in MB: the embeddings' RSS, what the parsed files
    hold after the parse, the parse's peak above the embeddings, the evaluation's peak above embeddings + parsed
    files; then whether the peak counter could be reset (1/0) and the evaluation's seconds."""
    import gc
    import resource

    import sklearn.metrics  # noqa: F401  (the modules both sides import are not what we measure)
    import sklearn.preprocessing  # noqa: F401

    import fr_bench.metrics  # noqa: F401
    import fr_bench.protocols.ijb  # noqa: F401
    import fr_bench.results  # noqa: F401
    image_subject = np.load(root / "image_subject.npy")
    emb = make_embeddings(image_subject, dim)
    del image_subject
    fars = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1)
    gc.collect()
    base = _status_kb("VmRSS")
    reset = _reset_peak()
    if which == "ours":
        from fr_bench.protocols import load_protocol

        p = load_protocol("ijbc", root, check_counts=False)
        run = functools.partial(_ours_run, p, emb, root)
    else:
        parsed = reference_parse(root)
        run = functools.partial(reference_evaluate, parsed, emb, fars, {})
    gc.collect()
    parse_peak = _status_kb("VmHWM") if reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    inputs = _status_kb("VmRSS")
    reset = reset and _reset_peak()
    t0 = time.perf_counter()
    run()
    seconds = time.perf_counter() - t0
    peak = _status_kb("VmHWM") if reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(" ".join(f"{v / 1024:.0f}" for v in (base, inputs - base, parse_peak - base, peak - inputs))
          + f" {int(reset)} {seconds:.2f}")


def _ours_run(p, emb: np.ndarray, root: Path) -> None:
    from fr_bench.results import save_scores

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = p.evaluate(emb)
    save_scores(root / "scores_cache", {"bench": "ijb memory"}, result.scores)


def memory(args: argparse.Namespace, root: Path) -> None:
    """``--memory``: ours and the reference, each in a fresh child process, with the load beside each figure."""
    import subprocess

    print(f"IJB-C-shaped synthetic set at scale {args.scale:g}, dim {args.dim}: resident memory (MB) above the "
          "embeddings: held by the parsed files, peak during the parse, peak of the evaluation above embeddings + "
          "parsed files, and the overall peak above the embeddings")
    for which in ("ours", "reference"):
        load = load_line()
        out = subprocess.run([sys.executable, __file__, "--scale", str(args.scale), "--dim", str(args.dim),
                              "--cache", str(args.cache), "--child", which], check=True, capture_output=True,
                             text=True).stdout.split()
        emb, held, parse_peak, above = (float(v) for v in out[:4])
        reset, seconds = out[4] == "1", float(out[5])
        print(f"  {which:9s} embeddings {emb:,.0f}; parsed files hold {held:,.0f}, parse peak {parse_peak:,.0f}; "
              f"evaluation peak {above:,.0f}{'' if reset else ' (getrusage: cumulative peak)'}; overall peak "
              f"{max(parse_peak, held + above):,.0f}; evaluation {seconds:.1f} s "
              f"[{load} at the start; {load_line()} at the end]", flush=True)


def load_line() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min) on {os.cpu_count()} CPUs"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", type=float, default=0.1, help="fraction of IJB-C's size (1 = full)")
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "fr_bench_ijb_bench")
    ap.add_argument("--no-reference", action="store_true", help="skip the reference (slow at full scale)")
    ap.add_argument("--precision", action="store_true",
                    help="also score our template features in float64 and compare TAR@FAR readings")
    ap.add_argument("--memory", action="store_true",
                    help="peak memory above the inputs, ours vs the reference, each in a fresh child process")
    ap.add_argument("--child", choices=("ours", "reference"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    import sklearn.metrics  # noqa: F401  (imports are not what we time)

    import fr_bench.metrics  # noqa: F401
    import fr_bench.protocols.ijb  # noqa: F401
    n = sizes(args.scale)
    root = args.cache / f"scale_{args.scale:g}"
    if not (root / "image_subject.npy").exists():
        t0 = time.perf_counter()
        write_synthetic(root, n)
        print(f"wrote synthetic IJB-C meta files to {root} in {time.perf_counter() - t0:.1f} s")
    if args.child:
        memory_child(args.child, root, args.dim)
        return
    if args.memory:
        memory(args, root)
        return
    image_subject = np.load(root / "image_subject.npy")
    emb = make_embeddings(image_subject, args.dim)
    fars = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1)
    print(f"before: {load_line()}", flush=True)
    t_ours, parse, result, p = ours(root, emb)
    print(f"IJB-C-shaped synthetic set: {len(p.images):,} images, {p.layout.n_templates:,} templates, "
          f"{len(p.labels):,} pairs, dim {args.dim} (scale {args.scale:g})")
    stages = ("parse", "pool", "score", "metrics")
    print("ours: " + ", ".join(f"{k} {t_ours[k]:.2f} s" for k in stages) + f"; total {sum(t_ours.values()):.2f} s"
          + f" (evaluate alone {t_ours['pool'] + t_ours['score'] + t_ours['metrics']:.2f} s)")
    print("  parse: " + ", ".join(f"{k} {v:.2f} s" for k, v in parse.items() if not k.startswith("metrics: ")))
    print("  metrics: " + ", ".join(f"{k[9:]} {v:.2f} s" for k, v in parse.items() if k.startswith("metrics: ")),
          flush=True)
    if args.no_reference:
        print(f"after: {load_line()}")
        return
    t_ref, s_ref, tars = reference(root, emb, fars)
    print(f"after: {load_line()}")
    print(f"{'stage':8s} {'ours (s)':>9s} {'reference (s)':>14s} {'ratio':>7s}")
    for k in stages + ("total",):
        a = sum(t_ours.values()) if k == "total" else t_ours[k]
        b = sum(t_ref.values()) if k == "total" else t_ref[k]
        print(f"{k:8s} {a:9.2f} {b:14.2f} {b / a:7.1f}x")
    a = sum(t_ours[k] for k in ("pool", "score", "metrics"))
    b = sum(t_ref[k] for k in ("pool", "score", "metrics"))
    print(f"{'no parse':8s} {a:9.2f} {b:14.2f} {b / a:7.1f}x")
    s_ours = result.scores.pairs.scores
    diff = np.abs(s_ours - s_ref)
    print(f"scores (ours float32 vs reference float64): max |difference| {diff.max():.2e}, mean {diff.mean():.1e}")
    n_gen = int(np.sum(p.labels == 1))
    for f in fars:
        name = f"tar@far={f:.0e}".replace("e-0", "e-")
        ours_tar = result.metrics[name]
        if np.isnan(ours_tar):
            note = "  (unresolvable: too few impostor pairs; NaN by design)"
        elif abs(ours_tar - tars[f]) < 1e-12:
            note = ""
        else:
            note = (f"  (DIFFERENT by {round((ours_tar - tars[f]) * n_gen):+d} of {n_gen:,} genuine pairs: near-tie "
                    "scores ordered differently; see --precision)")
        print(f"  {name:14s} ours {ours_tar:.6f}  reference {tars[f]:.6f}{note}")
    if args.precision:
        from fr_bench.protocols.ijb_templates import pair_scores

        feats = p.template_features(emb)
        t0 = time.perf_counter()
        s64 = pair_scores(feats, p.row_a, p.row_b, dtype=np.float64)
        t64 = time.perf_counter() - t0
        d = np.abs(s_ours.astype(np.float64) - s64)
        print(f"precision: float32 dot vs float64 dot of the same template features: max |difference| {d.max():.2e}, "
              f"mean {d.mean():.1e}; float64 dot vs reference: max {np.abs(s64 - s_ref).max():.2e} (pooling order); "
              f"score stage in float64 {t64:.2f} s vs float32 {t_ours['score']:.2f} s ({load_line()})")
        labels = p.labels.astype(int)
        t32, t64 = nearest_tars(labels, s_ours.astype(np.float64), fars), nearest_tars(labels, s64, fars)
        for f in fars:
            print(f"  far {f:.0e}: reference reading of ours-float32 {t32[f]:.6f}, ours-float64 {t64[f]:.6f}, "
                  f"reference {tars[f]:.6f}")


if __name__ == "__main__":
    main()
