"""Bootstrap intervals wired into every protocol family, the shared verification-scoring path, and the per-pair /
per-search arrays kept for paired comparisons.

Fixtures are tiny datasets in the real formats (tests/writers.py, tests/writers_ijb.py). Interval bounds are
checked against the point estimate, the documented unit, seeding, and -- where the protocol builds its own
replicates (1:N means over galleries, MegaFace by identity) -- against replicates recomputed here by explicit loops.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from writers import tiny_face, write_bin, write_image, write_lfw
from writers_fixtures import N_SUBJECTS, ijb_fixture, noisy_identity_embeddings
from writers_ijb import kface_path, write_kface_root, write_megaface_root

from fr_bench.metrics.uncertainty import bootstrap_tar_at_far, draw_unit_weights
from fr_bench.protocols import load_protocol
from fr_bench.protocols.scoring import far_name

N_BOOT = 40
INTERVAL_KEYS = {"low", "high", "level", "unit", "n_boot", "method"}


def _quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


def check_intervals(result, expected_units: dict[str, str], level: float = 0.9):
    """Every interval well-formed and holding its point; the listed metrics carry their documented unit."""
    assert result.intervals, "no intervals"
    for key, iv in result.intervals.items():
        assert set(iv) == INTERVAL_KEYS, key
        assert iv["level"] == level and iv["n_boot"] == N_BOOT and iv["method"] == "percentile bootstrap"
        point = result.metrics[key]
        assert np.isfinite(point), key
        assert iv["low"] <= point + 1e-12 and point <= iv["high"] + 1e-12, (key, iv, point)
    for key, unit in expected_units.items():
        assert result.intervals[key]["unit"] == unit, key


def check_correct(result):
    """``correct`` reproduces each fold's accuracy from integer counts."""
    folds, correct = result.scores.pairs.folds, result.scores.pairs.correct
    accs = result.details["accuracy_folds"]["accuracies"]
    for f, acc in enumerate(accs):
        in_fold = folds == f
        assert int(correct[in_fold].sum()) == round(acc * in_fold.sum())
        assert correct[in_fold].mean() == pytest.approx(acc, abs=1e-15)
    assert correct.mean() == pytest.approx(result.metrics["accuracy"] if len(accs) == 1 else
                                           np.average(accs, weights=np.bincount(folds)), abs=1e-12)


def check_roc_keys(roc):
    assert set(roc) == {"far", "tar", "threshold", "downsampled_from"}
    assert roc["far"][0] == 0 and roc["far"][-1] == 1 and roc["tar"][-1] == 1 and roc["threshold"][0] == np.inf
    assert np.all(np.diff(roc["far"]) >= 0)


# --------------------------------------------------------------------------------------------------- pair sets


@pytest.fixture(scope="module")
def lfw_tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("lfw")
    write_lfw(root, names=("Alice_A", "Bob_B", "Carol_C", "Dan_D", "Eve_E", "Fay_F"), n_images=4, per_fold=30)
    p = load_protocol("lfw", root, aligned=True, expected_pairs=None)
    ids = [k.split("/")[1] for k in p.images.keys()]
    return p, ids, noisy_identity_embeddings(ids)


@pytest.fixture(scope="module")
def lfw_pack(tmp_path_factory):
    root = tmp_path_factory.mktemp("lfwbin")
    labels = np.tile(np.repeat([True, False], 30), 10)
    faces = [tiny_face(i) for i in range(2)]
    write_bin(root / "lfw.bin", [faces[i % 2] for i in range(2 * labels.size)], labels)
    p = load_protocol("lfw", root, expected_pairs=None)
    rng = np.random.default_rng(1)
    emb = rng.normal(size=(2 * labels.size, 8))
    emb[1::2][labels] = emb[0::2][labels] + 1.2 * rng.normal(size=(int(labels.sum()), 8))  # genuine pairs closer
    return p, emb


