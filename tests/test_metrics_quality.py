"""EDC (fr_bench.metrics.quality) against hand-worked cases and independent naive re-computations."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fr_bench.metrics.quality import edc, pair_quality


# ---------------------------------------------------------------- independent references (written from the spec)
def naive_threshold(scores, labels, error, rate):
    """Brute force over every candidate threshold (each score and +inf): FNM: the highest one with
    #mated(score < t) <= floor(rate * n_mated); FM: the lowest one with #non-mated(score >= t) <= floor(rate * n_nm)."""
    cands = sorted(set(float(x) for x in scores)) + [math.inf]
    mated = [x for x, l in zip(scores, labels) if l == 1]
    non = [x for x, l in zip(scores, labels) if l == 0]
    if error == "fnm":
        k = round(rate * 10**9) * len(mated) // 10**9
        ok = [t for t in cands if sum(x < t for x in mated) <= k]
        return max(ok)
    k = round(rate * 10**9) * len(non) // 10**9
    ok = [t for t in cands if sum(x >= t for x in non) <= k]
    return min(ok)


def naive_iso(labels, scores, quality, error, rate):
    """Recompute the error from scratch after discarding every quality value <= each distinct quality."""
    t = naive_threshold(scores, labels, error, rate)
    n = len(scores)
    fr, er = [0.0], []
    levels = sorted(set(quality))

    def err(keep):
        if error == "fnm":
            cls = [scores[i] for i in keep if labels[i] == 1]
            bad = [x for x in cls if x < t]
        else:
            cls = [scores[i] for i in keep if labels[i] == 0]
            bad = [x for x in cls if x >= t]
        return len(bad) / len(cls) if cls else math.nan

    er.append(err(range(n)))
    for v in levels:
        keep = [i for i in range(n) if quality[i] > v]
        fr.append((n - len(keep)) / n)
        er.append(err(keep))
    return t, np.array(fr), np.array(er)


def naive_iso_class(labels, scores, quality, error, rate):
    """The class reading: keep only the counted class's pairs (mated for FNM, non-mated for FM), discard them by
    ascending quality (a whole tie group at once) and recount the error on what remains; fractions of the class."""
    t = naive_threshold(scores, labels, error, rate)
    want = 1 if error == "fnm" else 0
    cls = [(qv, x) for qv, x, lab in zip(quality, scores, labels) if lab == want]
    is_bad = (lambda x: x < t) if error == "fnm" else (lambda x: x >= t)
    fr, er = [], []
    for v in [None] + sorted(set(qv for qv, _ in cls)):
        kept = [x for qv, x in cls if v is None or qv > v]
        fr.append((len(cls) - len(kept)) / len(cls))
        er.append(sum(is_bad(x) for x in kept) / len(kept) if kept else math.nan)
    return t, np.array(fr), np.array(er)


def naive_step_area(fr, er, limit):
    area = 0.0
    for j in range(len(fr)):
        lo = fr[j]
        hi = fr[j + 1] if j + 1 < len(fr) else math.inf
        w = min(hi, limit) - lo
        if w > 0:
            area += er[j] * w
    return area


def naive_magface(labels, scores, quality):
    n = len(scores)
    order = sorted(range(n), key=lambda i: quality[i])  # Python sort is stable
    out = []
    for i in range(20):
        u = i * 0.05
        kept = order[int(u * n):]
        neg = sorted(math.acos(max(-1.0, min(1.0, scores[j]))) / math.pi for j in kept if labels[j] == 0)
        pos = [math.acos(max(-1.0, min(1.0, scores[j]))) / math.pi for j in kept if labels[j] == 1]
        t = neg[(len(neg) - 1) // 10 // 10 // 10]
        out.append(sum(d >= t for d in pos) / len(pos))
    return np.array(out)


def random_case(seed, n=300, n_q=25):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.4).astype(int)
    s = np.round(np.clip(np.where(y == 1, 0.45, 0.05) + rng.normal(0, 0.2, n), -1, 1), 2)  # rounded: score ties
    q = rng.integers(0, n_q, n).astype(float)  # quality ties
    return y, s, q


