"""Quality sources, per-pair quality of every 1:1 protocol, and the EDC the runner stores in a result (issue 13).

Every EDC in a result is checked against ``fr_bench.metrics.edc`` applied to pairwise qualities computed here by
brute force from the pair lists (files or fixture definitions), never from the protocol's own index arrays.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from embed_fixtures import TinyNet
from writers import tiny_face, write_bin, write_image
from writers_fixtures import ijb_fixture
from writers_ijb import kface_path, write_kface_root

from fr_bench import runner
from fr_bench.metrics import edc
from fr_bench.protocols import ProtocolError, load_protocol
from fr_bench.protocols.quality import (
    MAX_CURVE_POINTS,
    QUALITY_HELP,
    attach_edc,
    downsample_steps,
    image_quality,
    plan_quality,
)
from fr_bench.results import ProtocolResult, ScoreRecords, StoredResult
from fr_bench.results.scores import PairScores


def _rng_emb(n, seed=0, dim=8):
    return np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)


def _check_edc(result, pair_q, how="min"):
    """The stored EDC equals ``edc`` on the result's scores/labels and the brute-force pairwise qualities."""
    pairs = result.scores.pairs
    stored = result.details["edc"]
    assert stored["pair_quality"] == how and stored["convention"] == "iso"
    for error, start in (("fnm", 0.05), ("fm", 1e-3)):
        ref = edc(pairs.labels, pairs.scores, np.asarray(pair_q, dtype=np.float64), error=error,
                  starting_error=start, relative_to_best=True)
        got = stored[error]
        assert got["starting_error"] == start and got["discard_limit"] == pytest.approx(0.20)
        assert got["threshold"] == ref.threshold
        np.testing.assert_equal(result.metrics[f"edc_{error}_pauc"], ref.pauc)
        np.testing.assert_equal(got["pauc"], ref.pauc)
        np.testing.assert_equal(got["pauc_best"], ref.pauc_best)
        np.testing.assert_equal(got["pauc_relative"], ref.pauc_relative)
        if len(ref.discard_fractions) <= MAX_CURVE_POINTS:
            np.testing.assert_array_equal(got["discard_fractions"], ref.discard_fractions)
            np.testing.assert_array_equal(got["errors"], ref.errors)
            np.testing.assert_array_equal(got["best_errors"], ref.best_errors)
        assert got["downsampled_from"] == len(ref.discard_fractions)
        assert got["discard_fractions"][0] == 0.0
    assert "quality" not in result.conventions and stored["source"] not in result.conventions.values()


def _write_csv(path, rows, header="image,score"):
    path.write_text("\n".join([header, *[f"{k},{v}" for k, v in rows]]) + "\n")
    return path


# ------------------------------------------------------------------------------------------ .bin pack + CSV


@pytest.fixture
def binpack(tmp_path):
    """A 20-pair lfw.bin: pair i is images 2i and 2i+1 (the .bin layout), labels alternate."""
    faces = [tiny_face(i) for i in range(4)]
    labels = [True, False] * 10
    write_bin(tmp_path / "lfw.bin", [faces[i % 4] for i in range(40)], labels)
    return load_protocol("lfw", tmp_path, expected_pairs=None), np.array(labels)