def test_lfw_tree_resamples_subjects_and_pairs(lfw_tree):
    p, ids, emb = lfw_tree
    np.testing.assert_array_equal(p.identities, ids)  # read from the official tree
    r = p.evaluate(emb, ci=0.9, n_boot=N_BOOT, seed=3)
    check_intervals(r, {"accuracy": "pair", "tar@far=1e-2": "subject", "eer": "subject"})
    assert "tar@far=1e-3" not in r.intervals  # 300 impostors cannot resolve it: NaN, flagged, no interval
    check_correct(r)
    check_roc_keys(r.details["roc"])
    # the subject interval is the metric engine's bootstrap with the identities of each pair side
    names = np.array(ids)
    direct = bootstrap_tar_at_far(r.scores.pairs.scores.astype(np.float64), p.labels, names[p.pairs[:, 0]],
                                  names[p.pairs[:, 1]], fars=(1e-2,), convention="nearest", n_boot=N_BOOT, level=0.9,
                                  seed=3)[1e-2]
    assert r.metrics["tar@far=1e-2"] == pytest.approx(direct.point, abs=1e-6)
    assert (r.intervals["tar@far=1e-2"]["low"], r.intervals["tar@far=1e-2"]["high"]) == pytest.approx(
        (direct.low, direct.high), abs=1e-6)
    # the unit codes: one per identity, same on both sides of a genuine pair
    a, b = r.scores.pairs.unit_a, r.scores.pairs.unit_b
    assert a.dtype == np.int32 and np.array_equal(a == b, p.labels) and np.unique(np.r_[a, b]).size == 6


def test_pack_resamples_pairs_and_folds(lfw_pack):
    p, emb = lfw_pack
    assert p.identities is None
    r = p.evaluate(emb, ci=0.9, n_boot=N_BOOT)
    check_intervals(r, {"accuracy": "pair", "tar@far=1e-2": "pair", "eer": "pair"})
    np.testing.assert_array_equal(r.scores.pairs.unit_a, np.arange(600))
    folds = p.evaluate(emb, ci=0.9, n_boot=N_BOOT, accuracy_unit="fold")
    assert folds.intervals["accuracy"]["unit"] == "fold" and any("coarse" in f for f in folds.flags)
    # a fold bootstrap draws whole folds: every replicate is a mean of 10 fold accuracies, so its bounds lie
    # within the range of the fold accuracies
    accs = folds.details["accuracy_folds"]["accuracies"]
    assert accs.min() <= folds.intervals["accuracy"]["low"] <= folds.intervals["accuracy"]["high"] <= accs.max()


@pytest.mark.parametrize("convention", ["kfold-grid", "kfold-exact", "kfold-youden", "kfold-angular",
                                        "best-threshold"])
def test_correct_reproduces_fold_accuracies(lfw_tree, convention):
    p, _, emb = lfw_tree
    r = p.evaluate(emb, conventions={"accuracy": convention})
    check_correct(r)
    assert r.scores.pairs.folds.dtype == np.int32 and r.scores.pairs.correct.dtype == bool
    if convention == "best-threshold":
        assert set(r.scores.pairs.folds.tolist()) == {0}


def test_ci_none_adds_nothing_and_seeds_repeat(lfw_tree):
    p, _, emb = lfw_tree
    plain = p.evaluate(emb)
    assert plain.intervals == {}
    with_ci = p.evaluate(emb, ci=0.9, n_boot=N_BOOT, seed=5)
    assert with_ci.metrics == plain.metrics and with_ci.operating_points == plain.operating_points
    assert with_ci.flags == plain.flags  # LFW's units are subjects: nothing to warn about
    assert p.evaluate(emb, ci=0.9, n_boot=N_BOOT, seed=5).intervals == with_ci.intervals
    other = p.evaluate(emb, ci=0.9, n_boot=N_BOOT, seed=6).intervals
    assert any(other[k] != with_ci.intervals[k] for k in other)
    assert plain.scores.pairs.folds is not None and plain.scores.pairs.correct is not None
    assert plain.scores.pairs.extra == {} and plain.scores.searches == {}
    # the units do not depend on the model
    again = p.evaluate(noisy_identity_embeddings(list(p.identities), seed=9))
    np.testing.assert_array_equal(again.scores.pairs.unit_a, plain.scores.pairs.unit_a)