# ---------------------------------------------------------------- hand-worked cases
def test_hand_worked_fnm_ties_in_quality():
    # mated scores 0.1 .. 1.0 (10 pairs), 2 non-mated. rate 0.2 -> k = 2 -> threshold = 3rd smallest mated = 0.3,
    # false non-matches: 0.1, 0.2 (score < 0.3; 0.3 itself is a match).
    s = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 0.0, 0.05])
    y = np.array([1] * 10 + [0, 0])
    # qualities: pair 0.1 and 0.9 tie at the lowest value 1 -> discarded together; then the non-mated (q=2);
    # then everyone else at 5.
    q = np.array([1, 3, 5, 5, 5, 5, 5, 5, 1, 5, 2, 2], dtype=float)
    r = edc(y, s, q, starting_error=0.2, discard_limit=0.5, discard_over="all")
    assert r.threshold == 0.3 and r.discard_over == "all"
    np.testing.assert_allclose(r.discard_fractions, [0, 2 / 12, 4 / 12, 5 / 12, 1.0])
    # after q<=1: mated left 8, errors left {0.2} -> 1/8; after q<=2: same 1/8; after q<=3: 0/7; all gone: NaN
    np.testing.assert_allclose(r.errors[:4], [2 / 10, 1 / 8, 1 / 8, 0.0])
    assert np.isnan(r.errors[4])
    assert r.pauc == pytest.approx(0.2 * 2 / 12 + 1 / 8 * 2 / 12 + 1 / 8 * 1 / 12 + 0.0)
    # class reading (default): only the 10 mated pairs, qualities 1,3,5,5,5,5,5,5,1,5: q<=1 removes 2 (1/8 left),
    # q<=3 removes one more (0/7), q<=5 the rest (NaN)
    c = edc(y, s, q, starting_error=0.2, discard_limit=0.5)
    assert c.threshold == 0.3 and c.discard_over == "class"
    np.testing.assert_allclose(c.discard_fractions, [0, 2 / 10, 3 / 10, 1.0])
    np.testing.assert_allclose(c.errors[:3], [2 / 10, 1 / 8, 0.0])
    assert np.isnan(c.errors[3])
    assert c.pauc == pytest.approx(0.2 * 2 / 10 + 1 / 8 * 1 / 10 + 0.0)


def test_threshold_on_a_tie_fm():
    # non-mated scores, 10 of them with a tie of three at 0.8; rate 0.1 -> k = 1 allowed false match.
    # the 2nd largest non-mated score is 0.8 (tie), so the threshold must sit above 0.8: the smallest score of
    # any pair above 0.8 is 0.85 (a mated one); FM count there is 1 (0.9).
    s = np.array([0.9, 0.8, 0.8, 0.8, 0.5, 0.4, 0.3, 0.2, 0.1, 0.0, 0.85, 0.95])
    y = np.array([0] * 10 + [1, 1])
    r = edc(y, s, np.arange(12.0), error="fm", starting_error=0.1)
    assert r.threshold == 0.85
    assert r.errors[0] == pytest.approx(1 / 10)
    # FNM side: a threshold on a mated tie. mated 0.5 x3, 0.7, 0.9; rate 0.2 -> k = 1; 2nd smallest mated is 0.5,
    # so threshold 0.5 and no false non-match (the tie is not split: all three 0.5 are matches).
    s2 = np.array([0.5, 0.5, 0.5, 0.7, 0.9, 0.1])
    y2 = np.array([1, 1, 1, 1, 1, 0])
    r2 = edc(y2, s2, np.arange(6.0), starting_error=0.2)
    assert r2.threshold == 0.5 and r2.errors[0] == 0.0