def test_csv_source_on_a_bin_pack_matches_brute_force(binpack, tmp_path):
    p, labels = binpack
    keys = [f"lfw.bin#{i}" for i in range(40)]
    assert p.images.keys() == keys  # the documented key form of .bin images
    quality = np.random.default_rng(3).uniform(0, 1, 40).round(3)
    rows = list(zip(keys, quality))[::-1]  # order in the file does not matter
    path = _write_csv(tmp_path / "q.csv", rows)
    result = p.evaluate(_rng_emb(40))
    for how, rule in (("min", np.minimum), ("mean", lambda a, b: (a + b) / 2), ("product", np.multiply)):
        plan = plan_quality(p, str(path), None, how=how)
        attach_edc(result, plan)
        np.testing.assert_array_equal(result.scores.pairs.labels, labels)
        _check_edc(result, [rule(quality[2 * i], quality[2 * i + 1]) for i in range(20)], how)
    detail = result.details["edc"]["source_detail"]
    assert result.details["edc"]["source"] == "q.csv" and detail["file"] == "q.csv"
    assert detail["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("text, message", [
    ("", r"q\.csv: quality CSV is empty"),
    ("key,score\nlfw.bin#0,1\n", r"q\.csv:1: expected the header line 'image,score'"),
    ("image,score\nlfw.bin#0,1,2\n", r"q\.csv:2: expected 2 fields"),
    ("image,score\nlfw.bin#0,abc\nlfw.bin#1,nan\nlfw.bin#2,inf\n",
     r"q\.csv: 3 scores are not finite numbers: line 2: lfw\.bin#0 'abc', line 3: lfw\.bin#1 'nan', line 4"),
    ("image,score\nlfw.bin#0,1\nlfw.bin#0,2\n", r"q\.csv: 1 image keys are listed twice: lfw\.bin#0 \(lines 2 and 3\)"),
    ("image,score\n" + "".join(f"lfw.bin#{i},1\n" for i in range(40)) + "other.jpg,1\nx.jpg,2\n",
     r"q\.csv: 2 image keys are not images of the protocol .*: other\.jpg, x\.jpg"),
    ("image,score\n" + "".join(f"lfw.bin#{i},1\n" for i in range(33)),
     r"q\.csv: 7 images of the protocol have no quality score: lfw\.bin#33, lfw\.bin#34, lfw\.bin#35, "
     r"lfw\.bin#36, lfw\.bin#37, \.\.\. \(7 in all\)"),
])
def test_csv_errors_name_the_file_line_and_keys(binpack, tmp_path, text, message):
    p, _ = binpack
    path = tmp_path / "q.csv"
    path.write_text(text)
    with pytest.raises(ProtocolError, match=message):
        image_quality(p, str(path), None)


def test_csv_valid_file_reads_back_in_image_order(binpack, tmp_path):
    p, _ = binpack
    path = tmp_path / "q.csv"
    path.write_text("Image, Score\n\n" + "".join(f"lfw.bin#{i}, {i / 10}\n" for i in reversed(range(40))))
    q, detail = image_quality(p, str(path), None)
    np.testing.assert_allclose(q, np.arange(40) / 10)
    assert detail["kind"] == "file" and detail["images"] == 40


def test_unknown_source_and_missing_norms(binpack, tmp_path):
    p, _ = binpack
    with pytest.raises(ValueError, match=r"quality source '.*nope\.csv': not 'norm' or 'detector' and no such file"):
        image_quality(p, str(tmp_path / "nope.csv"), None)
    with pytest.raises(ValueError, match="needs a detector score per image.*IJB"):
        image_quality(p, "detector", None)
    with pytest.raises(ValueError, match="needs the feature norms"):
        image_quality(p, "norm", None)
    with pytest.raises(ValueError, match="3 feature norms for 40 images"):
        image_quality(p, "norm", np.ones(3))
    assert "norm" in QUALITY_HELP and "detector" in QUALITY_HELP and "image,score" in QUALITY_HELP


# --------------------------------------------------------------------------------------------------- IJB


def test_ijb_detector_source_and_template_mean_pairs(tmp_path):
    fx, subj, emb = ijb_fixture(tmp_path / "IJBC", with_csvs=False)
    p = load_protocol("ijbc", fx.root, check_counts=False)
    q, detail = image_quality(p, "detector", None)
    np.testing.assert_allclose(q, fx.scores, rtol=0, atol=1e-6)
    assert detail["kind"] == "detector"
    result = p.evaluate(emb)
    attach_edc(result, plan_quality(p, "detector", None))
    # brute force: a template's quality = mean of its images' detector scores; pair = min of its two templates'
    t_q = {t: np.mean([s for s, tt in zip(fx.scores.astype(np.float64), fx.templates) if tt == t]) for t in subj}
    _check_edc(result, [min(t_q[a], t_q[b]) for a, b, _ in fx.pairs])
    np.testing.assert_array_equal(result.scores.pairs.labels, fx.pairs[:, 2].astype(bool))
    assert result.details["edc"]["source"] == "detector"


def test_ijb_1n_has_no_verification_pairs(tmp_path):
    fx, _, _ = ijb_fixture(tmp_path / "IJBC", with_csvs=True)
    p = load_protocol("ijbc_1n", fx.root, check_counts=False)
    with pytest.raises(ValueError, match="ijbc_1n has no verification pairs: EDC needs 1:1 pairs"):
        plan_quality(p, "detector", None)


# ------------------------------------------------------------------------------------------------- K-FACE


