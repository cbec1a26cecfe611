"""Identification metrics against brute force on tiny data (full score matrices, explicit loops)."""

from __future__ import annotations

import heapq
import math

import numpy as np
import pytest
import torch

from fr_bench.metrics import (
    OperatingPoint,
    allowed_count,
    cmc,
    distractor_metrics,
    distractor_rank1,
    distractor_verification,
    ijb_1n_merged,
    ijb_1n_nist,
    mate_ranks,
    open_set_search,
    tpir_at_fpir,
)


def _unit(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _clustered(rng, ids, centres, noise=0.8):
    return centres[ids] + noise * rng.standard_normal((len(ids), centres.shape[1]))


def _brute_rank(scores_row, mate_mask):
    """Rank of the best mate in a full sort of the gallery (no ties in continuous random data)."""
    order = np.argsort(-scores_row, kind="stable")
    return int(np.flatnonzero(mate_mask[order])[0]) + 1


@pytest.mark.parametrize("block_size", [1, 3, 4096])
def test_cmc_matches_full_sort(block_size):
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((12, 8))
    gid = np.repeat(np.arange(12), 2)  # two gallery entries per identity
    pid = rng.integers(0, 12, 40)
    g = _clustered(rng, gid, centres) * rng.uniform(0.5, 3, (len(gid), 1))  # norms must not matter
    p = _clustered(rng, pid, centres)
    s = _unit(p) @ _unit(g).T
    ranks = np.array([_brute_rank(s[i], gid == pid[i]) for i in range(len(pid))])
    assert 1 < ranks.max()  # the data are not trivially separable
    got = cmc(p, pid, g, gid, ranks=(1, 2, 5, 24), block_size=block_size)
    for k in (1, 2, 5, 24):
        assert got[k] == np.sum(ranks <= k) / len(pid)
    np.testing.assert_array_equal(mate_ranks(p, pid, g, gid, block_size=block_size), ranks)


def test_cmc_torch_and_string_ids_agree_with_numpy():
    rng = np.random.default_rng(1)
    centres = rng.standard_normal((5, 6))
    gid = np.arange(5)
    pid = rng.integers(0, 5, 30)
    g, p = _clustered(rng, gid, centres), _clustered(rng, pid, centres)
    expected = cmc(p, pid, g, gid, ranks=(1, 3))
    names = np.array(["ann", "bob", "cy", "dee", "eve"])
    assert cmc(torch.from_numpy(p).float(), names[pid], torch.from_numpy(g).float(), names[gid], ranks=(1, 3)) == expected


def test_cmc_ties_favour_the_mate_and_strictly_greater_non_mates_count():
    g = np.array([[1.0, 0.0], [1.0, 0.0], [0.6, 0.8], [0.8, 0.6]])
    gid = np.array([0, 1, 2, 3])
    p = np.array([[1.0, 0.0], [0.8, 0.6]])
    # probe 0: mate id 0 ties with non-mate id 1 -> rank 1; probe 1 (id 2, score .96) is beaten by id 3 (score 1)
    # and by nothing else (ids 0, 1 score .8)
    pid = np.array([0, 2])
    np.testing.assert_array_equal(mate_ranks(p, pid, g, gid), [1, 2])


def test_cmc_rejects_probe_without_mate_and_zero_vectors():
    g = np.eye(3)
    with pytest.raises(ValueError, match="no gallery entry"):
        cmc(np.eye(3), [0, 1, 7], g, [0, 1, 2])
    with pytest.raises(ValueError, match="zero vectors"):
        cmc(np.zeros((1, 3)), [0], g, [0, 1, 2])
    with pytest.raises(ValueError, match="dimensions differ"):
        cmc(np.ones((1, 2)), [0], g, [0, 1, 2])


def test_allowed_count_is_exact_decimal():
    assert allowed_count(0.29, 100) == 29  # 0.29 * 100 == 28.999999999999996 in floats
    assert allowed_count(1e-3, 300000) == 300
    assert allowed_count(1e-3, 999) == 0


def _brute_open_set(p, pid, g, gid, fpir, rank):
    s = _unit(p) @ _unit(g).T
    mated = np.isin(pid, gid)
    top_nm = s[~mated].max(axis=1)
    # most permissive threshold among candidates whose alarm fraction (score > t) stays <= fpir, by enumeration
    candidates = np.concatenate([[-np.inf], np.unique(top_nm)])
    ok = [t for t in candidates if np.sum(top_nm > t) <= fpir * len(top_nm) + 1e-12]
    t = min(ok)
    hits, accepted = 0, list(top_nm[top_nm > t])
    for i in np.flatnonzero(mated):
        mate = gid == pid[i]
        r = _brute_rank(s[i], mate)
        hits += r <= rank and s[i][mate].max() > t
        if r <= rank and s[i][mate].max() > t:
            accepted.append(s[i][mate].max())
    # reported threshold: the lowest score raising an alarm (alarm iff score >= threshold)
    return hits / mated.sum(), np.sum(top_nm > t) / len(top_nm), min(accepted, default=np.inf)


@pytest.mark.parametrize("rank", [1, 3])
def test_tpir_at_fpir_matches_enumeration(rank):
    rng = np.random.default_rng(2)
    centres = rng.standard_normal((60, 8))
    gid = np.arange(30)  # identities 30..59 are not enrolled
    pid = rng.integers(0, 60, 400)
    g, p = _clustered(rng, gid, centres), _clustered(rng, pid, centres)
    got = tpir_at_fpir(p, pid, g, gid, fpirs=(0.01, 0.05, 0.3), rank=rank, block_size=37)
    for f, point in got.items():
        tpir, fpir, t = _brute_open_set(p, pid, g, gid, f, rank)
        assert point.resolvable
        assert isinstance(point, OperatingPoint)  # the one operating-point type: tar = TPIR, far = FPIR
        assert point.tar == pytest.approx(tpir, abs=0) and point.far == pytest.approx(fpir, abs=0)
        assert point.threshold == pytest.approx(t, rel=1e-12)
        assert point.n_genuine + point.n_impostor == 400 and point.far <= f


def test_tpir_unresolvable_target_is_nan_with_warning():
    rng = np.random.default_rng(3)
    g = rng.standard_normal((5, 4))
    p = rng.standard_normal((60, 4))
    pid = np.r_[np.arange(5), np.full(55, 99)]  # 55 non-mated searches cannot resolve 1e-2
    with pytest.warns(UserWarning, match="not resolvable"):
        got = tpir_at_fpir(p, pid, g, np.arange(5), fpirs=(1e-2, 0.1))
    assert math.isnan(got[1e-2].tar) and not got[1e-2].resolvable and got[1e-2].flag
    assert got[0.1].resolvable and got[0.1].far <= 0.1


def test_open_set_search_fields():
    g = np.array([[1.0, 0.0], [0.0, 1.0]])
    s = open_set_search(np.array([[1.0, 0.1], [0.6, 0.8]]), [0, 5], g, [0, 1])
    np.testing.assert_array_equal(s.mated, [True, False])
    np.testing.assert_array_equal(s.mate_rank, [1, 0])
    assert math.isnan(s.mate_score[1]) and s.top_score[1] == pytest.approx(0.8)


def test_ijb_1n_nist_searches_each_gallery_and_averages():
    rng = np.random.default_rng(4)
    centres = rng.standard_normal((40, 8))
    g1_ids, g2_ids = np.arange(0, 20), np.arange(20, 40)
    pid = rng.integers(0, 40, 300)
    p = _clustered(rng, pid, centres)
    g1, g2 = _clustered(rng, g1_ids, centres), _clustered(rng, g2_ids, centres)
    res = ijb_1n_nist(p, pid, {"G1": (g1, g1_ids), "G2": (g2, g2_ids)}, fpirs=(0.05, 0.2), ranks=(1, 5))
    for name, (g, gi) in {"G1": (g1, g1_ids), "G2": (g2, g2_ids)}.items():
        m = np.isin(pid, gi)
        assert res["galleries"][name]["cmc"] == cmc(p[m], pid[m], g, gi, ranks=(1, 5))
        assert res["galleries"][name]["tpir"] == tpir_at_fpir(p, pid, g, gi, fpirs=(0.05, 0.2))
    for f in (0.05, 0.2):
        assert res["mean"]["tpir"][f] == pytest.approx(
            (res["galleries"]["G1"]["tpir"][f].tar + res["galleries"]["G2"]["tpir"][f].tar) / 2)


@pytest.mark.parametrize("n_probes", [250, 100])  # 100 * 0.07 is 7.000000000000001 in floats: the script takes 8
def test_ijb_1n_merged_reproduces_the_insightface_procedure(n_probes):
    rng = np.random.default_rng(5)
    centres = rng.standard_normal((30, 8))
    gid1, gid2 = np.arange(15), np.arange(15, 30)
    pid = rng.integers(0, 30, n_probes)
    p = _clustered(rng, pid, centres, noise=1.2)
    g1, g2 = _clustered(rng, gid1, centres), _clustered(rng, gid2, centres)
    res = ijb_1n_merged(p, pid, {"G1": (g1, gid1), "G2": (g2, gid2)}, fars=(0.01, 0.07, 0.1), ranks=(1, 5),
                        block_size=16)
    # the shortcut written out with the full similarity matrix
    q, gal = _unit(p), _unit(np.vstack([g1, g2]))
    gids = np.r_[gid1, gid2]
    sim = q @ gal.T
    mask = np.array([np.flatnonzero(gids == i)[0] for i in pid])
    top_inds = np.argsort(-sim, axis=1)
    for k in (1, 5):
        assert res["cmc"][k] == np.mean([mask[i] in top_inds[i, :k] for i in range(len(pid))])
    pos = sim[np.arange(len(pid)), mask].copy()
    sim[np.arange(len(pid)), mask] = -2.0
    neg = sim[sim > -2.0]
    for far in (0.01, 0.07, 0.1):
        kk = math.ceil(len(pid) * far)
        th = heapq.nlargest(kk, neg)[kk - 1]
        assert res["threshold"][far] == pytest.approx(th, rel=1e-12)
        assert res["rate_at_far"][far] == np.sum(pos > th) / len(pid)


def test_ijb_1n_merged_needs_one_entry_per_identity():
    with pytest.raises(ValueError, match="one gallery entry per identity"):
        ijb_1n_merged(np.eye(2), [0, 1], {"G1": (np.eye(2), [0, 0]), "G2": (np.eye(2), [1, 2])})


def _megaface_data(seed):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((6, 10))
    pid = np.r_[np.repeat(np.arange(5), [4, 3, 1, 5, 2]), []].astype(int)
    p = _clustered(rng, pid, centres, noise=1.0).astype(np.float32)
    d = rng.standard_normal((301, 10)).astype(np.float32)
    return p, pid, d


@pytest.mark.parametrize("block_size", [7, 65536])
def test_distractor_rank1_matches_explicit_galleries(block_size):
    p, pid, d = _megaface_data(6)
    pn, dn = _unit(p.astype(np.float64)), _unit(d.astype(np.float64))
    n_q = n_ok = 0
    for i in range(len(pid)):
        for j in range(len(pid)):
            if i != j and pid[i] == pid[j]:
                gallery = np.vstack([dn, pn[j]])  # the mate is the last gallery entry
                s = gallery @ pn[i]
                n_q += 1
                n_ok += s[-1] > s[:-1].max()
    res = distractor_rank1(p, pid, d, block_size=block_size)
    assert (res.n_queries, res.n_correct, res.n_distractors) == (n_q, n_ok, 301)
    assert res.rank1 == n_ok / n_q and 0 < n_ok < n_q


def test_distractor_rank1_tie_is_a_failure():
    p = np.array([[1.0, 0.0], [1.0, 0.0]])
    d = np.array([[2.0, 0.0], [0.0, 1.0]])  # a distractor with exactly the mate's direction
    res = distractor_rank1(p, [0, 0], d)
    assert (res.n_queries, res.n_correct) == (2, 0)


def test_distractor_verification_matches_full_impostor_list():
    p, pid, d = _megaface_data(7)
    p, d = p.astype(np.float64), d.astype(np.float64)
    pn, dn = _unit(p), _unit(d)
    imp = np.sort((pn @ dn.T).ravel())[::-1]
    gen = np.array([pn[i] @ pn[j] for i in range(len(pid)) for j in range(i + 1, len(pid)) if pid[i] == pid[j]])
    fars = (1e-3, 1e-2, 0.1)
    got = distractor_verification(p, pid, d, fars=fars, block_size=13)
    for f in fars:
        k = int(np.floor(round(f * imp.size, 9)))
        th = imp[k]
        pt = got[f]
        assert pt.n_impostor == imp.size and pt.n_genuine == gen.size
        lowest_accepted = np.r_[imp[imp > th], gen[gen > th]].min()  # accept iff score >= threshold
        assert pt.threshold == pytest.approx(lowest_accepted, rel=1e-12)
        assert pt.tar == np.sum(gen > th) / gen.size
        assert pt.far == np.sum(imp > th) / imp.size and pt.far <= f
    for block in (1, 64):  # few scores kept: the per-row lower bound of the k-th largest is used
        other = distractor_verification(p, pid, d, fars=(1e-3,), block_size=block)[1e-3]
        # BLAS may round a dot product differently for another block shape (1 ulp): counts must not move
        assert (other.tar, other.far, other.n_genuine, other.n_impostor) == (
            got[1e-3].tar, got[1e-3].far, got[1e-3].n_genuine, got[1e-3].n_impostor)
        assert other.threshold == pytest.approx(got[1e-3].threshold, rel=1e-12)
    with pytest.warns(UserWarning, match="not resolvable"):
        assert math.isnan(distractor_verification(p, pid, d, fars=(1e-6,))[1e-6].tar)


def test_distractor_rank1_per_identity_counts_add_up():
    p, pid, d = _megaface_data(8)
    res = distractor_rank1(p, pid, d)
    sizes = {i: int(np.sum(pid == i)) for i in res.identities}
    assert [int(q) for q in res.queries_per_identity] == [sizes[i] * (sizes[i] - 1) for i in res.identities]
    assert res.correct_per_identity.sum() == res.n_correct and 2 not in res.identities  # one image: no query


def test_ijb_1n_nist_reuses_given_searches():
    rng = np.random.default_rng(11)
    centres = rng.standard_normal((20, 8))
    gid1, gid2 = np.arange(10), np.arange(10, 20)
    pid = rng.integers(0, 25, 120)  # ids 20..24 are in neither gallery: non-mated everywhere
    p = _clustered(rng, pid % 20, centres, noise=1.0)
    galleries = {"G1": (_clustered(rng, gid1, centres), gid1), "G2": (_clustered(rng, gid2, centres), gid2)}
    searches = {g: open_set_search(p, pid, f, i) for g, (f, i) in galleries.items()}
    fresh = ijb_1n_nist(p, pid, galleries, fpirs=(0.1,), ranks=(1, 5))
    reused = ijb_1n_nist(p, pid, galleries, fpirs=(0.1,), ranks=(1, 5), searches=searches)
    assert reused == fresh


def test_distractor_metrics_one_pass_serves_both_and_reads_the_full_roc_strictly():
    p, pid, d = _megaface_data(9)
    rank1, points = distractor_metrics(p, pid, d, fars=(1e-3, 1e-2), block_size=50)
    assert rank1 == distractor_rank1(p, pid, d, block_size=50)
    assert rank1.correct_per_identity.tolist() == distractor_rank1(p, pid, d).correct_per_identity.tolist()
    assert points == distractor_verification(p, pid, d, fars=(1e-3, 1e-2), block_size=50)
    # independent: the verification kernel over the full (genuine + every impostor) score list, strict reading
    from fr_bench.metrics import operating_points

    pn, dn = _unit(p.astype(np.float64)), _unit(d.astype(np.float64))
    imp = (pn @ dn.T).ravel()
    gen = np.array([pn[i] @ pn[j] for i in range(len(pid)) for j in range(i + 1, len(pid)) if pid[i] == pid[j]])
    ref = operating_points(np.r_[gen, imp], np.r_[np.ones(gen.size), np.zeros(imp.size)], fars=(1e-3, 1e-2),
                           convention="strict")
    for f, pt in points.items():
        assert (pt.tar, pt.far, pt.convention) == (ref[f].tar, ref[f].far, "strict")
        assert pt.threshold == pytest.approx(ref[f].threshold, rel=1e-6)  # float32 scores vs float64 here


def test_non_binary_mated_flags_are_refused():
    from fr_bench.metrics import OpenSetSearch, bootstrap_tpir_at_fpir

    search = OpenSetSearch(np.array([0.3, 0.9, 0.1]), np.array([1, 0, 2]), np.array([0.5, np.nan, 0.2]),
                           np.array([0.5, 0.9, 0.3]))  # a score array where the mated flags belong
    with pytest.raises(ValueError, match="were two arguments swapped"):
        bootstrap_tpir_at_fpir(search, np.arange(3), n_boot=5)