def test_discard_removing_every_mated_pair_gives_nan():
    s = np.array([0.2, 0.9, 0.1, 0.3, 0.4])
    y = np.array([1, 1, 0, 0, 0])
    q = np.array([0.0, 0.0, 1.0, 2.0, 3.0])  # both mated pairs share the lowest quality
    r = edc(y, s, q, starting_error=0.5, discard_limit=0.5, discard_over="all")
    # k = floor(0.5 * 2) = 1 -> threshold = 2nd smallest mated = 0.9; 0.2 is a false non-match
    assert r.threshold == 0.9
    assert r.errors[0] == 0.5
    assert np.isnan(r.errors[1:]).all()  # no mated pair left: FNMR undefined (NaN, not 0)
    assert np.isnan(r.pauc)  # the limit 0.5 reaches past the step at 0.4 -> area undefined
    assert edc(y, s, q, starting_error=0.5, discard_limit=0.4, discard_over="all").pauc == pytest.approx(0.5 * 0.4)
    # class reading: the one tie group is the whole class: fractions 0 and 1, and the NaN step starts at 1
    c = edc(y, s, q, starting_error=0.5, discard_limit=0.5, relative_to_best=True)
    np.testing.assert_array_equal(c.discard_fractions, [0.0, 1.0])
    assert c.errors[0] == 0.5 and np.isnan(c.errors[1]) and np.isnan(c.best_errors[1])
    assert c.pauc == pytest.approx(0.5 * 0.5)
    assert c.pauc_best == pytest.approx(0.5 * 0.5)  # best: 1/2 on [0, 1/2), then 0 from the limit on


def test_theoretical_best_hand_worked():
    # 4 mated (scores 0.1, 0.2, 0.8, 0.9) + 4 non-mated; rate 0.5 -> k = 2 -> threshold 0.8; E = 2 errors, N = 4.
    s = np.array([0.1, 0.2, 0.8, 0.9, 0.0, 0.0, 0.0, 0.0])
    y = np.array([1, 1, 1, 1, 0, 0, 0, 0])
    q = np.array([5, 6, 1, 2, 3, 4, 7, 8], dtype=float)  # the worst possible ordering: good pairs removed first
    r = edc(y, s, q, starting_error=0.5, discard_limit=0.5, relative_to_best=True, discard_over="all")
    # best: k=0: 2/4 on [0, 1/8); k=1: 1/3 on [1/8, 2/8); k>=2: 0
    best = 2 / 4 * 1 / 8 + 1 / 3 * 1 / 8
    assert r.pauc_best == pytest.approx(best)
    # actual: 2/4 on [0,1/8), 2/3 on [1/8,2/8), 2/2 on [2/8, 4/8) (non-mated removed), then 1/1 ...
    actual = 2 / 4 / 8 + 2 / 3 / 8 + 1.0 * 2 / 8
    assert r.pauc == pytest.approx(actual)
    assert r.pauc_relative == pytest.approx(actual - best)
    np.testing.assert_allclose(r.best_errors[:4], [2 / 4, 1 / 3, 0, 0])
    # quality that sorts the errors first reaches the best area exactly
    r2 = edc(y, s, np.array([0, 1, 5, 6, 7, 8, 9, 10.0]), starting_error=0.5, discard_limit=0.5,
             relative_to_best=True, discard_over="all")
    assert r2.pauc == pytest.approx(best) and r2.pauc_relative == pytest.approx(0.0)
    # class reading: the 4 mated pairs alone (qualities 5, 6 on the errors, 1, 2 on the good ones), steps of 1/4.
    # actual: 2/4 on [0, 1/4), 2/3 on [1/4, 1/2); best: 2/4 on [0, 1/4), 1/3 on [1/4, 1/2)
    c = edc(y, s, q, starting_error=0.5, discard_limit=0.5, relative_to_best=True)
    assert c.pauc == pytest.approx(2 / 4 / 4 + 2 / 3 / 4)
    assert c.pauc_best == pytest.approx(2 / 4 / 4 + 1 / 3 / 4)
    np.testing.assert_allclose(c.best_errors[:4], [2 / 4, 1 / 3, 0, 0])
    np.testing.assert_allclose(c.errors[:4], [2 / 4, 2 / 3, 1.0, 1.0])