def test_kface_lists_concatenated_in_order(tmp_path):
    ids = [f"1908{k:04d}" for k in range(4)]
    rng = np.random.default_rng(0)

    def pairs(n):
        return [(kface_path(ids[rng.integers(4)], 1, 1, 1, int(rng.integers(1, 6))),
                 kface_path(ids[rng.integers(4)], 2, 1, 1, int(rng.integers(1, 6))), int(k % 2)) for k in range(n)]

    lists = {"Q1": pairs(30), "Q2": pairs(25)}
    write_kface_root(tmp_path / "kf", lists, write_images=False)
    p = load_protocol("kface", tmp_path / "kf", lists=("Q2", "Q1"), check_counts=False)  # record order: Q2, Q1
    norms = rng.uniform(1, 2, len(p.images))
    by_key = dict(zip(p.images.keys(), norms))
    result = p.evaluate(_rng_emb(len(p.images)), norms)
    attach_edc(result, plan_quality(p, "norm", norms))
    expected = [min(by_key[a], by_key[b]) for q in ("Q2", "Q1") for a, b, _ in lists[q]]
    _check_edc(result, expected)


# --------------------------------------------------------------------------------------- downsampling


def test_downsample_keeps_exact_points_zero_and_the_limit():
    rng = np.random.default_rng(0)
    fractions = np.concatenate([[0.0], np.sort(rng.uniform(0, 1, 5000))])
    keep = downsample_steps(fractions, 0.2, 1000)
    assert len(keep) <= 1000 and keep[0] == 0 and keep[-1] == 5000
    assert np.all(np.diff(keep) > 0)
    j = np.flatnonzero(fractions <= 0.2)[-1]
    assert j in keep and j + 1 in keep
    np.testing.assert_array_equal(downsample_steps(fractions[:50], 0.2, 1000), np.arange(50))
    # half of the budget is spent on [0, limit]: dense where the pAUC is read
    assert (fractions[keep] <= 0.2).sum() >= 400


def test_large_curve_is_downsampled_with_exact_values():
    rng = np.random.default_rng(1)
    n = 6000
    labels = rng.random(n) < 0.3
    scores = np.where(labels, rng.normal(1, 1, n), rng.normal(-1, 1, n)).astype(np.float32)
    q = rng.permutation(n).astype(np.float64)  # all distinct: n + 1 curve points
    result = ProtocolResult(protocol="synthetic", metrics={})
    result.scores = ScoreRecords(pairs=PairScores(scores, labels, np.arange(n), np.arange(n)))
    from fr_bench.protocols.quality import QualityPlan

    attach_edc(result, QualityPlan("norm", {"kind": "norm"}, "min", q))
    assert result.details["edc"]["discard_over"] == "class"
    for error in ("fnm", "fm"):
        got = result.details["edc"][error]
        ref = edc(labels, scores, q, error=error, starting_error=got["starting_error"], relative_to_best=True)
        n_cls = int(labels.sum()) if error == "fnm" else int((~labels).sum())  # the class's pairs are discarded
        assert got["downsampled_from"] == n_cls + 1 and len(got["discard_fractions"]) <= MAX_CURVE_POINTS
        idx = np.searchsorted(ref.discard_fractions, got["discard_fractions"])
        np.testing.assert_array_equal(ref.discard_fractions[idx], got["discard_fractions"])
        np.testing.assert_array_equal(ref.errors[idx], got["errors"])
        np.testing.assert_array_equal(ref.best_errors[idx], got["best_errors"])
        j = int(np.searchsorted(ref.discard_fractions, 0.2, side="right")) - 1  # the steps either side of 0.2
        assert got["discard_fractions"][0] == 0 and set(ref.discard_fractions[j:j + 2]) <= set(got["discard_fractions"])
        assert got["pauc"] == ref.pauc


# ------------------------------------------------------------------------------------- runner, end to end


def _folder(root, bad=None):
    for person in ("ann", "bob", "cat", "dan"):
        for k in range(3):
            write_image(root / person / f"{k}.png", tiny_face(10 * ord(person[0]) + k))
    if bad:
        (root / bad).write_bytes(b"not an image")
    return root


def _kw(tmp_path):
    return dict(cache_dir=tmp_path / "cache", num_workers=0, progress=False, device="cpu", batch_size=8)


