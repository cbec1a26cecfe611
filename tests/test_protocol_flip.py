"""Flip fusion is a named convention group ("flip": sum, concat, none) of every protocol, recorded in every result.

Before, a protocol had a boolean ``flip_test`` it was never told about, so a ``--no-flip`` run was recorded and shown
as "sum of image and mirror embeddings".
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from writers_fixtures import ijb_fixture, noisy_identity_embeddings
from writers_ijb import kface_path, write_kface_root, write_megaface_root

from fr_bench.protocols import load_protocol


def _demo(tmp_path):
    p = load_protocol("demo", None)
    return p, noisy_identity_embeddings(list(p.identities), dim=8, noise=1.5)


def _ijbc(tmp_path):
    fx, _, emb = ijb_fixture(tmp_path / "IJBC", with_csvs=True)
    return load_protocol("ijbc", fx.root, check_counts=False), emb


def _ijbc_1n(tmp_path):
    fx, _, emb = ijb_fixture(tmp_path / "IJBC", with_csvs=True)
    return load_protocol("ijbc_1n", fx.root, check_counts=False), emb


def _megaface(tmp_path):
    ids = ["Ann"] * 4 + ["Bob"] * 3 + ["Cy"] * 5
    write_megaface_root(tmp_path, ids, 30, sizes=(100,), write_images=False)
    p = load_protocol("megaface", tmp_path, distractors=100, check_counts=False, cleaned=False)
    rng = np.random.default_rng(0)
    return p, np.concatenate([noisy_identity_embeddings(ids), rng.normal(size=(30, 8))])


def _kface(tmp_path):
    people = [f"1908{k:04d}" for k in range(4)]
    pairs = []
    for k in range(20):
        i, j = people[k % 4], people[(k + 1) % 4]
        pairs.append((kface_path(i, 1, 1, 1, k + 1), kface_path(i, 2, 2, 2, (k + 3) % 20 + 1), 1))
        pairs.append((kface_path(i, 1, 1, 1, k + 1), kface_path(j, 3, 2, 3, (k + 5) % 20 + 1), 0))
    write_kface_root(tmp_path, {"Q1": pairs}, write_images=False)
    p = load_protocol("kface", tmp_path, lists=("Q1",), check_counts=False)
    return p, noisy_identity_embeddings([k.split("/")[0] for k in p.images.keys()], noise=1.2)


FAMILIES = {"demo": (_demo, "sum"), "ijbc": (_ijbc, "sum"), "ijbc_1n": (_ijbc_1n, "sum"),
            "megaface": (_megaface, "sum"), "kface": (_kface, "concat")}


def _evaluate(p, emb, **conventions):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return p.evaluate(emb, conventions=conventions)


@pytest.mark.parametrize("family", FAMILIES)
def test_every_protocol_lists_the_flip_group_default_first(tmp_path, family):
    build, default = FAMILIES[family]
    p, _ = build(tmp_path)
    assert p.flip_convention == default
    assert p.conventions["flip"][0] == default
    assert sorted(p.conventions["flip"]) == ["concat", "none", "sum"]
    assert p.flip_test is True
    with pytest.raises(AttributeError):
        p.flip_test = False  # read-only: the convention is the one source


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("flip", ["none", "sum", "concat"])
def test_the_flip_the_runner_used_is_recorded(tmp_path, family, flip):
    build, default = FAMILIES[family]
    p, emb = build(tmp_path)
    r = _evaluate(p, emb, flip=flip)
    assert r.conventions["flip"] == flip
    score_text = r.details["score"]
    if flip == "none":
        assert "sum" not in score_text and "+ mirror" not in score_text and "concatenated" not in score_text
        assert "no mirror" in score_text
    elif flip == "sum":
        assert "flip-summed" in score_text
    else:
        assert "concatenated" in score_text
    # the default is recorded when the caller says nothing
    assert _evaluate(p, emb).conventions["flip"] == default


@pytest.mark.parametrize("family", ["demo", "ijbc"])
def test_unknown_flip_name_is_refused(tmp_path, family):
    p, emb = FAMILIES[family][0](tmp_path)
    with pytest.raises(ValueError, match="flip.*choose one of"):
        _evaluate(p, emb, flip="mean")


def test_spec_default_and_bad_spec_value(tmp_path):
    from fr_bench.protocols import load_spec
    from fr_bench.protocols.demo import load

    spec = dict(load_spec("demo"), conventions={"flip": "none"})
    assert load(None, spec).flip_convention == "none" and not load(None, spec).flip_test
    with pytest.raises(ValueError, match=r"\[conventions\] flip.*choose one of sum, concat, none"):
        load(None, dict(load_spec("demo"), conventions={"flip": "average"}))


def test_xnorm_text_follows_the_flip_used():
    p, emb = _demo(None)
    assert "no mirror" in _evaluate(p, emb, flip="none").details["xnorm"]
    assert "flip-summed" in _evaluate(p, emb).details["xnorm"]


@pytest.mark.parametrize("family,group,name", [("demo", "accuracy", "kfold-youden"), ("demo", "tar", "strict"),
                                               ("kface", "tar", "interpolated"), ("ijbc", "tar", "strict"),
                                               ("ijbc_1n", "1n", "merged-galleries")])
def test_the_spec_default_of_a_group_comes_first_and_is_used(tmp_path, family, group, name):
    from fr_bench.protocols import _resolve, load_spec

    p, emb = FAMILIES[family][0](tmp_path)
    spec = dict(load_spec(family), conventions={group: name})
    options = {"demo": {}, "kface": {"lists": ("Q1",), "check_counts": False}}.get(family, {"check_counts": False})
    root = None if family == "demo" else p.root if hasattr(p, "root") else tmp_path
    q = _resolve(spec["loader"])(root, spec, **options)
    assert q.conventions[group][0] == name and sorted(q.conventions[group]) == sorted(p.conventions[group])
    assert _evaluate(q, emb).conventions[group] == name
