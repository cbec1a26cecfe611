"""Fixture writers in the real on-disk formats: IJB-B/C meta files and 1:N CSVs, MegaFace lists, noise lists and
devkit feature files, K-FACE trees and pair lists. Tests build tiny datasets with these; nothing is downloaded."""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

#: ArcFace 112x112 template (docs/FORMATS.md), used to place landmarks so that alignment works on the fixture images.
ARCFACE_112 = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655],
                        [70.7299, 92.2041]], dtype=np.float32)


def write_jpeg(path: Path, size: tuple[int, int], seed: int) -> None:
    """A small random-colour JPEG (``size`` = width, height)."""
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    base = rng.integers(0, 256, size=(1, 1, 3))
    noise = rng.integers(-20, 21, size=(size[1], size[0], 3))
    Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8)).save(path, quality=90)


# ------------------------------------------------------------------------------------------------------------ IJB


@dataclass
class IJBFixture:
    root: Path
    prefix: str
    names: np.ndarray
    templates: np.ndarray
    medias: np.ndarray
    landmarks: np.ndarray
    scores: np.ndarray
    pairs: np.ndarray  # (n, 3) template a, template b, label


def write_ijb_release(root: Path, prefix: str, image_templates: Sequence[int], image_medias: Sequence[int],
                      pairs: Sequence[tuple[int, int, int]], *, det_scores: Sequence[float] | None = None,
                      write_images: bool = False, image_size: tuple[int, int] = (128, 128),
                      seed: int = 0) -> IJBFixture:
    """Write ``root/meta/<prefix>_face_tid_mid.txt``, ``_name_5pts_score.txt``, ``_template_pair_label.txt`` (and
    ``root/loose_crop/<n>.jpg`` if ``write_images``). Image ``i`` is named ``<i+1>.jpg`` as in the release; its
    landmarks are the ArcFace template shifted by a few pixels (so alignment yields a sensible crop)."""
    rng = np.random.default_rng(seed)
    n = len(image_templates)
    names = np.array([f"{i + 1}.jpg" for i in range(n)])
    shift = rng.uniform(0, 8, size=(n, 1, 2)).astype(np.float32)
    landmarks = ARCFACE_112[None] + shift
    scores = (np.asarray(det_scores, dtype=np.float64) if det_scores is not None
              else np.round(rng.uniform(0.5, 1.0, size=n), 4))
    meta = root / "meta"
    meta.mkdir(parents=True, exist_ok=True)
    with open(meta / f"{prefix}_face_tid_mid.txt", "w") as f:
        for name, t, m in zip(names, image_templates, image_medias):
            f.write(f"{name} {t} {m}\n")
    with open(meta / f"{prefix}_name_5pts_score.txt", "w") as f:
        for name, lm, s in zip(names, landmarks, scores):
            f.write(name + " " + " ".join(f"{v:.4f}" for v in lm.reshape(-1)) + f" {s:.4f}\n")
    write_pairs(meta / f"{prefix}_template_pair_label.txt", pairs)
    if write_images:
        for i, name in enumerate(names):
            write_jpeg(root / "loose_crop" / name, image_size, seed + i)
    return IJBFixture(root, prefix, names, np.asarray(image_templates), np.asarray(image_medias),
                      landmarks.astype(np.float32), np.round(scores, 4).astype(np.float32),
                      np.asarray(pairs, dtype=np.int64).reshape(-1, 3))


def write_pairs(path: Path, pairs: Sequence[tuple[int, int, int]]) -> None:
    """``<template a> <template b> <label>`` per line."""
    with open(path, "w") as f:
        for a, b, y in pairs:
            f.write(f"{a} {b} {y}\n")


IJB_1N_HEADER = ("TEMPLATE_ID", "SUBJECT_ID", "FILENAME", "SIGHTING_ID", "FACE_X", "FACE_Y", "FACE_WIDTH",
                 "FACE_HEIGHT")


