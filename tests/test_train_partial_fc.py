"""Partial FC against the unsharded head: one process, and two gloo ranks on CPU (one spawn for every check)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fr_bench.train import build_head
from fr_bench.train.partial_fc import PartialFC, exclude_from_ddp, shard_range

from _dist_helpers import spawn_ranks

C, D = 11, 8  # 11 classes on 2 ranks: shards of 6 and 5
GLOBAL_LABELS = torch.tensor([2, 6, 8, 2, 9, 6, 8, 2])
SPLIT = 3  # rank 0 holds rows [0, 3), rank 1 rows [3, 8): unequal local batches
DIST_HEADS = ["cosface", "magface", "unpg_arcface"]  # plain margin, norms + regulariser, shared pair columns
MARGIN_HEADS = ["cosface", "arcface", "magface", "sphereface", "unpg_arcface", "unpg_magface"]


def make_head(name: str, seed: int = 0) -> nn.Module:
    """The same float64 head on every rank (same seed); SphereFace's lambda set to its floor regime."""
    torch.manual_seed(seed)
    head = build_head(name, embedding_size=D, num_classes=C).double()
    if name == "sphereface":
        head.on_step(10_000)
    return head


def global_embeddings() -> torch.Tensor:
    generator = torch.Generator().manual_seed(1)
    # norms ~ 20: inside MagFace's [10, 110], so its margin and regulariser get gradients
    return torch.randn(len(GLOBAL_LABELS), D, generator=generator, dtype=torch.float64) * 8.0


