"""``frbench cluster`` end to end on the demo faces: a tiny torch model (numbers re-derived here from its embeddings
with numpy and scipy) and the real SFace model (perfectly separable identities: F = 1 at the default threshold)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import shared_path
from embed_fixtures import TinyNet
from scipy.cluster.hierarchy import fcluster, linkage

from fr_bench.cli import main
from fr_bench.metrics import clustering_scores
from fr_bench.results import load_results
from fr_bench.runner import prepare

KEYS = {"pairwise_precision", "pairwise_recall", "pairwise_f", "bcubed_precision", "bcubed_recall", "bcubed_f", "nmi"}


def _cluster(*args):
    return CliRunner().invoke(main, ["cluster", *[str(a) for a in args]])


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    return tmp_path_factory.mktemp("out"), tmp_path_factory.mktemp("cache")


def _run(folders, *args, model="embed_fixtures:TinyNet", name="tiny"):
    out, cache = folders
    res = _cluster("-m", model, "-p", "demo", "--out", out, "--cache-dir", cache, "--workers", 0, "-q", "--name",
                   name, "--json", *args)
    assert res.exit_code == 0, res.output
    return json.loads(res.output)


def _identity(key: str) -> str:
    return key.split("/")[1]  # demo/<Name>/<file>


def _demo_scores(folders, model):
    """Cosine scores of the demo pairs and the L2-normalised features, from the cached embeddings (numpy only)."""
    prep = prepare(model, "demo", cache_dir=folders[1], num_workers=0, progress=False, device="cpu")
    f = prep.embeddings.features.astype(np.float64)
    f /= np.linalg.norm(f, axis=1, keepdims=True)
    pairs, labels = prep.protocol.pairs, prep.protocol.labels
    return np.einsum("ij,ij->i", f[pairs[:, 0]], f[pairs[:, 1]]), labels, f, prep.protocol.images.keys()


def test_help_teaches():
    res = _cluster("--help")
    assert res.exit_code == 0
    for text in ("frbench cluster -m sface -p demo", "--sweep", "ORACLE", "cosine SIMILARITY", "-o list=3",
                 "verification pairs", "singleton"):
        assert text in res.output, text
    assert "cluster" in CliRunner().invoke(main, ["--help"]).output


def test_default_threshold_run_is_a_results_store_record(folders):
    record = _run(folders)
    res = record["result"]
    assert record["protocol"]["name"] == res["protocol"] == "demo-clustering"
    assert set(res["metrics"]) == KEYS
    # the threshold: the best-accuracy cut of the demo pairs, found here by brute force over midpoints
    scores, labels, feats, keys = _demo_scores(folders, TinyNet())
    values = np.unique(scores)
    cuts = (values[:-1] + values[1:]) / 2
    acc = [np.mean((scores > t) == labels) for t in cuts]
    th = res["details"]["threshold"]
    assert th["value"] == pytest.approx(cuts[int(np.argmax(acc))], abs=1e-6)
    assert th["pairs_accuracy"] == pytest.approx(max(acc)) and th["optimistic"] is False
    assert "verification pairs" in th["rule"] and "not held out" in th["rule"]
    # the assignment: every demo image once; the scores re-derived from it and the folder identities
    assignment = res["details"]["assignment"]
    assert list(assignment) == keys and len(keys) == 55
    truth = [_identity(k) for k in keys]
    pred = [assignment[k] for k in keys]
    again = clustering_scores(truth, pred)
    assert all(again[k] == pytest.approx(res["metrics"][k]) for k in KEYS)
    # the partition: scipy's average linkage on cosine distance, cut at 1 - t
    ref = fcluster(linkage(feats, method="average", metric="cosine"), t=1 - th["value"], criterion="distance")
    assert clustering_scores(ref, pred)["pairwise_f"] == 1.0
    assert res["details"]["counts"]["clusters"] == np.unique(ref).size
    # a regular results-store record: load_results reads it back
    (loaded,) = [r for r in load_results(folders[0]) if r.protocol_name == "demo-clustering"]
    assert loaded.model_name == "tiny" and loaded.result.metrics == pytest.approx(res["metrics"])
    assert loaded.conventions["clustering"] == "agglomerative"


def test_sweep_is_stored_apart_and_flagged_optimistic(folders):
    record = _run(folders, "--sweep", "--criterion", "pairwise_f")
    res = record["result"]
    assert record["protocol"]["name"] == "demo-clustering-sweep"
    assert any(f.startswith("optimistic") for f in res["flags"]) and res["details"]["threshold"]["optimistic"]
    curve = res["details"]["threshold"]["sweep"]
    assert res["metrics"]["pairwise_f"] == max(curve["pairwise_f"]) and len(curve["thresholds"]) == 50
    names = {r.protocol_name for r in load_results(folders[0])}
    assert {"demo-clustering", "demo-clustering-sweep"} <= names  # the honest record is not replaced


def test_given_threshold_and_dbscan(folders):
    res = _run(folders, "--threshold", 0.999, "--method", "dbscan", "--min-samples", 2)["result"]
    assert res["details"]["threshold"]["rule"].startswith("given") and res["protocol"] == "demo-clustering-dbscan"
    method = res["details"]["method"]
    assert method["sklearn_params"] == {"eps": pytest.approx(0.001), "min_samples": 2, "metric": "cosine"}
    assert res["details"]["counts"]["clusters"] >= method["noise_as_singletons"] > 0


def test_threshold_and_sweep_together_is_a_usage_error(folders):
    res = _cluster("-m", "sface", "-p", "demo", "--threshold", 0.5, "--sweep", "--out", folders[0])
    assert res.exit_code == 2 and "not both" in res.output


def test_sface_default_threshold_separates_the_demo_perfectly(folders):
    model = shared_path("models", "sface", "face_recognition_sface_2021dec.onnx")
    scores, labels, _, _ = _demo_scores(folders, str(model))
    genuine_min, impostor_max = scores[labels].min(), scores[~labels].max()
    assert impostor_max < genuine_min  # measured: about 0.35 < 0.55
    for method in ("agglomerative", "dbscan"):
        res = _run(folders, "--method", method, model=str(model), name="sface")["result"]
        t = res["details"]["threshold"]["value"]
        assert impostor_max < t < genuine_min
        assert res["metrics"]["pairwise_f"] == res["metrics"]["bcubed_f"] == 1.0
        assert res["details"]["counts"]["clusters"] == 5


def test_every_option_is_explained_and_every_example_parses():
    import click
    import re

    command = main.commands["cluster"]
    bare = [p.name for p in command.params if isinstance(p, click.Option) and not p.help and p.name != "help"]
    assert not bare, f"options without help: {bare}"
    text = _cluster("--help").output
    examples = re.findall(r"^\s+frbench cluster\b(.*)$", text, flags=re.M)
    assert len(examples) >= 5
    known = {o for p in command.params for o in (*p.opts, *p.secondary_opts)}
    for line in examples:
        flags = [a for a in line.split() if a.startswith("-")]
        assert flags and set(flags) <= known, line


def test_folder_protocol_clusters_its_images_by_identity_folder(tmp_path, folders):
    import shutil

    from fr_bench.cli_cluster import cluster_model
    from fr_bench.protocols.demo import DEMO_DATA

    names = sorted(p.name for p in DEMO_DATA.iterdir() if p.is_dir())[:3]
    for name in names:
        shutil.copytree(DEMO_DATA / name, tmp_path / "faces" / name)
    run = cluster_model(TinyNet(), "folder", tmp_path / "faces", out=tmp_path / "out", name="tiny", num_workers=0,
                        progress=False, cache_dir=folders[1], device="cpu")
    items = run.items
    assert sorted(set(items.labels)) == names and len(items.keys) == 33
    assert all(k.split("/")[0] == label for k, label in zip(items.keys, items.labels))  # <identity>/<image>
    assert "folder pair list" in items.pairs_source and len(items.pair_labels) == 2 * 3 * 55  # genuine + as many
    assert run.path.name == "folder-clustering.json" and run.record.protocol["options"] == {}
    assert set(run.record.result.metrics) == KEYS


def test_the_printed_table_names_the_threshold_rule(folders):
    out, cache = folders
    res = _cluster("-m", "embed_fixtures:TinyNet", "-p", "demo", "--out", out, "--cache-dir", cache, "--workers", 0,
                   "-q", "--name", "tiny", "--threshold", 0.3)
    assert res.exit_code == 0, res.output
    assert "bcubed_f (%)" in res.output and "threshold 0.3 (cosine similarity): given" in res.output
    assert "55 images of 5 identities" in res.output and "written:" in res.output