def test_hand_worked_the_two_readings_differ():
    # 4 mated (scores 0.1, 0.5, 0.6, 0.7; qualities 1..4) and 4 non-mated (scores 0.9, 0.2, 0.3, 0.4; qualities
    # 5..8): every mated pair is worse than every non-mated one. rate 0.25 -> k = 1 of 4 for either class.
    s = np.array([0.1, 0.5, 0.6, 0.7, 0.9, 0.2, 0.3, 0.4])
    y = np.array([1, 1, 1, 1, 0, 0, 0, 0])
    q = np.arange(1.0, 9.0)
    # FNM: threshold = 2nd smallest mated = 0.5; the error is the mated 0.1 at the lowest quality.
    c = edc(y, s, q, starting_error=0.25, relative_to_best=True)  # fractions of the 4 mated pairs
    a = edc(y, s, q, starting_error=0.25, relative_to_best=True, discard_over="all")  # of the 8 pairs
    assert c.threshold == a.threshold == 0.5
    np.testing.assert_array_equal(c.discard_fractions, [0, 0.25, 0.5, 0.75, 1])
    np.testing.assert_array_equal(c.errors[:4], [0.25, 0, 0, 0])
    np.testing.assert_array_equal(a.discard_fractions, np.arange(9) / 8)
    np.testing.assert_array_equal(a.errors[:4], [0.25, 0, 0, 0])  # 0/3, 0/2, 0/1
    assert np.isnan(a.errors[4:]).all()  # no mated pair left from 4/8 on, though non-mated pairs remain
    assert c.pauc == pytest.approx(0.25 * 0.2) and a.pauc == pytest.approx(0.25 / 8)
    assert c.pauc_best == pytest.approx(0.25 * 0.2) and a.pauc_best == pytest.approx(0.25 / 8)
    # FM: threshold = smallest score above the 2nd largest non-mated (0.4): 0.5; the error is the non-mated 0.9,
    # which the all-pairs reading reaches only after the 4 mated pairs (half of all pairs) have gone.
    c = edc(y, s, q, error="fm", starting_error=0.25, discard_limit=0.5)
    a = edc(y, s, q, error="fm", starting_error=0.25, discard_limit=0.5, discard_over="all")
    assert c.threshold == a.threshold == 0.5
    np.testing.assert_array_equal(c.errors[:4], [0.25, 0, 0, 0])
    np.testing.assert_array_equal(a.errors[:8], [0.25] * 5 + [0, 0, 0])
    assert c.pauc == pytest.approx(0.25 * 0.25) and a.pauc == pytest.approx(0.25 * 0.5)


def naive_best_area(labels, scores, error, rate, limit, over="all"):
    t = naive_threshold(scores, labels, error, rate)
    cls = [x for x, l in zip(scores, labels) if l == (1 if error == "fnm" else 0)]
    bad = sum((x < t) if error == "fnm" else (x >= t) for x in cls)
    n, area = (len(scores) if over == "all" else len(cls)), 0.0
    for k in range(n):
        e = (bad - k) / (len(cls) - k) if k < bad else 0.0
        area += e * max(0.0, min((k + 1) / n, limit) - k / n)
    return area


# ---------------------------------------------------------------- independent re-computations
@pytest.mark.parametrize("error,rate", [("fnm", 0.05), ("fnm", 0.3), ("fm", 1e-2), ("fm", 0.1)])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_iso_matches_naive_loop(seed, error, rate):
    y, s, q = random_case(seed)
    r = edc(y, s, q, error=error, starting_error=rate, relative_to_best=True, discard_over="all")
    t, fr, er = naive_iso(list(y), list(s), list(q), error, rate)
    assert r.threshold == t
    np.testing.assert_allclose(r.discard_fractions, fr)
    np.testing.assert_allclose(r.errors, er, equal_nan=True)
    assert r.pauc == pytest.approx(naive_step_area(fr, er, 0.2))
    assert r.pauc_best == pytest.approx(naive_best_area(list(y), list(s), error, rate, 0.2))
    assert r.convention == "iso" and r.discard_fractions[0] == 0.0


