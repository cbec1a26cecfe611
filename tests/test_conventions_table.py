"""The side-by-side conventions table (``frbench conventions``) for a fixture of every protocol family.

Each group's conventions are applied alone to the same embeddings; the rows must carry every convention the protocol
accepts, and the numbers must equal what ``protocol.evaluate`` gives under that convention directly.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from writers import write_lfw
from writers_fixtures import ijb_fixture, noisy_identity_embeddings
from writers_ijb import kface_path, write_kface_root, write_megaface_root

from fr_bench.protocols import load_protocol
from fr_bench.protocols.conventions import EXTRACTION_GROUPS
from fr_bench.report.tables import conventions_table, render
from fr_bench.runner import conventions_rows


def _rows(protocol, emb):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rows = conventions_rows(protocol, emb)
    assert rows
    for group, names in protocol.conventions.items():
        if group in EXTRACTION_GROUPS:  # re-embedding needed: shown only with the images (runner.prepare)
            continue
        seen = {r["convention"] for r in rows if r["group"] == group}
        assert seen == set(names), (group, seen, names)
    # every value equals a direct evaluation under that convention alone
    for row in rows[:: max(1, len(rows) // 12)]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            direct = protocol.evaluate(emb, conventions={row["group"]: row["convention"]}).metrics[row["metric"]]
        assert row["value"] == pytest.approx(direct, nan_ok=True)
    text = render(conventions_table(rows), "md")
    assert all(name in text for group, names in protocol.conventions.items() if group not in EXTRACTION_GROUPS
               for name in names)
    return rows


def test_pair_family(tmp_path):
    write_lfw(tmp_path, names=("Alice_A", "Bob_B", "Carol_C", "Dan_D"), n_images=4, per_fold=12)
    p = load_protocol("lfw", tmp_path, aligned=True, expected_pairs=None)
    ids = [k.split("/")[1] for k in p.images.keys()]
    rows = _rows(p, noisy_identity_embeddings(ids, noise=1.5))
    assert {"kfold-grid", "kfold-exact", "kfold-youden", "kfold-angular", "best-threshold"} <= {
        r["convention"] for r in rows}
    oracle = [r for r in rows if r["convention"] == "best-threshold" and r["metric"] == "accuracy"]
    assert oracle and "optimistic" in oracle[0]["note"]


def test_ijb_families(tmp_path):
    fx, _subj, emb = ijb_fixture(tmp_path / "IJBC", with_csvs=True)
    rows = _rows(load_protocol("ijbc", fx.root, check_counts=False), emb)
    assert {r["group"] for r in rows} >= {"tar", "pooling"}
    rows = _rows(load_protocol("ijbc_1n", fx.root, check_counts=False), emb)
    assert {r["convention"] for r in rows if r["group"] == "1n"} == {"nist", "merged-galleries"}


def test_megaface_family(tmp_path):
    ids = ["Ann"] * 4 + ["Bob"] * 3 + ["Cy"] * 5
    write_megaface_root(tmp_path, ids, 30, sizes=(100,), write_images=False)
    p = load_protocol("megaface", tmp_path, distractors=100, check_counts=False, cleaned=False)
    rng = np.random.default_rng(0)
    codes = np.unique(ids, return_inverse=True)[1]
    emb = np.concatenate([rng.normal(size=(3, 8))[codes] + 0.9 * rng.normal(size=(len(ids), 8)),
                          rng.normal(size=(30, 8))])
    if not p.conventions:
        pytest.skip("megaface exposes its cleaning as a load option, not an evaluate-time convention")
    _rows(p, emb)


def test_kface_family(tmp_path):
    people = [f"1908{k:04d}" for k in range(4)]
    pairs = []
    for k in range(20):
        i, j = people[k % 4], people[(k + 1) % 4]
        pairs.append((kface_path(i, 1, 1, 1, k % 20 + 1), kface_path(i, 2, 2, 2, (k + 3) % 20 + 1), 1))
        pairs.append((kface_path(i, 1, 1, 1, k % 20 + 1), kface_path(j, 3, 2, 3, (k + 5) % 20 + 1), 0))
    write_kface_root(tmp_path, {"Q1": pairs}, write_images=False)
    p = load_protocol("kface", tmp_path, lists=("Q1",), check_counts=False)
    emb = noisy_identity_embeddings([k.split("/")[0] for k in p.images.keys()], noise=1.2)
    _rows(p, emb)
