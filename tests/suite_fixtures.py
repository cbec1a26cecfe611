"""Shared fixtures of the suite tests (tests/test_suite_run.py, tests/test_cli_suite.py): small `.bin` packs whose
numbers are not chance, and an IJB-C release with 1:1 pairs, 1:N CSVs and loose crops."""

from __future__ import annotations

import numpy as np
from writers import write_bin
from writers_ijb import write_1n_csv, write_ijb_release


def write_suite_root(base) -> None:
    """lfw.bin, cfp_fp.bin and agedb_30.bin packs (seeds 0, 10, 20) and an IJB-C release under ``base/IJBC``."""
    for k, name in enumerate(("lfw", "cfp_fp", "agedb_30")):
        write_pack(base / f"{name}.bin", seed=10 * k)
    write_ijbc(base / "IJBC")


def noise_faces(n: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, size=(112, 112, 3), dtype=np.uint8) for _ in range(n)]


def write_pack(path, seed: int, n_pairs: int = 60) -> None:
    """10 contiguous folds of n_pairs/10 pairs; genuine pairs share a base image (so the numbers are not chance)."""
    labels = np.tile(np.repeat([True, False], n_pairs // 20), 10)
    base = noise_faces(n_pairs, seed)
    rng = np.random.default_rng(seed + 1)
    images = []
    for k, same in enumerate(labels):
        other = base[k] if same else base[(k + 1) % n_pairs]
        images += [base[k], np.clip(other.astype(int) + rng.integers(-30, 31, other.shape), 0, 255).astype(np.uint8)]
    write_bin(path, images, labels)


def write_ijbc(root) -> None:
    """An IJB-C release (1:1 pairs, 1:N galleries and probes, loose crops): 6 subjects x 3 templates."""
    rng = np.random.default_rng(5)
    templates, medias, subject = [], [], {}
    for s in range(6):
        for k in range(3):
            t = 10 * s + k + 1
            subject[t] = s
            for _ in range(int(rng.integers(1, 3))):
                templates.append(t)
                medias.append(len(medias) + 1)
    ts = sorted(subject)
    pairs = [(a, b, int(subject[a] == subject[b])) for i, a in enumerate(ts) for b in ts[i + 1:]]
    write_ijb_release(root, "ijbc", templates, medias, pairs, write_images=True, image_size=(112, 112))
    rows = {"G1": [], "G2": [], "probe": []}
    for t, s in subject.items():
        dest = ("G1" if s < 3 else "G2") if t % 10 == 1 else "probe"
        rows[dest].append((t, s, f"img/{t}.jpg"))
    for g in ("G1", "G2"):
        write_1n_csv(root / "meta" / f"ijbc_1N_gallery_{g}.csv", rows[g])
    write_1n_csv(root / "meta" / "ijbc_1N_probe_mixed.csv", rows["probe"])