@pytest.mark.parametrize("error,rate", [("fnm", 0.05), ("fnm", 0.3), ("fm", 1e-2), ("fm", 0.1)])
@pytest.mark.parametrize("seed", [0, 1, 2, 4])
def test_iso_class_reading_matches_naive_loop(seed, error, rate):
    # quality and score ties (random_case); seed 4 with few quality levels, so tie groups are large
    y, s, q = random_case(seed, n_q={2: 200, 4: 4}.get(seed, 25))
    r = edc(y, s, q, error=error, starting_error=rate, relative_to_best=True)  # the default reading
    t, fr, er = naive_iso_class(list(y), list(s), list(q), error, rate)
    assert r.discard_over == "class" and r.threshold == t
    np.testing.assert_array_equal(r.discard_fractions, fr)  # exact: the same integer ratios
    np.testing.assert_array_equal(r.errors, er)  # exact, NaN at full discard
    assert r.pauc == pytest.approx(naive_step_area(fr, er, 0.2), rel=1e-12, abs=1e-15)
    assert r.pauc_best == pytest.approx(naive_best_area(list(y), list(s), error, rate, 0.2, over="class"),
                                        rel=1e-12, abs=1e-15)
    assert r.pauc_relative == pytest.approx(r.pauc - r.pauc_best, rel=1e-12, abs=1e-15)
    # the theoretical best at the realised fractions: k = min(removed, E) error pairs gone first
    n_cls = int(np.sum(y == (1 if error == "fnm" else 0)))
    n_err = round(er[0] * n_cls)
    k = np.minimum(np.round(fr * n_cls), n_err)
    np.testing.assert_allclose(r.best_errors[:-1], ((n_err - k) / (n_cls - k))[:-1], rtol=1e-15)
    assert np.isnan(r.best_errors[-1])


@pytest.mark.parametrize("seed", [0, 3])
def test_magface_matches_naive_loop(seed):
    y, s, q = random_case(seed, n=2500, n_q=40)
    r = edc(y, s, q, convention="magface")
    ref = naive_magface(list(y), list(s), list(q))
    np.testing.assert_allclose(r.errors, ref)
    assert r.convention == "magface" and r.errors.size == 20 and r.threshold.size == 20
    np.testing.assert_allclose(r.discard_fractions, [int(i * 0.05 * 2500) / 2500 for i in range(20)])


def test_magface_hand_worked_index():
    # 1000 non-mated -> index 999 // 10 // 10 // 10 = 0: the smallest distance (0.2); a mated pair at exactly that
    # distance is "not below" it, so a non-match; 0.1 and 0.19 are below (matches), 0.5 is not.
    nm = np.cos(np.pi * np.linspace(0.2, 0.9, 1000))
    m = np.cos(np.pi * np.array([0.1, 0.19, 0.2, 0.5]))
    s, y = np.concatenate([m, nm]), np.array([1] * 4 + [0] * 1000)
    r = edc(y, s, np.ones(s.size), convention="magface")
    assert r.errors[0] == pytest.approx(2 / 4)  # equal distance is "not below": counted as a non-match


def test_to_dict_and_pair_quality():
    y, s, q = random_case(5, n=60)
    d = edc(y, s, q).to_dict()
    assert set(d) >= {"discard_fractions", "errors", "threshold", "pauc", "convention", "discard_over"}
    assert d["discard_over"] == "class" and edc(y, s, q, discard_over="all").to_dict()["discard_over"] == "all"
    assert d["errors"][-1] is None  # NaN -> None in JSON
    a, b = np.array([0.2, 0.8, 0.5]), np.array([0.4, 0.1, 0.5])
    np.testing.assert_allclose(pair_quality(a, b), [0.2, 0.1, 0.5])
    np.testing.assert_allclose(pair_quality(a, b, how="mean"), [0.3, 0.45, 0.5])
    np.testing.assert_allclose(pair_quality(a, b, how="product"), [0.08, 0.08, 0.25])
    with pytest.raises(ValueError, match="unknown rule"):
        pair_quality(a, b, how="max")
    with pytest.raises(ValueError, match="differ in length"):
        pair_quality(a, b[:2])


