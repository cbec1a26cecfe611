"""A model's own score in the score registry: the group-aware similarity against the formula written out by hand
(both distances, the concat and sum flip layouts, rows and the all-pairs matrix), cosine on the embedding columns
only, and the clear refusals."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fr_bench.similarity import (FeatureLayout, get_score, list_scores, model_conventions, score_applies,
                                 use_layout)

D, I = 3, 2


def _declared(**params):
    return {"name": "group-aware", "embedding_size": D, "extra_size": I, "beta": 0.1, "gamma": 1 / 3,
            "distance": "euclidean", **params}


def _hand(fa, fb, ia, ib, *, beta=0.1, gamma=1 / 3, distance="euclidean"):
    cos = sum(x * y for x, y in zip(fa, fb)) / math.sqrt(sum(x * x for x in fa) * sum(y * y for y in fb))
    if distance == "euclidean":
        d = math.sqrt(sum((x - y) ** 2 for x, y in zip(ia, ib)))
    else:
        d = 1 - sum(x * y for x, y in zip(ia, ib)) / math.sqrt(sum(x * x for x in ia) * sum(y * y for y in ib))
    return cos - beta * max(d, 0.0) ** gamma


@pytest.mark.parametrize("distance", ["euclidean", "cosine"])
def test_group_aware_rows_and_matrix_match_the_formula(distance):
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(4, D + I)), rng.normal(size=(5, D + I))
    score = get_score("group-aware")
    with use_layout(FeatureLayout.from_declaration(_declared(distance=distance))):
        rows = score.pairs(a[:4], b[:4])
        matrix = score.all_pairs(a, b)
    for i in range(4):
        assert rows[i] == pytest.approx(_hand(a[i, :D], b[i, :D], a[i, D:], b[i, D:], distance=distance), abs=1e-12)
        for j in range(5):
            assert matrix[i, j] == pytest.approx(_hand(a[i, :D], b[j, :D], a[i, D:], b[j, D:], distance=distance),
                                                 abs=1e-12)


def test_flip_layouts_concat_blocks_and_sum_halves_the_intermediate():
    rng = np.random.default_rng(1)
    f1, i1, f2, i2 = (rng.normal(size=(2, n)) for n in (D, I, D, I))
    concat = np.concatenate([f1, i1, f2, i2], axis=1)  # [f(x) | i(x) | f(mirror) | i(mirror)]
    with use_layout(FeatureLayout.from_declaration(_declared(), "concat")):
        got = get_score("group-aware").pairs(concat[:1], concat[1:])
        cos = get_score("cosine").pairs(concat[:1], concat[1:])
    fa, fb = np.r_[f1[0], f2[0]], np.r_[f1[1], f2[1]]
    assert got[0] == pytest.approx(_hand(fa, fb, np.r_[i1[0], i2[0]], np.r_[i1[1], i2[1]]), abs=1e-12)
    assert cos[0] == pytest.approx(fa @ fb / np.linalg.norm(fa) / np.linalg.norm(fb), abs=1e-12)
    summed = np.concatenate([f1, i1], axis=1)  # under "sum" the extra part is two views summed: their mean counts
    with use_layout(FeatureLayout.from_declaration(_declared(), "sum")):
        got = get_score("group-aware").pairs(summed[:1], summed[1:])
    assert got[0] == pytest.approx(_hand(f1[0], f1[1], i1[0] / 2, i1[1] / 2), abs=1e-12)


def test_cosine_reads_the_embedding_columns_only_under_a_layout():
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(3, D + I)), rng.normal(size=(3, D + I))
    cos = get_score("cosine")
    with use_layout(FeatureLayout.from_declaration(_declared())):
        got = cos.pairs(a, b)
    expected = [x[:D] @ y[:D] / np.linalg.norm(x[:D]) / np.linalg.norm(y[:D]) for x, y in zip(a, b)]
    np.testing.assert_allclose(got, expected, atol=1e-12)
    plain = [x @ y / np.linalg.norm(x) / np.linalg.norm(y) for x, y in zip(a, b)]
    np.testing.assert_allclose(cos.pairs(a, b), plain, atol=1e-12)  # no layout: the whole rows


def test_refusals_and_applicability():
    rows = np.ones((2, D + I))
    with pytest.raises(ValueError, match="needs a model that declares it.*plain embeddings"):
        get_score("group-aware").pairs(rows, rows)
    assert not score_applies("group-aware") and score_applies("cosine")
    with use_layout(FeatureLayout.from_declaration(_declared())):
        assert score_applies("group-aware")
        with pytest.raises(ValueError, match=r"rows have \(4,\) columns, the model's layout 5"):
            get_score("group-aware").pairs(np.ones((2, 4)), np.ones((2, 4)))
    assert "group-aware" in list_scores() and not get_score("group-aware").cosine_of_prepared


def test_the_model_score_is_the_default_unless_chosen_or_not_offered():
    declared = _declared()
    assert model_conventions({}, declared, ["cosine", "group-aware"]) == ({"score": "group-aware"}, None)
    assert model_conventions({"score": "cosine"}, declared, ["cosine", "group-aware"])[0] == {"score": "cosine"}
    assert model_conventions({}, None, ["cosine", "group-aware"]) == ({}, None)
    conv, flag = model_conventions({}, declared, ["cosine"])  # identification protocols rank by cosine
    assert conv == {} and "does not apply" in flag and "embedding columns" in flag
