"""``frbench compare`` on the demo, IJB 1:N and MegaFace families, from typed score records filed in HDF5.

The paired rank-1 bootstrap must resample the unit the protocol recorded (subjects, identities): before the typed
records, compare looked for an array named ``unit`` that no protocol wrote and silently resampled searches.
Expected intervals are computed here by hand from the records (per-unit counts, the shared unit draw).
"""

from __future__ import annotations

import warnings

import h5py
import numpy as np
import pytest
from writers_fixtures import ijb_fixture, noisy_identity_embeddings
from writers_ijb import write_megaface_root

from fr_bench.comparison import ComparisonError, compare_records
from fr_bench.metrics.uncertainty import draw_unit_weights
from fr_bench.protocols import load_protocol
from fr_bench.results import StoredResult, save_scores
from fr_bench.results.scores import LAYOUT

N_BOOT, SEED, LEVEL = 60, 3, 0.9


def _stored(tmp_path, model: str, protocol: str, result) -> StoredResult:
    path = save_scores(tmp_path / "cache", {"model": model, "protocol": protocol}, result.scores)
    return StoredResult(model={"name": model}, protocol={"name": protocol, "data": {"combined": "same-data"}},
                        result=result, scores_file=str(path))


def _evaluate(p, emb):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return p.evaluate(emb)


def _pair_of_results(tmp_path, p, emb_a, emb_b):
    rec_a = _stored(tmp_path, "A", p.name, _evaluate(p, emb_a))
    rec_b = _stored(tmp_path, "B", p.name, _evaluate(p, emb_b))
    return rec_a, rec_b, compare_records(rec_a, rec_b, n_boot=N_BOOT, seed=SEED, level=LEVEL)


def _by_hand(succ_a, succ_b, trials, units):
    """Percentile interval of rate_B - rate_A resampling the ``units`` (codes 0..U-1) that hold a trial (a unit
    without any -- a subject with no mated search in this gallery -- is not part of this rate's population), in
    code order, with the shared draw."""
    n_units = int(units.max()) + 1
    t = np.bincount(units, weights=trials, minlength=n_units)
    present = t > 0
    sa = np.bincount(units, weights=succ_a, minlength=n_units)[present]
    sb = np.bincount(units, weights=succ_b, minlength=n_units)[present]
    t = t[present]
    w = draw_unit_weights(int(present.sum()), N_BOOT, seed=SEED).astype(np.float64)
    reps = (w @ (sb - sa)) / (w @ t)
    return tuple(np.quantile(reps, [(1 - LEVEL) / 2, (1 + LEVEL) / 2]))


def _row(rows, metric):
    found = [r for r in rows if r["metric"] == metric]
    assert len(found) == 1, [r["metric"] for r in rows]
    return found[0]


def test_demo_rank1_is_resampled_by_subject_and_pairs_by_their_unit(tmp_path):
    p = load_protocol("demo", None)
    ids = list(p.identities)
    rec_a, rec_b, rows = _pair_of_results(tmp_path, p, noisy_identity_embeddings(ids, noise=2.5, seed=1),
                                          noisy_identity_embeddings(ids, noise=2.5, seed=2))
    row = _row(rows, "rank1")
    hit_a = rec_a.result.scores.searches["rank1"].successes
    hit_b = rec_b.result.scores.searches["rank1"].successes
    assert row["a"] == pytest.approx(rec_a.result.metrics["rank1"]) and row["b"] == rec_b.result.metrics["rank1"]
    assert row["diff"] == pytest.approx(hit_b.mean() - hit_a.mean())
    probe_people = np.unique(p.identities[p.probes], return_inverse=True)[1]
    assert (row["low"], row["high"]) == pytest.approx(_by_hand(hit_a, hit_b, np.ones(hit_a.size), probe_people))
    assert "by subject" in row["test"] and row["n"] == 50
    b = int(np.sum((hit_a == 1) & (hit_b == 0)))
    assert f"b={b}," in row["test"]
    # the pair metrics: TAR rows name the pair record's unit, accuracy gets McNemar
    tar = _row(rows, "tar@far=1e-2")
    assert "by subject" in tar["test"] and tar["diff"] == pytest.approx(
        rec_b.result.metrics["tar@far=1e-2"] - rec_a.result.metrics["tar@far=1e-2"])
    acc = _row(rows, "accuracy (pairs classified right)")
    ca, cb = rec_a.result.scores.pairs.correct, rec_b.result.scores.pairs.correct
    assert acc["diff"] == pytest.approx(cb.mean() - ca.mean()) and "McNemar" in acc["test"]