def test_folder_tree_identities(tmp_path):
    for k in range(4):
        for n in range(4):
            write_image(tmp_path / f"id{k}" / f"img{n}.png", tiny_face(k * 10 + n))
    p = load_protocol("folder", tmp_path)
    np.testing.assert_array_equal(p.identities, [k.split("/")[0] for k in p.images.keys()])
    r = p.evaluate(noisy_identity_embeddings(list(p.identities), noise=2.0), ci=0.9, n_boot=N_BOOT)
    check_intervals(r, {"accuracy": "pair", "eer": "subject"})


def test_demo_intervals_include_rank1():
    p = load_protocol("demo", None)
    emb = noisy_identity_embeddings(list(p.identities), dim=16, noise=2.5, seed=2)
    r = p.evaluate(emb, ci=0.9, n_boot=N_BOOT)
    check_intervals(r, {"accuracy": "pair", "eer": "subject", "rank1": "subject", "tar@far=1e-2": "subject"})
    check_correct(r)
    rank1 = r.scores.searches["rank1"]
    assert rank1.successes.mean() == r.metrics["rank1"] and rank1.unit.dtype == np.int32 and rank1.per_search
    assert p.evaluate(emb).intervals == {}


# -------------------------------------------------------------------------------------------------------- IJB


def test_ijb_1to1_without_subjects_resamples_templates(tmp_path):
    fx, _, emb = ijb_fixture(tmp_path / "IJBC", with_csvs=False)
    p = load_protocol("ijbc", fx.root, check_counts=False)
    r = _quiet(p.evaluate, emb, ci=0.9, n_boot=N_BOOT)
    check_intervals(r, {"eer": "template", "tar@far=1e-1": "template"})
    assert any("likely too narrow" in f for f in r.flags)
    assert not any(k.startswith("tar@far=1e-3") for k in r.intervals)  # 405 impostor pairs: unresolvable
    check_roc_keys(r.details["roc"])
    np.testing.assert_array_equal(r.scores.pairs.unit_a == r.scores.pairs.unit_b, np.zeros(len(fx.pairs), bool))
    assert _quiet(p.evaluate, emb).intervals == {}


def test_ijb_1to1_with_subjects(tmp_path):
    fx, subj, emb = ijb_fixture(tmp_path / "IJBC", with_csvs=True)
    p = load_protocol("ijbc", fx.root, check_counts=False)
    r = _quiet(p.evaluate, emb, ci=0.9, n_boot=N_BOOT, seed=1)
    check_intervals(r, {"eer": "subject", "tar@far=1e-1": "subject"})
    assert not any("too narrow" in f for f in r.flags)
    sa = np.array([subj[t] for t in fx.pairs[:, 0]])
    sb = np.array([subj[t] for t in fx.pairs[:, 1]])
    np.testing.assert_array_equal(r.scores.pairs.unit_a, sa)  # subjects 0..9 are their own dense codes
    np.testing.assert_array_equal(r.scores.pairs.unit_b, sb)
    direct = _quiet(bootstrap_tar_at_far, r.scores.pairs.scores.astype(np.float64), fx.pairs[:, 2], sa, sb, fars=(0.1,),
                    convention="nearest", n_boot=N_BOOT, level=0.9, seed=1)[0.1]
    assert (r.intervals["tar@far=1e-1"]["low"], r.intervals["tar@far=1e-1"]["high"]) == pytest.approx(
        (direct.low, direct.high))
    pairs = r.scores.pairs
    assert (pairs.scores.dtype, pairs.labels.dtype, pairs.unit_a.dtype, pairs.unit_b.dtype) == (
        np.float32, bool, np.int32, np.int32)
    assert pairs.unit_name == "subject"
    assert {k: v.dtype for k, v in pairs.extra.items()} == {
        "template_a": np.int32, "template_b": np.int32, "subject_a": np.int32, "subject_b": np.int32}