def test_bad_input_rejected():
    y, s, q = random_case(6, n=40)
    with pytest.raises(ValueError, match="labels"):
        edc(np.where(y == 1, 2, 0), s, q)
    with pytest.raises(ValueError, match="differ in length"):
        edc(y[:-1], s, q)
    with pytest.raises(ValueError, match="pair_quality"):
        edc(y, s, q[:-1])
    with pytest.raises(ValueError, match="NaN"):
        edc(y, s, np.where(np.arange(40) == 3, np.nan, q))
    with pytest.raises(ValueError, match="convention"):
        edc(y, s, q, convention="erc")
    with pytest.raises(ValueError, match="magface"):
        edc(y, s, q, convention="magface", error="fm")
    with pytest.raises(ValueError, match="rate"):
        edc(y, s, q, starting_error=1.5)
    with pytest.raises(ValueError, match="discard_over"):
        edc(y, s, q, discard_over="pairs")
    with pytest.raises(ValueError, match="magface"):
        edc(y, s, q, convention="magface", discard_over="class")


def test_magface_discards_over_all_pairs():
    y, s, q = random_case(9, n=400)
    m, m_all = edc(y, s, q, convention="magface"), edc(y, s, q, convention="magface", discard_over="all")
    assert m.discard_over == m_all.discard_over == "all"
    assert same_bytes(m.errors, m_all.errors) and same_bytes(m.discard_fractions, m_all.discard_fractions)


# ---------------------------------------------------------------- the counting kernel against cumulative counts
def argsort_iso(labels, scores, quality, error, rate, limit, over="all"):
    """The ISO curve by the plain reading: cumulative counts of class and error pairs over a stable argsort of the
    quality, read at the last position of each tie group; masks for the step area and the best curve. The fast
    kernel must give the same bytes (same integer counts, same divisions, same summation order). ``over="class"``:
    the same on the counted class's pairs alone (threshold from all pairs)."""
    from fr_bench.metrics.quality import _best_area, iso_threshold

    y, s, q = np.asarray(labels).astype(bool), np.asarray(scores), np.asarray(quality, dtype=np.float64)
    t = iso_threshold(s, y, error, rate)
    if over == "class":
        keep = y if error == "fnm" else ~y
        y, s, q = y[keep], s[keep], q[keep]
    cls = y if error == "fnm" else ~y
    bad = (y & (s < t)) if error == "fnm" else (~y & (s >= t))
    order = np.argsort(q, kind="stable")
    qs = q[order]
    last = np.flatnonzero(np.append(qs[1:] != qs[:-1], True))
    removed = np.concatenate([[0], last + 1])
    gone_cls = np.concatenate([[0], np.cumsum(cls[order])[last]])
    gone_err = np.concatenate([[0], np.cumsum(bad[order])[last]])
    n_cls, n_err = int(cls.sum()), int(bad.sum())
    with np.errstate(invalid="ignore", divide="ignore"):
        er = np.where(n_cls - gone_cls > 0, (n_err - gone_err) / (n_cls - gone_cls), np.nan)
        k = np.minimum(removed, n_err)
        best = np.where(n_cls - k > 0, (n_err - k) / (n_cls - k), np.nan)
    fr = removed / q.size
    right = np.minimum(np.append(fr[1:], np.inf), limit)
    width = np.clip(right - fr, 0.0, None)
    used = width > 0
    pauc = float(np.sum(er[used] * width[used]))
    if over == "class":
        best[-1] = np.nan  # the last step removes the whole class
    return t, fr, er, pauc, best, _best_area(n_err, n_cls, q.size, limit)


def same_bytes(a, b):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return a.shape == b.shape and a.tobytes() == b.tobytes()


@pytest.mark.parametrize("error,rate", [("fnm", 0.05), ("fnm", 0.0), ("fnm", 0.5), ("fm", 1e-3), ("fm", 0.2),
                                        ("fm", 1.0)])