def test_ijb_1n_compares_each_gallery_by_subject(tmp_path):
    fx, _, emb = ijb_fixture(tmp_path / "IJBC", with_csvs=True)
    p = load_protocol("ijbc_1n", fx.root, check_counts=False)
    other = emb + 0.8 * np.random.default_rng(5).normal(size=emb.shape).astype(np.float32)
    rec_a, rec_b, rows = _pair_of_results(tmp_path, p, emb, other)
    for g in ("G1", "G2"):
        row = _row(rows, f"{g}/rank1")
        sa, sb = rec_a.result.scores.searches[f"{g}/rank1"], rec_b.result.scores.searches[f"{g}/rank1"]
        assert row["a"] == pytest.approx(rec_a.result.metrics[f"{g}/rank1"])
        assert row["diff"] == pytest.approx(rec_b.result.metrics[f"{g}/rank1"] - rec_a.result.metrics[f"{g}/rank1"])
        assert row["n"] == int(sa.trials.sum()) < len(sa)  # only mated searches count
        np.testing.assert_array_equal(sa.unit, p.probe_subjects)  # subjects 0..9 are their own codes
        assert (row["low"], row["high"]) == pytest.approx(_by_hand(sa.successes, sb.successes, sa.trials, sa.unit))
        assert "by subject" in row["test"]


def test_megaface_rank1_is_compared_by_identity_from_counts(tmp_path):
    ids = ["Ann"] * 4 + ["Bob"] * 3 + ["Cy"] * 5 + ["Di"] * 3
    write_megaface_root(tmp_path, ids, 30, sizes=(100,), write_images=False)
    p = load_protocol("megaface", tmp_path, distractors=100, check_counts=False, cleaned=False)
    dis = np.random.default_rng(0).normal(size=(30, 8))
    emb_a = np.concatenate([noisy_identity_embeddings(ids, noise=1.0, seed=1), dis])
    emb_b = np.concatenate([noisy_identity_embeddings(ids, noise=1.0, seed=2), dis])
    rec_a, rec_b, rows = _pair_of_results(tmp_path, p, emb_a, emb_b)
    row = _row(rows, "rank1")
    sa, sb = rec_a.result.scores.searches["rank1"], rec_b.result.scores.searches["rank1"]
    np.testing.assert_array_equal(sa.trials, [12, 6, 20, 6])
    assert row["diff"] == pytest.approx(rec_b.result.metrics["rank1"] - rec_a.result.metrics["rank1"])
    assert (row["low"], row["high"]) == pytest.approx(_by_hand(sa.successes, sb.successes, sa.trials, sa.unit))
    assert "by identity" in row["test"] and "McNemar" not in row["test"]  # counts do not pair query by query


def _garbage(path):
    open(path, "wb").write(b"\x89HDF\r\n\x1a\n" + b"\x00" * 40)


def _member_missing(path):
    with h5py.File(path, "a") as f:
        del f["pairs/labels"]


def _old_flat_layout(path):
    with h5py.File(path, "w") as f:
        f["scores"] = np.zeros(3, np.float32)
        f["labels"] = np.zeros(3, bool)


@pytest.mark.parametrize("damage", [_garbage, _member_missing, _old_flat_layout])
def test_a_corrupt_scores_file_is_a_clear_error_naming_it(tmp_path, damage):
    p = load_protocol("demo", None)
    emb = noisy_identity_embeddings(list(p.identities), noise=2.0)
    rec_a = _stored(tmp_path, "A", p.name, _evaluate(p, emb))
    rec_b = _stored(tmp_path, "B", p.name, _evaluate(p, emb * 1.5))
    damage(rec_b.scores_file)
    with pytest.raises(ComparisonError, match="scores file") as info:
        compare_records(rec_a, rec_b, n_boot=N_BOOT)
    assert rec_b.scores_file in str(info.value)
    if damage is _old_flat_layout:
        assert LAYOUT in str(info.value)