def test_ijb_1n_intervals_by_subject(tmp_path):
    fx, subj, emb = ijb_fixture(tmp_path / "IJBC", with_csvs=True)
    p = load_protocol("ijbc_1n", fx.root, check_counts=False)
    r = _quiet(p.evaluate, emb, ci=0.9, n_boot=N_BOOT, seed=4)
    resolvable = {"tpir@fpir=1e-1", "G1/tpir@fpir=1e-1", "G2/tpir@fpir=1e-1"}
    check_intervals(r, {k: "subject" for k in ["rank1", "rank5", "G1/rank1", "G2/rank10", *resolvable]})
    assert {k for k in r.intervals if "tpir" in k} == resolvable  # 10 non-mated searches cannot resolve 1e-2
    # per-search arrays reproduce rank-1
    for g in ("G1", "G2"):
        hits, mated = r.scores.searches[f"{g}/rank1"].successes, r.scores.searches[f"{g}/rank1"].trials
        assert hits.sum() / mated.sum() == pytest.approx(r.metrics[f"{g}/rank1"])
    # the mean's interval by explicit replicates: the same subject draw for both galleries, per-gallery rank-1 as
    # weighted correct / weighted mated searches, averaged
    unit = r.scores.searches["G1/rank1"].unit
    np.testing.assert_array_equal(unit, p.probe_subjects)  # subjects 0..9 are their own codes
    w = draw_unit_weights(N_SUBJECTS, N_BOOT, seed=4)
    reps = np.zeros(N_BOOT)
    for g in ("G1", "G2"):
        hits, mated = r.scores.searches[f"{g}/rank1"].successes, r.scores.searches[f"{g}/rank1"].trials
        for b in range(N_BOOT):
            reps[b] += sum(w[b, unit[i]] * hits[i] for i in range(len(unit))) / \
                sum(w[b, unit[i]] * mated[i] for i in range(len(unit))) / 2
    low, high = np.quantile(reps, [0.05, 0.95])
    assert (r.intervals["rank1"]["low"], r.intervals["rank1"]["high"]) == pytest.approx((low, high))
    # a gallery's TPIR interval equals the metric engine's own subject bootstrap of that gallery's search
    from fr_bench.metrics.identification import OpenSetSearch
    from fr_bench.metrics.uncertainty import bootstrap_tpir_at_fpir

    g1 = r.scores.searches["G1/rank1"]
    search = OpenSetSearch(g1.trials.astype(bool), g1.extra["mate_rank"].astype(np.int64),
                           g1.extra["mate_score"].astype(np.float64), g1.extra["top_score"].astype(np.float64))
    direct = bootstrap_tpir_at_fpir(search, unit, fpirs=(0.1,), n_boot=N_BOOT, level=0.9, seed=4)[0.1]
    assert (r.intervals["G1/tpir@fpir=1e-1"]["low"], r.intervals["G1/tpir@fpir=1e-1"]["high"]) == pytest.approx(
        (direct.low, direct.high), abs=1e-6)
    assert _quiet(p.evaluate, emb).intervals == {}
    # the per-search arrays survive the runner's HDF5 score store as they are
    from fr_bench.results import load_scores, save_scores

    save_scores(tmp_path / "scores", {"k": 1}, r.scores)
    back = load_scores(tmp_path / "scores", {"k": 1})
    assert back is not None and back.pairs is None and set(back.searches) == set(r.scores.searches)
    for metric, s in r.scores.searches.items():
        for name in ("successes", "trials", "unit"):
            np.testing.assert_array_equal(getattr(back.searches[metric], name), getattr(s, name))
        for k, v in s.extra.items():
            np.testing.assert_array_equal(back.searches[metric].extra[k], v)
            assert back.searches[metric].extra[k].dtype == v.dtype
    for k, v in r.scores.extra.items():
        np.testing.assert_array_equal(back.extra[k], v)


def test_ijb_1n_merged_rank_intervals(tmp_path):
    fx, subj, emb = ijb_fixture(tmp_path / "IJBC", with_csvs=True)
    p = load_protocol("ijbc_1n", fx.root, check_counts=False)
    r = _quiet(p.evaluate, emb, conventions={"1n": "merged-galleries"}, ci=0.9, n_boot=N_BOOT)
    check_intervals(r, {"rank1": "subject", "rank10": "subject"})
    assert not any(k.startswith("merged_rate") for k in r.intervals) and any("no interval" in f for f in r.flags)
    assert r.scores.searches["rank1"].rate == pytest.approx(r.metrics["rank1"])