@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("over", ["class", "all"])
def test_iso_kernel_bytes_equal_argsort_reading(seed, error, rate, over):
    rng = np.random.default_rng(100 + seed)
    n = int(rng.integers(50, 4000))
    y = rng.random(n) < [0.5, 0.05, 0.01, 0.3][seed]
    y[:2] = [True, False]
    s = np.round(np.where(y, 0.5, 0.0) + rng.normal(0, 0.25, n), 2)  # score ties
    # quality ties (few levels), near-continuous, float32, and mated pairs at the lowest quality (NaN tail early)
    q = [rng.integers(0, 7, n).astype(float), rng.random(n), rng.random(n).astype(np.float32),
         np.where(y, 0.0, rng.integers(1, 50, n)).astype(float)][seed]
    limits = [0.2, 1.0, 0.05, 2 / n]
    fr0 = argsort_iso(y, s, q, error, rate, 0.2, over)[1]
    limits.append(float(fr0[len(fr0) // 2]))  # a limit exactly on a realised fraction
    for limit in limits:
        r = edc(y, s, q, error=error, starting_error=rate, discard_limit=limit, relative_to_best=True,
                discard_over=over)
        t, fr, er, pauc, best, pauc_best = argsort_iso(y, s, q, error, rate, limit, over)
        assert r.threshold == t
        assert same_bytes(r.discard_fractions, fr) and same_bytes(r.errors, er) and same_bytes(r.best_errors, best)
        assert same_bytes(r.pauc, pauc) and same_bytes(r.pauc_best, pauc_best)
        assert same_bytes(r.pauc_relative, pauc - pauc_best)
        plain = edc(y, s, q, error=error, starting_error=rate, discard_limit=limit, discard_over=over)
        assert same_bytes(plain.errors, er) and same_bytes(plain.pauc, pauc) and plain.best_errors is None


def test_float32_quality_same_as_its_float64_widening():
    y, s, _ = random_case(7, n=500)
    q32 = np.random.default_rng(7).normal(20, 3, 500).astype(np.float32)
    q32[::7] = q32[0]  # a tie group
    for kw in ({}, {"error": "fm", "starting_error": 0.1}, {"discard_over": "all"},
               {"error": "fm", "starting_error": 0.1, "discard_over": "all"}):
        a = edc(y, s, q32, relative_to_best=True, **kw)
        b = edc(y, s, q32.astype(np.float64), relative_to_best=True, **kw)
        assert same_bytes(a.errors, b.errors) and same_bytes(a.discard_fractions, b.discard_fractions)
        assert a.pauc == b.pauc and a.pauc_best == b.pauc_best
    m32, m64 = edc(y, s, q32, convention="magface"), edc(y, s, q32.astype(np.float64), convention="magface")
    assert same_bytes(m32.errors, m64.errors) and same_bytes(m32.threshold, m64.threshold)


def test_magface_thresholds_are_the_sorted_index():
    # the threshold per fraction is the element at index (m - 1) // 1000 of the SORTED remaining non-mated
    # distances (found here by a full sort, by a partition in the module)
    y, s, q = random_case(8, n=3000, n_q=3000)
    r = edc(y, s, q, convention="magface")
    order = np.argsort(q, kind="stable")
    d = np.arccos(np.clip(s, -1, 1)) / np.pi
    for j, u in enumerate(np.arange(0.0, 0.98, 0.05)):
        kept = order[int(u * s.size):]
        neg = np.sort(d[kept][y[kept] == 0])
        assert r.threshold[j] == neg[(neg.size - 1) // 1000]


def test_magface_pauc_with_coinciding_fractions():
    # 12 pairs: int(u * 12) repeats for neighbouring u (0 and 0.05 both drop 0 pairs), so two realised fractions
    # coincide and the zero-width step must not count; both classes remain up to the limit
    s = np.cos(np.pi * np.linspace(0.1, 0.6, 12))
    y = np.array([1, 0] * 6)
    r = edc(y, s, np.arange(12.0), convention="magface", discard_limit=0.5)
    assert r.discard_fractions[0] == r.discard_fractions[1] == 0.0
    assert np.isfinite(r.errors[:11]).all()
    assert r.pauc == pytest.approx(naive_step_area(list(r.discard_fractions), list(r.errors), 0.5))
