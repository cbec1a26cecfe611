"""MegaFace challenge 1 (FaceScrub probes vs MegaFace distractors): identification rank-1 and TAR@FAR=1e-6.

Expected layout under ``root`` (the devkit's template lists next to aligned images, as in insightface's MegaFace
test pack)::

    templatelists/facescrub_features_list.json            {"path": [...], "id": [...]}   probe subset, 80 ids
    templatelists/megaface_features_list.json_<size>_1    {"path": [...]}                size in 10 .. 1000000
    facescrub_images/<path>                               aligned 112x112 crops (paths as in the JSON list)
    megaface_images/<path>                                aligned 112x112 crops
    facescrub_noises.txt, megaface_noises.txt             the "cleaned" protocol's noise lists

Images must be pre-aligned 112x112 crops (``aligned=True``, the default and only supported mode): MegaFace's JSON
sidecars (``<image>.json``: ``bounding_box`` and a ``landmarks`` dict keyed by point number) do not pin which
points are the five ArcFace points, so alignment from them is not implemented; align beforehand.

Embeddings (``protocol.images`` order): the probes (FaceScrub list order, after cleaning), then the distractors
(distractor list order, after cleaning).

Cleaning (``cleaned=True`` / ``cleaning=...``; ``conventions["megaface_cleaning"]`` names it):

* ``remove-listed`` (default; the cleaned protocol): images whose file name appears in ``facescrub_noises.txt`` /
  ``megaface_noises.txt`` are removed. Entries are matched on the file name (last path component), as insightface's
  ``remove_noises.py`` does; ``#`` lines are comments; a tab-separated line contributes its second field.
* ``none``: the raw lists.
* ``arcface-devkit-variant``: the variant shipped with ArcFace's evaluation code: nothing is removed; each listed
  probe's feature is replaced by its identity's centre (sum of the identity's unlisted unit features, plus uniform
  jitter in [-0.001, 0.001] from ``seed``, renormalised); every feature gets one extra dimension, 0 for probes and
  unlisted distractors and 100 for listed distractors (after unit normalisation), which pushes them away.

Intervals (``ci``): ``rank1`` resamples probe IDENTITIES (percentile bootstrap of correct queries over queries per
identity: a FaceScrub identity's queries share its images). ``tar@far`` gets none (flagged): the 10^6 x 3,530
impostor scores are never stored, only the top ones, so they cannot be resampled by identity.
``result.scores.searches["rank1"]`` (one entry per probe identity with a query): ``unit`` (int32 identity code, the
index in the sorted FaceScrub names of the list), ``successes`` and ``trials`` (correct queries / queries); the
trials are fixed by the probe list, so two models' rank-1 difference can be bootstrapped per identity.

Features computed elsewhere (``features=DIR``): devkit feature files ``DIR/facescrub/<path><feature_suffix>`` and
``DIR/megaface/<path><feature_suffix>`` (the folders insightface's ``gen_megaface.py`` writes), read by
:func:`read_devkit_feature`; :meth:`MegaFace.devkit_embeddings` returns them in ``images`` order for ``evaluate``.
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fr_bench.protocols.base import (
    ImageSource,
    Protocol,
    ProtocolError,
    ProtocolResult,
    file_error,
    read_text_lines,
    require_root,
)
from fr_bench.protocols.array_images import ArrayImageSource
from fr_bench.protocols.columns import check_count
from fr_bench.protocols.scoring import far_name, interval_dict, op_dict
from fr_bench.results import ScoreRecords, SearchScores
from fr_bench.similarity import get_score

DISTRACTOR_SIZES = (10, 100, 1000, 10000, 100000, 1000000)
CLEANINGS = ("remove-listed", "none", "arcface-devkit-variant")
CV_32F = 5


def read_devkit_feature(path: str | os.PathLike) -> np.ndarray:
    """One MegaFace devkit feature file as a float32 vector.

    Little-endian int32 header then ``rows * cols`` float32 values, ``cols == 1`` (a column vector). Two headers are
    accepted, told apart by the file size: ``rows, cols, 4, 5`` (16 bytes: element size then OpenCV type code
    ``CV_32F``; what insightface's ``gen_megaface.py`` writes and ``remove_noises.py`` reads) and ``rows, cols, 5``
    (12 bytes, the layout docs/FORMATS.md describes). Anything else raises naming the file.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise file_error(path, None, "devkit feature file not found") from None
    if len(data) < 12:
        raise file_error(path, None, f"too short for a devkit feature header ({len(data)} bytes)")
    rows, cols = struct.unpack_from("<2i", data, 0)
    if rows <= 0 or cols != 1:
        raise file_error(path, None, f"expected a column vector (rows > 0, cols == 1), header says rows={rows}, "
                         f"cols={cols}")
    payload = 4 * rows * cols
    if len(data) == 16 + payload:
        elem_size, type_code = struct.unpack_from("<2i", data, 8)
        if elem_size != 4 or type_code != CV_32F:
            raise file_error(path, None, f"expected element size 4 and type code {CV_32F} (CV_32F), found "
                             f"{elem_size} and {type_code}")
        offset = 16
    elif len(data) == 12 + payload:
        (type_code,) = struct.unpack_from("<i", data, 8)
        if type_code != CV_32F:
            raise file_error(path, None, f"expected type code {CV_32F} (CV_32F), found {type_code}")
        offset = 12
    else:
        raise file_error(path, None, f"size {len(data)} bytes fits neither a 16- nor a 12-byte header followed by "
                         f"{rows}x{cols} float32 values")
    vec = np.frombuffer(data, dtype="<f4", count=rows * cols, offset=offset).astype(np.float32)
    if not np.isfinite(vec).all():
        raise file_error(path, None, "contains NaN or inf values")
    return vec


def _read_list(path: Path, keys: Sequence[str]) -> dict[str, list]:
    if not path.is_file():
        raise file_error(path, None, "devkit template list not found")
    try:
        data = json.loads("\n".join(read_text_lines(path, "devkit template list")))
    except json.JSONDecodeError as exc:
        raise file_error(path, exc.lineno, f"invalid JSON: {exc.msg}") from None
    if not isinstance(data, dict) or any(not isinstance(data.get(k), list) for k in keys):
        found = list(data) if isinstance(data, dict) else type(data).__name__
        raise file_error(path, None, f"expected a JSON object with list(s) {list(keys)}, found {found}")
    lengths = {k: len(data[k]) for k in keys}
    if len(set(lengths.values())) > 1:
        raise file_error(path, None, f"lists differ in length: {lengths}")
    return {k: [str(v) for v in data[k]] for k in keys}


def read_noise_list(path: Path) -> set[str]:
    """File names listed in a MegaFace/FaceScrub noise list (``#`` comments skipped; tab lines: second field)."""
    if not path.is_file():
        raise file_error(path, None, "noise list not found (needed by the cleaned protocol; cleaned=False skips it)")
    names = set()
    for line in read_text_lines(path, "noise list"):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split("\t")
        names.add(os.path.basename(fields[1] if len(fields) > 1 else fields[0]))
    return names


def _basenames(paths: np.ndarray) -> np.ndarray:
    return np.array([p.rsplit("/", 1)[-1] for p in paths.tolist()], dtype=str)


class MegaFace(Protocol):
    """MegaFace challenge 1 with one distractor-set size."""

    needs_cosine_score = True  # probes are searched among the distractors by cosine (fr_bench.metrics)

    def __init__(self, root: Path, spec: Mapping[str, Any], *, distractors: int, cleaning: str, aligned: bool,
                 features: str | os.PathLike | None, feature_suffix: str, check_counts: bool,
                 device: str | None, seed: int) -> None:
        super().__init__(spec)
        self.name = spec.get("name", "megaface")
        if distractors not in DISTRACTOR_SIZES:
            raise ValueError(f"distractors must be one of {DISTRACTOR_SIZES}, got {distractors!r}")
        if cleaning not in CLEANINGS:
            raise ValueError(f"unknown cleaning {cleaning!r}; choose one of {', '.join(CLEANINGS)}")
        if not aligned:
            raise ProtocolError("megaface: only pre-aligned 112x112 crops are supported (aligned=True): the landmark "
                                "layout of MegaFace's JSON sidecars is not pinned down; align the images beforehand")
        self.root, self.distractors, self.cleaning = root, distractors, cleaning
        self.device, self.seed = device, seed
        files = spec.get("files", {})
        probe_list = root / files.get("probe_list", "templatelists/facescrub_features_list.json")
        dis_list = root / files.get("distractor_list", "templatelists/megaface_features_list.json_{size}_1").format(
            size=distractors)
        probes = _read_list(probe_list, ("path", "id"))
        probe_paths = np.array(probes["path"], dtype=str)
        probe_ids = np.array(probes["id"], dtype=str)
        counts = spec.get("counts", {})
        check_count(probe_list, "probe images (the challenge's FaceScrub subset)", len(probe_paths),
                    counts.get("probes"), check_counts)
        check_count(probe_list, "probe identities", len(set(probe_ids)), counts.get("identities"), check_counts)
        dis_paths = np.array(_read_list(dis_list, ("path",))["path"], dtype=str)
        self.details: dict[str, Any] = {"probe_list": str(probe_list), "distractor_list": str(dis_list),
                                        "probes_listed": len(probe_paths), "distractors_listed": len(dis_paths)}
        probe_noisy = np.zeros(len(probe_paths), bool)
        dis_noisy = np.zeros(len(dis_paths), bool)
        self._files = [str(probe_list), str(dis_list)]
        if cleaning != "none":
            fs_path = root / files.get("facescrub_noises", "facescrub_noises.txt")
            mf_path = root / files.get("megaface_noises", "megaface_noises.txt")
            fs_noise, mf_noise = read_noise_list(fs_path), read_noise_list(mf_path)
            probe_noisy = np.isin(_basenames(probe_paths), list(fs_noise))
            dis_noisy = np.isin(_basenames(dis_paths), list(mf_noise))
            self._files += [str(fs_path), str(mf_path)]
            self.details.update({"probes_listed_noisy": int(probe_noisy.sum()),
                                 "distractors_listed_noisy": int(dis_noisy.sum())})
        if cleaning == "remove-listed":
            keep_p, keep_d = ~probe_noisy, ~dis_noisy
            probe_paths, probe_ids, probe_noisy = probe_paths[keep_p], probe_ids[keep_p], probe_noisy[keep_p]
            dis_paths, dis_noisy = dis_paths[keep_d], dis_noisy[keep_d]
        self.probe_paths, self.probe_names, self.distractor_paths = probe_paths, probe_ids, dis_paths
        self.probe_noisy, self.distractor_noisy = probe_noisy, dis_noisy
        _, self.probe_codes = np.unique(probe_ids, return_inverse=True)
        fs_dir = files.get("probe_images", "facescrub_images")
        mf_dir = files.get("distractor_images", "megaface_images")
        rel = np.concatenate([np.char.add(fs_dir + "/", probe_paths), np.char.add(mf_dir + "/", dis_paths)])
        self._images = ArrayImageSource(root, rel, None, unaligned_hint="MegaFace images must be aligned beforehand")
        self.features_dir = None if features is None else Path(features)
        self.feature_suffix = feature_suffix
        self._files += [str(root / fs_dir), str(root / mf_dir)]

    @property
    def images(self) -> ImageSource:
        return self._images

    @property
    def n_probes(self) -> int:
        return len(self.probe_paths)

    @property
    def data_files(self) -> Sequence[str]:
        return list(self._files)

    @property
    def conventions(self) -> dict[str, list[str]]:
        return {"megaface_cleaning": [self.cleaning], **self.shared_conventions()}

    def devkit_embeddings(self) -> np.ndarray:
        """Embeddings read from the devkit feature files under ``features=DIR``, in :attr:`images` order."""
        if self.features_dir is None:
            raise ProtocolError("megaface: no features=DIR was given at load")
        paths = [self.features_dir / "facescrub" / f"{p}{self.feature_suffix}" for p in self.probe_paths.tolist()]
        paths += [self.features_dir / "megaface" / f"{p}{self.feature_suffix}" for p in self.distractor_paths.tolist()]
        first = read_devkit_feature(paths[0])
        out = np.empty((len(paths), first.shape[0]), dtype=np.float32)
        out[0] = first
        for i in range(1, len(paths)):
            v = read_devkit_feature(paths[i])
            if v.shape != first.shape:
                raise file_error(paths[i], None, f"dimension {v.shape[0]} differs from {first.shape[0]} in {paths[0]}")
            out[i] = v
        return out

    def _arcface_variant(self, probe: np.ndarray, dis: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """ArcFace evaluation code's handling of the noise lists (see the module docstring)."""
        p = probe / np.linalg.norm(probe, axis=1, keepdims=True)
        d = dis / np.linalg.norm(dis, axis=1, keepdims=True)
        clean = ~self.probe_noisy
        centres = np.zeros((self.probe_codes.max() + 1, p.shape[1]))
        np.add.at(centres, self.probe_codes[clean], p[clean])
        rng = np.random.default_rng(self.seed)
        noisy = np.flatnonzero(self.probe_noisy)
        if noisy.size:
            c = centres[self.probe_codes[noisy]] + rng.uniform(-0.001, 0.001, size=(noisy.size, p.shape[1]))
            p[noisy] = c / np.linalg.norm(c, axis=1, keepdims=True)
        p_ext = np.concatenate([p, np.zeros((len(p), 1))], axis=1).astype(np.float32)
        d_ext = np.concatenate([d, np.where(self.distractor_noisy, 100.0, 0.0)[:, None]], axis=1).astype(np.float32)
        return p_ext, d_ext

    def evaluate(self, embeddings: np.ndarray, norms: np.ndarray | None = None, *,
                 conventions: Mapping[str, str] | None = None, ci: float | None = None, n_boot: int = 1000,
                 seed: int = 0) -> ProtocolResult:
        from fr_bench.metrics import distractor_metrics

        given = (conventions or {}).get("megaface_cleaning", self.cleaning)
        if given != self.cleaning:
            raise ValueError(f"megaface: cleaning is fixed at load (cleaning={self.cleaning!r}), got {given!r}")
        chosen = self.choose(conventions)
        emb = self.check_embeddings(embeddings)
        probe, dis = emb[:self.n_probes], emb[self.n_probes:]
        if self.cleaning == "arcface-devkit-variant":  # its own normalisation and extra dimension (module docstring)
            probe, dis = self._arcface_variant(probe, dis)
        else:
            prepare = get_score(chosen["score"]).prepare
            probe, dis = prepare(probe), prepare(dis)
        fars = tuple(self.spec.get("metrics", {}).get("fars", (1e-6,)))
        rank1, ver = distractor_metrics(probe, self.probe_codes, dis, fars=fars, device=self.device)  # one pass
        result = ProtocolResult(protocol=self.name, metrics={"rank1": rank1.rank1},
                                conventions={"megaface_cleaning": self.cleaning,
                                             "rank1": "devkit: each probe queries with one other image of its "
                                                      "identity added to the distractors; success iff it outranks all",
                                             "tar": "strict (accept iff score >= threshold)",
                                             "score": chosen["score"], "flip": chosen["flip"]})
        result.details["score"] = self.describe_score(chosen)
        for far, point in ver.items():
            name = f"tar@far={far_name(far)}"
            d = op_dict(point)
            result.metrics[name] = d["tar"]
            result.operating_points[name] = d
            if not d["resolvable"]:
                result.flags.append(f"{name}: not resolvable with {d['n_impostor']:,} impostor pairs; NaN")
        result.details.update(self.details)
        result.details["counts"] = {"probes": self.n_probes, "identities": int(self.probe_codes.max()) + 1,
                                    "distractors": len(self.distractor_paths), "queries": rank1.n_queries,
                                    "correct": rank1.n_correct, "distractor_set": self.distractors}
        if self.distractors != 1000000:
            result.flags.append(f"distractor set of {self.distractors:,}: the headline MegaFace figure uses 1M")
        result.scores = ScoreRecords(searches={"rank1": SearchScores(
            rank1.correct_per_identity, rank1.queries_per_identity, rank1.identities, "identity")})
        if ci is not None:
            from fr_bench.metrics.uncertainty import bootstrap_rate

            result.intervals["rank1"] = interval_dict(bootstrap_rate(
                rank1.correct_per_identity, rank1.queries_per_identity, n_boot=n_boot, level=ci, seed=seed,
                unit="identity"))
            result.flags.append("tar@far: no interval (the impostor scores are never stored: only the top ones "
                                "are kept, so they cannot be resampled by identity)")
        return result


def load_megaface(root: str | os.PathLike | None, spec: Mapping[str, Any], *, distractors: int = 1000000,
                  cleaned: bool = True, cleaning: str | None = None, aligned: bool = True,
                  features: str | os.PathLike | None = None, feature_suffix: str = "_feat.bin",
                  check_counts: bool = True, device: str | None = None, seed: int = 0) -> MegaFace:
    """MegaFace challenge 1 over ``root`` (layout in the module docstring).

    ``cleaned`` picks "remove-listed" (True) or "none" (False); ``cleaning`` names any of ``CLEANINGS`` explicitly
    (wins over ``cleaned``). ``device`` is passed to the metric engine (e.g. "cuda").
    """
    name = cleaning if cleaning is not None else ("remove-listed" if cleaned else "none")
    return MegaFace(require_root(root, spec, folder=True), spec, distractors=distractors, cleaning=name,
                    aligned=aligned, features=features, feature_suffix=feature_suffix, check_counts=check_counts,
                    device=device, seed=seed)
