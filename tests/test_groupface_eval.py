"""GroupFace's own score through ``frbench evaluate``: a GroupFace checkpoint is scored by the group-aware similarity
by default (recorded), ``-c score=cosine`` gives the cosine of its final embeddings only, and both equal an
independent computation from the network's own outputs on the demo crops (torch's ``group_aware_similarity``,
not the numpy score of :mod:`fr_bench.similarity`)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner

from fr_bench.cli import main
from fr_bench.models import create_backbone, load_model
from fr_bench.models.backbones.groupface import enable_score_rows, group_aware_similarity
from fr_bench.protocols import load_protocol
from fr_bench.train.export import write_checkpoint

D, INTER = 16, 8
ARCH = {"backbone": "tinyface", "backbone_kwargs": {"width": 4}, "num_features": D, "shared_dim": 16,
        "num_groups": 4, "intermediate_dim": INTER}


@pytest.fixture(scope="module")
def groupface_ckpt(tmp_path_factory):
    """A tiny GroupFace with non-trivial BN statistics, written by the trainer's checkpoint writer at 112x112."""
    torch.manual_seed(0)
    net = create_backbone("groupface", **ARCH)
    net.train()
    with torch.no_grad():
        for _ in range(3):  # move the BN running statistics off their defaults
            net(torch.randn(8, 3, 112, 112))
    net.eval()
    path = tmp_path_factory.mktemp("gf") / "checkpoint.pt"
    write_checkpoint(net, path, arch="groupface", arch_kwargs=ARCH, input_size=112, embedding_size=D,
                     recipe_name="test", meta={})
    return path, net


def _outputs(net, flip: str):
    """(final, intermediate) of every demo crop from the network itself, fused as the flip convention says."""
    proto = load_protocol("demo", None)
    crops = np.stack([proto.load_image(i) for i in range(len(proto.images))])
    x = (torch.from_numpy(crops).permute(0, 3, 1, 2).float() - 127.5) / 127.5
    with torch.no_grad():
        out = net.forward_train(x)
        final, inter = out["embedding"].double(), out["intermediate"].double()
        if flip == "sum":
            mirror = net.forward_train(x.flip(3))
            final = final + mirror["embedding"].double()
            inter = (inter + mirror["intermediate"].double()) / 2  # the mean of the two views' features
    return proto, final, inter


def _evaluate(path, tmp_path, *extra):
    res = CliRunner().invoke(main, ["evaluate", "-m", str(path), "-p", "demo", "--device", "cpu", "--no-cache",
                                    "--cache-dir", str(tmp_path / "cache"), "-q", "--out", str(tmp_path / "out"),
                                    "--json", *extra])
    assert res.exit_code == 0, res.output
    return json.loads(res.output[res.output.index("{"):])


@pytest.mark.parametrize("flip", ["none", "sum"])
def test_groupface_checkpoint_is_scored_group_aware_by_default(groupface_ckpt, tmp_path, flip):
    path, net = groupface_ckpt
    record = _evaluate(path, tmp_path, "-c", f"flip={flip}")
    result = record["result"]
    assert result["conventions"]["score"] == "group-aware"
    assert record["model"]["score"]["name"] == "group-aware" and record["model"]["embedding_size"] == D
    proto, final, inter = _outputs(net, flip)
    a, b = torch.from_numpy(proto.pairs[:, 0]), torch.from_numpy(proto.pairs[:, 1])
    expected = group_aware_similarity(final[a], final[b], inter[a], inter[b], beta=0.1, gamma=1 / 3).numpy()
    cosine = F.cosine_similarity(final[a], final[b], dim=1).numpy()
    assert np.abs(expected - cosine).max() > 1e-3  # the distance term matters here: the test can tell them apart
    got = _scores(record)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


def test_cosine_convention_uses_the_final_embedding_only(groupface_ckpt, tmp_path):
    path, net = groupface_ckpt
    record = _evaluate(path, tmp_path, "-c", "flip=none", "-c", "score=cosine")
    assert record["result"]["conventions"]["score"] == "cosine"
    proto, final, _ = _outputs(net, "none")
    expected = F.cosine_similarity(final[proto.pairs[:, 0]], final[proto.pairs[:, 1]], dim=1).numpy()
    np.testing.assert_allclose(_scores(record), expected, rtol=1e-4, atol=1e-5)
    assert record["result"]["metrics"]["rank1"] >= 0  # the closed-set search runs under cosine


def _scores(record) -> np.ndarray:
    from fr_bench.results.scores import read_scores

    return np.asarray(read_scores(record["scores_file"])[0].pairs.scores, dtype=np.float64)


def test_loaded_groupface_declares_its_score_and_rows(groupface_ckpt):
    path, _ = groupface_ckpt
    emb = load_model(str(path), device="cpu")
    assert emb.score == {"name": "group-aware", "embedding_size": D, "extra_size": INTER, "beta": 0.1,
                         "gamma": 1 / 3, "distance": "euclidean"}
    assert emb.embedding_size == D + INTER


def test_enable_score_rows_finds_a_wrapped_groupface_and_ignores_others():
    net = create_backbone("groupface", **ARCH).eval()
    wrapped = torch.nn.Sequential(net)
    x = torch.randn(2, 3, 64, 64)
    assert wrapped(x).shape == (2, D)
    assert enable_score_rows(wrapped)["name"] == "group-aware"
    rows = wrapped(x)
    out = net.forward_train(x)
    torch.testing.assert_close(rows, torch.cat([out["embedding"], out["intermediate"]], dim=1))
    assert enable_score_rows(create_backbone("tinyface", num_features=8, width=4)) is None
