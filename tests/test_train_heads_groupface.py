"""GroupFace: the architecture's aggregation (soft and hard) recomputed group by group, self-distributed labels on a
hand-worked case, the head's loss = ArcFace + 0.1 x group CE, the group-aware similarity, and a checkpoint round
trip through fr_bench.models (the embedding module rebuilt without fr_bench.train)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from torch import nn

from fr_bench.models import create_backbone, list_archs, load_model, register_arch, save_checkpoint
from fr_bench.models.backbones.groupface import group_aware_similarity
from fr_bench.train import build_head
from fr_bench.train.heads.groupface import self_distributed_labels

D, K = 8, 4


class _TinyBackbone(nn.Module):
    """A registered stand-in backbone (GroupFace wraps any registered one): conv, pool, linear."""

    def __init__(self, *, num_features: int = 16) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, stride=2, padding=1)
        self.fc = nn.Linear(4 * 4 * 4, num_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(torch.relu(self.conv(x)), 4), 1))


def _tiny(**kwargs) -> _TinyBackbone:
    return _TinyBackbone(**kwargs)


if "test_tiny_groupface_backbone" not in list_archs():
    register_arch("test_tiny_groupface_backbone", _tiny)
ARCH = {"backbone": "test_tiny_groupface_backbone", "num_features": D, "shared_dim": 16, "num_groups": K,
        "intermediate_dim": 6}


def _model(hard=False, seed=0):
    torch.manual_seed(seed)
    model = create_backbone("groupface", **ARCH, hard=hard)
    model.train()
    for _ in range(2):  # move BN running stats off their defaults, then evaluate deterministically
        model.forward_train(torch.randn(6, 3, 32, 32))
    return model.eval()


def _groups_one_by_one(model, shared):
    """The K group representations as K separate FC + BN layers (slices of the batched layer), eval mode."""
    lin, bn = model.group_fc
    out = []
    for k in range(K):
        sl = slice(k * D, (k + 1) * D)
        z = shared @ lin.weight[sl].t() + lin.bias[sl]
        out.append((z - bn.running_mean[sl]) / torch.sqrt(bn.running_var[sl] + bn.eps) * bn.weight[sl] + bn.bias[sl])
    return torch.stack(out, dim=1)


@pytest.mark.parametrize("hard", [False, True])
def test_groupface_final_is_instance_plus_group_aggregate(hard):
    model = _model(hard)
    x = torch.randn(5, 3, 32, 32)
    with torch.no_grad():
        out = model.forward_train(x)
        shared = model.backbone(x)
        groups = _groups_one_by_one(model, shared)
        probs = F.softmax(model.gdn_out(model.gdn(model.instance_fc(shared))), dim=1)
        if hard:
            expected = out["instance"] + groups[torch.arange(5), probs.argmax(dim=1)]
        else:
            expected = out["instance"] + sum(probs[:, k:k + 1] * groups[:, k] for k in range(K))
        torch.testing.assert_close(out["group_probs"], probs)
        torch.testing.assert_close(out["embedding"], expected, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(model(x), out["embedding"])
        torch.testing.assert_close(model(x, train_outputs=True)["group_logits"], out["group_logits"])
    assert out["intermediate"].shape == (5, 6) and out["group_logits"].shape == (5, K)


def test_self_distributed_labels_hand_worked():
    probs = torch.tensor([[0.6, 0.4], [0.7, 0.3], [0.9, 0.1]])
    # batch mean (0.733, 0.267); p - mean + 1/2: (0.367, 0.633), (0.467, 0.533), (0.667, 0.333)
    assert self_distributed_labels(probs).tolist() == [1, 1, 0]
    assert probs.argmax(dim=1).tolist() == [0, 0, 0]  # the naive labels would put everyone in group 0


def test_groupface_head_is_arcface_plus_weighted_group_loss():
    torch.manual_seed(1)
    head = build_head("groupface", embedding_size=D, num_classes=5)
    assert head.wants_model_outputs and head.weight.shape == (5, D)
    arc = build_head("arcface", embedding_size=D, num_classes=5)
    with torch.no_grad():
        arc.weight.copy_(head.weight)
    emb = torch.randn(4, D, requires_grad=True)
    logits = torch.randn(4, K, requires_grad=True)
    y = torch.tensor([0, 1, 2, 3])
    outputs = {"embedding": emb, "group_logits": logits}
    loss = head(outputs, y)
    p = logits.detach().softmax(dim=1).numpy()
    labels = np.argmax(p - p.mean(axis=0, keepdims=True) + 1.0 / K, axis=1)
    expected = arc(emb, y) + 0.1 * F.cross_entropy(logits, torch.from_numpy(labels))
    torch.testing.assert_close(loss, expected)
    loss.backward()
    assert logits.grad is not None and emb.grad is not None
    torch.testing.assert_close(head.logits(outputs, y), arc.logits(emb, y))
    with pytest.raises(TypeError, match="forward_train"):
        head(emb, y)


def test_group_aware_similarity_hand_worked():
    fa, fb = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.6, 0.8]])
    ia, ib = torch.tensor([[0.0, 0.0]]), torch.tensor([[3.0, 4.0]])
    # cos 0.6, Euclidean distance 5: S* = 0.6 - 0.1 * 5 ** (1/3)
    assert group_aware_similarity(fa, fb, ia, ib).item() == pytest.approx(0.6 - 0.1 * 5 ** (1 / 3), rel=1e-6)
    # cosine distance of orthogonal intermediates is 1: S* = cos - beta
    got = group_aware_similarity(fa, fb, torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 2.0]]),
                                 distance="cosine", beta=0.2, gamma=0.5)
    assert got.item() == pytest.approx(0.6 - 0.2, rel=1e-6)
    same = group_aware_similarity(fa, fa, ib, ib)
    assert same.item() == pytest.approx(1.0)  # identical inputs: no penalty
    with pytest.raises(ValueError, match="unknown distance"):
        group_aware_similarity(fa, fb, ia, ib, distance="manhattan")
    with pytest.raises(ValueError, match="shape mismatch"):
        group_aware_similarity(fa, fb, ia, torch.zeros(2, 2))


def test_groupface_checkpoint_round_trip_through_load_model(tmp_path):
    model = _model()
    path = save_checkpoint(model, tmp_path / "checkpoint.pt", "groupface", ARCH,
                           {"input_size": [32, 32], "channel_order": "RGB", "mean": [127.5] * 3,
                            "std": [127.5] * 3}, embedding_size=D)
    embedder = load_model(str(path))
    images = np.random.default_rng(0).integers(0, 256, size=(3, 32, 32, 3), dtype=np.uint8)
    rows = np.asarray(embedder(images))  # evaluation rows: [final embedding | GDN intermediate feature]
    assert embedder.score["name"] == "group-aware" and rows.shape[1] == D + embedder.score["extra_size"]
    got = rows[:, :D]
    x = (torch.from_numpy(images).permute(0, 3, 1, 2).float() - 127.5) / 127.5
    with torch.no_grad():
        expected = model(x).numpy()
        inter = model.forward_train(x)["intermediate"].numpy()
    assert np.abs(rows[:, D:] - inter).max() / np.abs(inter).max() < 1e-5
    scale = np.linalg.norm(expected, axis=1, keepdims=True)  # float32 rounding is relative to the row's norm
    assert np.abs(got - expected).max() / scale.min() < 1e-5
    assert math.isclose(float(np.linalg.norm(got[0])), float(scale[0, 0]), rel_tol=1e-5)