def reference(name: str, columns: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """The unsharded head on the global batch; with ``columns``, the exact CE over those classes only."""
    head = make_head(name)
    embeddings = global_embeddings().requires_grad_(True)
    if columns is None:
        loss = head(embeddings, GLOBAL_LABELS)
    else:
        logits = head.logits(embeddings, GLOBAL_LABELS)[:, columns]
        loss = F.cross_entropy(logits, torch.searchsorted(columns, GLOBAL_LABELS))
    loss.backward()
    return {"loss": loss.detach(), "grad": embeddings.grad, "weight_grad": head.weight.grad}


def pfc_step(pfc: PartialFC, embeddings: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
    embeddings = embeddings.clone().requires_grad_(True)
    loss = pfc(embeddings, labels)
    loss.backward()
    return {"loss": loss.detach(), "grad": embeddings.grad, "weight_grad": pfc.weight.grad}


def close(actual: torch.Tensor, expected: torch.Tensor) -> None:
    torch.testing.assert_close(actual, expected, rtol=1e-6, atol=1e-9)


# -- one process -------------------------------------------------------------------------------------------------
def test_shard_range_hand_cases_and_partition() -> None:
    assert [shard_range(10, 3, r) for r in range(3)] == [(0, 4), (4, 3), (7, 3)]
    assert [shard_range(11, 2, r) for r in range(2)] == [(0, 6), (6, 5)]
    assert shard_range(7, 1, 0) == (0, 7)
    for classes in range(1, 30):
        for world in range(1, 9):
            ranges = [shard_range(classes, world, r) for r in range(world)]
            covered = [c for start, count in ranges for c in range(start, start + count)]
            assert covered == list(range(classes))
            assert max(n for _, n in ranges) - min(n for _, n in ranges) <= 1
    with pytest.raises(ValueError, match="rank 3"):
        shard_range(10, 3, 3)


@pytest.mark.parametrize("name", MARGIN_HEADS)
def test_rate_one_is_the_plain_head(name: str) -> None:
    expected = reference(name)
    head = make_head(name)
    original = head.weight.detach().clone()
    pfc = PartialFC(head, sample_rate=1.0)
    assert head.weight is None and pfc.weight.shape == (C, D)
    got = pfc_step(pfc, global_embeddings(), GLOBAL_LABELS)
    for key in ("loss", "grad", "weight_grad"):
        close(got[key], expected[key])
    torch.testing.assert_close(pfc.full_weight(), original, rtol=0, atol=0)


def test_sampling_keeps_positives_is_deterministic_and_gives_the_exact_ce_over_the_sample() -> None:
    pfc = PartialFC(make_head("cosface"), sample_rate=0.6, seed=5)
    assert pfc.num_sample == int(0.6 * C) == 6  # the 4 positives of the batch + 2 of the 7 other classes
    sampled = pfc.sample_classes(GLOBAL_LABELS, step=0)
    assert set(GLOBAL_LABELS.tolist()) <= set(sampled.tolist())
    assert len(sampled) == 6 and torch.equal(sampled, sampled.sort().values)
    assert torch.equal(sampled, pfc.sample_classes(GLOBAL_LABELS, step=0))
    draws = {tuple(pfc.sample_classes(GLOBAL_LABELS, step=s).tolist()) for s in range(20)}
    assert len(draws) > 1  # negatives change with the step
    assert all(set(GLOBAL_LABELS.tolist()) <= set(draw) for draw in draws)
    many = torch.arange(C)  # more positives than num_sample: exactly the positives
    assert torch.equal(pfc.sample_classes(many[:7], step=3), many[:7])

    pfc.on_step(0)
    got = pfc_step(pfc, global_embeddings(), GLOBAL_LABELS)
    expected = reference("cosface", columns=sampled)
    close(got["loss"], expected["loss"])
    close(got["grad"], expected["grad"])
    close(got["weight_grad"], expected["weight_grad"])
    unsampled = torch.ones(C, dtype=torch.bool)
    unsampled[sampled] = False
    assert torch.count_nonzero(got["weight_grad"][unsampled]) == 0


def test_unpg_under_sampling_is_the_exact_ce_over_sampled_classes_and_pair_columns() -> None:
    pfc = PartialFC(make_head("unpg_cosface"), sample_rate=0.6, seed=1)
    sampled = pfc.sample_classes(GLOBAL_LABELS, step=0)
    got = pfc_step(pfc, global_embeddings(), GLOBAL_LABELS)
    head = make_head("unpg_cosface")
    embeddings = global_embeddings().requires_grad_(True)
    logits = head.logits(embeddings, GLOBAL_LABELS)  # (B, C + kept pair columns)
    assert logits.shape[1] > C
    columns = torch.cat([sampled, torch.arange(C, logits.shape[1])])
    loss = F.cross_entropy(logits[:, columns], torch.searchsorted(sampled, GLOBAL_LABELS))
    loss.backward()
    close(got["loss"], loss.detach())
    close(got["grad"], embeddings.grad)


def test_state_dict_resumes_the_same_weights_and_samples() -> None:
    pfc = PartialFC(make_head("cosface"), sample_rate=0.3, seed=2)
    embeddings = global_embeddings()
    for _ in range(3):
        pfc(embeddings, GLOBAL_LABELS)
    state = pfc.state_dict()
    assert state["_extra_state"]["step"] == 3
    resumed = PartialFC(make_head("cosface", seed=9), sample_rate=0.3)
    resumed.load_state_dict(state)
    torch.testing.assert_close(resumed.weight, pfc.weight, rtol=0, atol=0)
    assert torch.equal(resumed.sample_classes(GLOBAL_LABELS), pfc.sample_classes(GLOBAL_LABELS))
    assert resumed(embeddings, GLOBAL_LABELS).item() == pfc(embeddings, GLOBAL_LABELS).item()

    other = PartialFC(make_head("cosface", seed=4), sample_rate=0.3)
    with pytest.raises(RuntimeError, match="saved for 12 classes"):
        other.load_state_dict({"weight": torch.zeros(12, D), "_extra_state": {**state["_extra_state"],
                                                                                 "num_classes": 12}})


def test_on_step_reaches_the_head_and_bad_input_is_refused() -> None:
    head = make_head("cosface")
    seen: list[int] = []
    head.on_step = seen.append
    pfc = PartialFC(head, sample_rate=0.5)
    pfc.on_step(7)
    assert seen == [7] and pfc.get_extra_state()["step"] == 7
    for rate in (0.0, 1.5, -0.1):
        with pytest.raises(ValueError, match="sample_rate"):
            PartialFC(make_head("cosface"), sample_rate=rate)
    with pytest.raises(ValueError, match="margin_logits"):
        PartialFC(nn.Linear(D, C))
    with pytest.raises(ValueError, match="margin_logits"):
        PartialFC(build_head("softmax", embedding_size=D, num_classes=C))
    with pytest.raises(ValueError, match="IR-Softmax"):
        PartialFC(build_head("ir_cosface", embedding_size=D, num_classes=C))
    with pytest.raises(ValueError, match="GroupFace"):
        PartialFC(build_head("groupface", embedding_size=D, num_classes=C))
    with pytest.raises(ValueError, match="not initialised"):
        PartialFC(make_head("cosface"), process_group=object())
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 11\)"):
        pfc(global_embeddings(), torch.full((8,), C))
    with pytest.raises(ValueError, match="embeddings must be"):
        pfc(torch.zeros(8, D + 1, dtype=torch.float64), GLOBAL_LABELS)


class _Trainable(nn.Module):
    """A linear 'backbone' and a Partial FC in one module, as a trainer wraps them in DDP."""

    def __init__(self, pfc: nn.Module) -> None:
        super().__init__()
        torch.manual_seed(3)
        self.network = nn.Linear(4, D).double()
        self.head = pfc

    def forward(self, inputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.head(self.network(inputs), labels)


def global_inputs() -> torch.Tensor:
    return torch.randn(len(GLOBAL_LABELS), 4, generator=torch.Generator().manual_seed(2), dtype=torch.float64) * 5


def ddp_step(rows: slice) -> dict[str, torch.Tensor]:
    """One backward through DDP(backbone + Partial FC) on this rank's rows (the shards are 6 and 5 rows: DDP
    would refuse them, or broadcast rank 0's over the others, were they not excluded)."""
    from torch.nn.parallel import DistributedDataParallel

    model = _Trainable(PartialFC(make_head("arcface"), sample_rate=1.0, backbone_grads_averaged=True))
    exclude_from_ddp(model)
    ddp = DistributedDataParallel(model)
    loss = ddp(global_inputs()[rows], GLOBAL_LABELS[rows])
    loss.backward()
    return {"loss": loss.detach(), "network_grad": model.network.weight.grad, "weight_grad": model.head.weight.grad}


# -- two gloo ranks ------------------------------------------------------------------------------------------------
def _rank_worker(rank: int, world: int, out_dir: str) -> None:
    rows = slice(0, SPLIT) if rank == 0 else slice(SPLIT, None)
    embeddings, labels = global_embeddings()[rows], GLOBAL_LABELS[rows]
    results: dict[str, object] = {}
    for name in DIST_HEADS:
        results[name] = pfc_step(PartialFC(make_head(name), sample_rate=1.0), embeddings, labels)
    sampled_pfc = PartialFC(make_head("cosface"), sample_rate=0.5, seed=3)
    results["sampled"] = sampled_pfc.sample_classes(GLOBAL_LABELS)
    results["rate_half"] = pfc_step(sampled_pfc, embeddings, labels)
    averaged = PartialFC(make_head("cosface"), sample_rate=1.0, backbone_grads_averaged=True)
    results["averaged"] = pfc_step(averaged, embeddings, labels)
    state = averaged.full_state_dict()
    fresh = PartialFC(make_head("cosface", seed=8), sample_rate=1.0)
    fresh.load_state_dict(state)
    results["full_weight"] = state["weight"]
    results["reloaded_shard"] = fresh.weight.detach()
    results["shard"] = (averaged.class_start, averaged.num_local)
    results["ddp"] = ddp_step(rows)
    torch.save(results, Path(out_dir) / f"rank{rank}.pt")


def test_two_gloo_ranks_match_the_single_process_head(tmp_path: Path) -> None:
    spawn_ranks(_rank_worker, 2, tmp_path, str(tmp_path))
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in range(2)]
    rows = [slice(0, SPLIT), slice(SPLIT, None)]
    assert [r["shard"] for r in ranks] == [(0, 6), (6, 5)]
    for name in DIST_HEADS:
        expected = reference(name)
        for rank, got in enumerate(ranks):
            start, count = got["shard"]
            close(got[name]["loss"], expected["loss"])
            close(got[name]["grad"], expected["grad"][rows[rank]])
            close(got[name]["weight_grad"], expected["weight_grad"][start : start + count])

    # rate 0.5: rank 0 draws int(0.5 * 6) = 3 centres around its positive class 2; rank 1 (int(2.5) = 2) keeps
    # exactly its three positives 6, 8, 9. The loss is the exact CE over the union of the two samples.
    sampled0, sampled1 = ranks[0]["sampled"], ranks[1]["sampled"]
    assert len(sampled0) == 3 and 2 in sampled0.tolist() and sampled0.max() < 6
    assert sampled1.tolist() == [6, 8, 9]
    union = torch.cat([sampled0, sampled1])
    expected = reference("cosface", columns=union)
    for rank, got in enumerate(ranks):
        close(got["rate_half"]["loss"], expected["loss"])
        close(got["rate_half"]["grad"], expected["grad"][rows[rank]])

    # DDP compensation: the local embeddings receive world_size times the exact gradient.
    expected = reference("cosface")
    for rank, got in enumerate(ranks):
        close(got["averaged"]["grad"], 2 * expected["grad"][rows[rank]])
        torch.testing.assert_close(got["full_weight"], make_head("cosface").weight.detach(), rtol=0, atol=0)
        start, count = got["shard"]
        torch.testing.assert_close(got["reloaded_shard"], got["full_weight"][start : start + count], rtol=0, atol=0)

    # DDP(backbone + Partial FC) with exclude_from_ddp: the averaged backbone gradient is the single-process one.
    model = _Trainable(make_head("arcface"))
    loss = model(global_inputs(), GLOBAL_LABELS)
    loss.backward()
    for got in ranks:
        start, count = got["shard"]
        close(got["ddp"]["loss"], loss.detach())
        close(got["ddp"]["network_grad"], model.network.weight.grad)
        close(got["ddp"]["weight_grad"], model.head.weight.grad[start : start + count])