def test_runner_norm_on_demo_round_trips_json(tmp_path):
    from fr_bench.protocols.demo import DEMO_DATA

    ev = runner.evaluate_model(TinyNet(), "demo", out=tmp_path / "results", quality="norm", **_kw(tmp_path))
    keys = ev.protocol.images.keys()
    # the norm source is the norm of the (flip-summed) feature the extractor returned
    norms = dict(zip(keys, np.linalg.norm(ev.embeddings.features.astype(np.float64), axis=1)))
    pair_q, labels = [], []
    for line in (DEMO_DATA / "pairs.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            a, b, y = line.split()
            pair_q.append(min(norms["demo/" + a], norms["demo/" + b]))  # demo keys: demo/<Name>/<file>
            labels.append(y == "1")
    np.testing.assert_array_equal(ev.result.scores.pairs.labels, labels)
    _check_edc(ev.result, np.asarray(pair_q), "min")
    assert ev.result.conventions["flip"] == "sum"
    # JSON round trip through the results store
    back = StoredResult.from_json(ev.path.read_text())
    assert back.result.metrics["edc_fnm_pauc"] == pytest.approx(ev.result.metrics["edc_fnm_pauc"], rel=1e-12)
    stored, orig = back.result.details["edc"], ev.result.details["edc"]
    assert stored["source"] == "norm" and stored["source_detail"] == orig["source_detail"]
    for error in ("fnm", "fm"):
        for key in ("discard_fractions", "errors", "best_errors"):
            np.testing.assert_allclose(np.asarray(stored[error][key], dtype=float), orig[error][key], rtol=1e-12)
        for key in ("threshold", "pauc", "pauc_best", "pauc_relative", "downsampled_from"):
            assert stored[error][key] == pytest.approx(orig[error][key], rel=1e-12)


def test_runner_skipped_image_drops_its_pairs_from_the_edc_too(tmp_path):
    root = _folder(tmp_path / "faces", bad="bob/9.png")
    ev = runner.evaluate_model(TinyNet(), "folder", root, quality="norm", quality_how="mean", skip_bad_images=True,
                               **_kw(tmp_path))
    p = ev.protocol
    keys = p.images.keys()
    feats = ev.embeddings.features.astype(np.float64)
    ok = np.isfinite(feats).all(axis=1)
    assert not ok[keys.index("bob/9.png")]
    norms = np.linalg.norm(feats, axis=1)
    expected = [(norms[a] + norms[b]) / 2 for a, b in p.pairs.tolist() if ok[a] and ok[b]]
    assert len(expected) < len(p.pairs)
    _check_edc(ev.result, expected, "mean")


def test_runner_bad_source_fails_before_extracting(tmp_path):
    root = _folder(tmp_path / "faces")
    net = TinyNet()
    with pytest.raises(ValueError, match="folder: quality source 'detector' needs a detector score"):
        runner.evaluate_model(net, "folder", root, quality="detector", **_kw(tmp_path))
    bad = _write_csv(tmp_path / "bad.csv", [("ann/0.png", 1.0)])
    with pytest.raises(ProtocolError, match=r"bad\.csv: 11 images of the protocol have no quality score"):
        runner.evaluate_model(net, "folder", root, quality=str(bad), **_kw(tmp_path))
    with pytest.raises(ValueError, match="unknown rule 'max'"):
        runner.evaluate_model(net, "folder", root, quality="norm", quality_how="max", **_kw(tmp_path))
    fx, _, _ = ijb_fixture(tmp_path / "IJBC", with_csvs=True)  # no image files: must fail before reading any
    with pytest.raises(ValueError, match="ijbc_1n has no verification pairs: EDC needs 1:1 pairs"):
        runner.evaluate_model(net, "ijbc_1n", fx.root, quality="norm", protocol_options={"check_counts": False},
                              **_kw(tmp_path))
    assert net.rows_seen == 0  # nothing was embedded
    ev = runner.evaluate_model(TinyNet(), "folder", root, **_kw(tmp_path))
    assert "edc" not in ev.result.details and "edc_fnm_pauc" not in ev.result.metrics


def test_edc_metric_names_are_plain_non_rates_and_sortable():
    from fr_bench.metrics import names

    for name in ("edc_fnm_pauc", "edc_fm_pauc", "Q1/edc_fm_pauc"):
        parsed = names.parse(name)
        assert parsed is not None and not parsed.is_rate and not names.is_rate(name)
    ordered = sorted(["edc_fm_pauc", "xnorm", "edc_fnm_pauc", "accuracy", "zzz"], key=names.sort_key)
    assert ordered == ["accuracy", "xnorm", "edc_fnm_pauc", "edc_fm_pauc", "zzz"]
    for base in names.PLAIN_NAMES:  # every plain name has a table position (sort_key must not raise)
        names.sort_key(base)