# -------------------------------------------------------------------------------------------- MegaFace, K-FACE


def test_megaface_rank1_by_identity(tmp_path):
    ids = ["Ann"] * 4 + ["Bob"] * 3 + ["Cy"] * 5 + ["Di"] * 3
    write_megaface_root(tmp_path, ids, 30, sizes=(100,), write_images=False)
    p = load_protocol("megaface", tmp_path, distractors=100, check_counts=False, cleaned=False)
    rng = np.random.default_rng(0)
    codes = np.unique(ids, return_inverse=True)[1]
    emb = np.concatenate([rng.normal(size=(4, 8))[codes] + 0.9 * rng.normal(size=(len(ids), 8)),
                          rng.normal(size=(30, 8))])
    r = _quiet(p.evaluate, emb, ci=0.9, n_boot=N_BOOT, seed=2)
    check_intervals(r, {"rank1": "identity"})
    assert set(r.intervals) == {"rank1"} and any("tar@far: no interval" in f for f in r.flags)
    succ, trials = r.scores.searches["rank1"].successes, r.scores.searches["rank1"].trials
    assert succ.sum() / trials.sum() == pytest.approx(r.metrics["rank1"])
    np.testing.assert_array_equal(trials, [12, 6, 20, 6])  # ordered (query, mate) pairs per identity
    w = draw_unit_weights(4, N_BOOT, seed=2)
    reps = [(w[b] * succ).sum() / (w[b] * trials).sum() for b in range(N_BOOT)]
    assert (r.intervals["rank1"]["low"], r.intervals["rank1"]["high"]) == pytest.approx(
        tuple(np.quantile(reps, [0.05, 0.95])))
    assert _quiet(p.evaluate, emb).intervals == {}


def test_kface_by_identity(tmp_path):
    people = [f"1908{k:04d}" for k in range(6)]
    rng = np.random.default_rng(0)

    def pairs(n):
        out = []
        for _ in range(n):
            i = people[rng.integers(6)]
            out.append((kface_path(i, 1, 1, 1, int(rng.integers(1, 21))),
                        kface_path(i, 2, 2, 2, int(rng.integers(1, 21))), 1))
            i, j = rng.choice(6, 2, replace=False)
            out.append((kface_path(people[i], 1, 1, 1, int(rng.integers(1, 21))),
                        kface_path(people[j], 3, 2, 3, int(rng.integers(1, 21))), 0))
        return out

    write_kface_root(tmp_path, {"Q1": pairs(30), "Q2": pairs(25)}, write_images=False)
    p = load_protocol("kface", tmp_path, lists=("Q1", "Q2"), check_counts=False)
    emb = noisy_identity_embeddings([k.split("/")[0] for k in p.images.keys()], noise=1.2)
    r = _quiet(p.evaluate, emb, ci=0.9, n_boot=N_BOOT)
    check_intervals(r, {"Q1/tar@far=1e-1": "identity", "Q2/eer": "identity", "Q1/accuracy": "pair"})
    assert not any(k.endswith(f"tar@far={far_name(1e-3)}") for k in r.intervals)  # 30 impostors: unresolvable
    for q in ("Q1", "Q2"):
        check_roc_keys(r.details[f"{q}/roc"])
        mine = r.scores.pairs.extra["list"] == r.details["lists"].index(q)
        assert r.scores.pairs.correct[mine].mean() == pytest.approx(r.metrics[f"{q}/accuracy"])
    names = np.array([k.split("/")[0] for k in p.images.keys()])
    ra, rb = p.rows["Q1"]
    q1 = r.scores.pairs.extra["list"] == 0
    np.testing.assert_array_equal(r.scores.pairs.unit_a[q1] == r.scores.pairs.unit_b[q1], names[ra] == names[rb])
    assert _quiet(p.evaluate, emb).intervals == {}
