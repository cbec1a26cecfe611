"""IJB-C 1:1 speed: fr_bench's loader + evaluate vs the reference procedure (insightface eval_ijbc.py logic).

Synthetic meta files shaped like IJB-C (469,375 images, 23,124 templates = 3,531 gallery + 19,593 probe templates,
15,658,489 gallery x probe pairs, i.e. ~22.6% of all gallery x probe combinations; media of 1-12 frames) and
512-d image embeddings (subject centre + noise, varied norms) go through

* ours: ``load_protocol("ijbc", root, check_counts=...)`` (parse), ``template_features`` (pool), ``pair_scores``
  (score), the metric engine (ROC, TAR@FAR, EER, distribution summary);
* reference: pandas parse, per-template loop pooling, 100k-pair batch scores, scikit-learn ``roc_curve`` and the
  nearest-FPR reading,

timed per stage in the same run, with a check that both give the same scores and TAR@FAR.

    python bench/ijb_bench.py                 # --scale 0.05 (well under a minute on 2 cores)
    python bench/ijb_bench.py --scale 1       # full IJB-C size (needs ~6 GB RAM; the reference takes minutes)

The synthetic files are cached in a temp folder (``--cache``) so reruns skip writing them.
"""

from __future__ import annotations

import argparse
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


def reference(root: Path, emb: np.ndarray, fars) -> tuple[dict[str, float], np.ndarray, dict[str, float]]:
    """insightface eval_ijbc.py, straightforwardly: per-template loop, 100k-pair batches, sklearn roc_curve."""
    import sklearn.preprocessing
    from sklearn.metrics import roc_curve

    times = {}
    t0 = time.perf_counter()
    meta = pd.read_csv(root / "meta/ijbc_face_tid_mid.txt", sep=" ", header=None).values
    templates, medias = meta[:, 1].astype(int), meta[:, 2].astype(int)
    pairs = pd.read_csv(root / "meta/ijbc_template_pair_label.txt", sep=" ", header=None).values.astype(int)
    p1, p2, label = pairs[:, 0], pairs[:, 1], pairs[:, 2]
    faceness = pd.read_csv(root / "meta/ijbc_name_5pts_score.txt", sep=" ", header=None).values[:, -1].astype(
        np.float32)
    times["parse"] = time.perf_counter() - t0

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
    fpr, tpr, _ = roc_curve(label, score)
    fpr, tpr = np.flipud(fpr), np.flipud(tpr)
    tars = {f: float(tpr[np.argmin(np.abs(fpr - f))]) for f in fars}
    times["metrics"] = time.perf_counter() - t0
    return times, score, tars


def ours(root: Path, emb: np.ndarray, fars):
    from fr_bench.protocols import ProtocolResult, load_protocol
    from fr_bench.protocols.ijb import pair_scores, verification_metrics

    times = {}
    t0 = time.perf_counter()
    p = load_protocol("ijbc", root, check_counts=False)
    times["parse"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    feats = p.template_features(emb)
    times["pool"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    scores = pair_scores(feats, p.row_a, p.row_b)
    times["score"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    result = ProtocolResult(protocol="ijbc", metrics={})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        verification_metrics(result, "", scores.astype(np.float64), p.labels, fars, "nearest")
    times["metrics"] = time.perf_counter() - t0
    return times, scores, result, p


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", type=float, default=0.05, help="fraction of IJB-C's size (1 = full)")
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "fr_bench_ijb_bench")
    ap.add_argument("--no-reference", action="store_true", help="skip the reference (slow at full scale)")
    args = ap.parse_args()
    import sklearn.metrics  # noqa: F401  (imports are not what we time)

    import fr_bench.metrics  # noqa: F401
    n = sizes(args.scale)
    root = args.cache / f"scale_{args.scale:g}"
    if not (root / "image_subject.npy").exists():
        t0 = time.perf_counter()
        write_synthetic(root, n)
        print(f"wrote synthetic IJB-C meta files to {root} in {time.perf_counter() - t0:.1f} s")
    image_subject = np.load(root / "image_subject.npy")
    emb = make_embeddings(image_subject, args.dim)
    fars = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1)
    t_ours, s_ours, result, p = ours(root, emb, fars)
    print(f"IJB-C-shaped synthetic set: {len(p.images):,} images, {p.layout.n_templates:,} templates, "
          f"{len(p.labels):,} pairs, dim {args.dim} (scale {args.scale:g})")
    stages = ("parse", "pool", "score", "metrics")
    print("ours: " + ", ".join(f"{k} {t_ours[k]:.2f} s" for k in stages) + f"; total {sum(t_ours.values()):.2f} s",
          flush=True)
    if args.no_reference:
        return
    t_ref, s_ref, tars = reference(root, emb, fars)
    print(f"{'stage':8s} {'ours (s)':>9s} {'reference (s)':>14s} {'ratio':>7s}")
    for k in stages + ("total",):
        a = sum(t_ours.values()) if k == "total" else t_ours[k]
        b = sum(t_ref.values()) if k == "total" else t_ref[k]
        print(f"{k:8s} {a:9.2f} {b:14.2f} {b / a:7.1f}x")
    a = sum(t_ours[k] for k in ("pool", "score", "metrics"))
    b = sum(t_ref[k] for k in ("pool", "score", "metrics"))
    print(f"{'no parse':8s} {a:9.2f} {b:14.2f} {b / a:7.1f}x")
    print(f"max |score difference| = {np.max(np.abs(s_ours - s_ref)):.2e}")
    for f in fars:
        name = f"tar@far={f:.0e}".replace("e-0", "e-")
        ours_tar = result.metrics[name]
        print(f"  {name:14s} ours {ours_tar:.6f}  reference {tars[f]:.6f}"
              + ("  (unresolvable: too few impostor pairs; NaN by design)" if np.isnan(ours_tar)
                 else "" if abs(ours_tar - tars[f]) < 1e-12 else "  (DIFFERENT: float32 vs float64 score order)"))


if __name__ == "__main__":
    main()