def write_1n_csv(path: Path, rows: Sequence[tuple[int, int, str]], header: Sequence[str] = IJB_1N_HEADER) -> None:
    """A 1:N CSV: header line, then one row per image ``TEMPLATE_ID,SUBJECT_ID,FILENAME`` (+ dummy extra columns)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        f.write(",".join(header) + "\n")
        for k, (t, s, fn) in enumerate(rows):
            values = {"TEMPLATE_ID": str(t), "SUBJECT_ID": str(s), "FILENAME": fn, "SIGHTING_ID": str(1000 + k),
                      "FACE_X": "10", "FACE_Y": "12", "FACE_WIDTH": "50", "FACE_HEIGHT": "60"}
            f.write(",".join(values.get(h, "0") for h in header) + "\n")


# -------------------------------------------------------------------------------------------------------- MegaFace


def write_devkit_feature(path: Path, vector: np.ndarray, *, header: str = "4i", rows: int | None = None,
                         cols: int = 1, type_code: int = 5, elem_size: int = 4) -> None:
    """A MegaFace devkit feature file: little-endian int32 header, then float32 values.

    ``header="4i"``: ``rows, cols, elem_size, type`` (what insightface's ``gen_megaface.py`` writes:
    ``(dim, 1, 4, 5)``); ``header="3i"``: ``rows, cols, type`` (the layout docs/FORMATS.md describes). ``rows``,
    ``cols``, ``type_code``, ``elem_size`` can be overridden to write invalid files for tests.
    """
    v = np.asarray(vector, dtype="<f4").reshape(-1)
    rows = len(v) if rows is None else rows
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        if header == "4i":
            f.write(struct.pack("<4i", rows, cols, elem_size, type_code))
        else:
            f.write(struct.pack("<3i", rows, cols, type_code))
        f.write(v.tobytes())


def write_megaface_root(root: Path, probe_ids: Sequence[str], n_distractors: int, *,
                        sizes: Sequence[int] = (10, 100, 1000), facescrub_noises: Sequence[str] = (),
                        megaface_noises: Sequence[str] = (), write_images: bool = True, seed: int = 0
                        ) -> tuple[list[str], list[str]]:
    """A MegaFace challenge-1 root (layout in fr_bench/protocols/megaface.py): aligned 112x112 JPEGs under
    ``facescrub_images/<Name>/<Name>_<k>.png``-style paths and ``megaface_images/<a>/<b>@N00/<k>_0.jpg``, the devkit
    lists ``templatelists/facescrub_features_list.json`` (``path``, ``id``) and
    ``templatelists/megaface_features_list.json_<size>_1`` (``path``; the first ``size`` distractors, capped at
    ``n_distractors``), and the noise lists. Returns (probe paths, distractor paths)."""
    probe_paths = [f"{pid}/{pid}_{k}.png" for k, pid in enumerate(probe_ids)]
    dis_paths = [f"{k % 7}/{k % 5}{k % 3}@N00/{1000 + k}_0.jpg" for k in range(n_distractors)]
    tl = root / "templatelists"
    tl.mkdir(parents=True, exist_ok=True)
    (tl / "facescrub_features_list.json").write_text(json.dumps({"path": probe_paths, "id": list(probe_ids)}))
    for size in sizes:
        (tl / f"megaface_features_list.json_{size}_1").write_text(json.dumps({"path": dis_paths[:size]}))
    (root / "facescrub_noises.txt").write_text("# noisy FaceScrub images\n" + "".join(
        f"{n}\n" for n in facescrub_noises))
    (root / "megaface_noises.txt").write_text("# noisy MegaFace images\n" + "".join(f"{n}\n" for n in megaface_noises))
    if write_images:
        for k, p in enumerate(probe_paths):
            write_jpeg(root / "facescrub_images" / p, (112, 112), seed + k)
        for k, p in enumerate(dis_paths):
            write_jpeg(root / "megaface_images" / p, (112, 112), seed + 10_000 + k)
    return probe_paths, dis_paths


# ---------------------------------------------------------------------------------------------------------- K-FACE


def kface_path(identity: str, s: int, lux: int, e: int, c: int) -> str:
    """``<ID>/S00s/L<lux>/E0e/C<c>.jpg``, the K-FACE layout."""
    return f"{identity}/S{s:03d}/L{lux}/E{e:02d}/C{c}.jpg"


def write_kface_root(root: Path, lists: Mapping[str, Sequence[tuple[str, str, int]]], *,
                     write_images: bool = True, seed: int = 0) -> None:
    """``root/kface.<Q>.txt`` pair lists (``pathA pathB label``) and 112x112 JPEG crops for every listed path."""
    root.mkdir(parents=True, exist_ok=True)
    paths: set[str] = set()
    for q, pairs in lists.items():
        with open(root / f"kface.{q}.txt", "w") as f:
            for a, b, y in pairs:
                f.write(f"{a} {b} {y}\n")
                paths.update((a, b))
    if write_images:
        for k, p in enumerate(sorted(paths)):
            write_jpeg(root / p, (112, 112), seed + k)
