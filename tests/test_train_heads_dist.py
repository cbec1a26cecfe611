"""Heads under torch.distributed, two gloo ranks on CPU with uneven batches (5 + 3 rows): UNPG with gather=True
forms its pairs over the global batch (loss and gradients equal to one process computing the same thing), and the
rule-updated buffers (centre-loss centres, IR-Softmax weights) are identical on both ranks and equal to one
process updating on the global batch."""

from __future__ import annotations

import torch

from _dist_helpers import spawn_ranks
from fr_bench.train import build_head

SPLIT = (5, 3)


def _data():
    g = torch.Generator().manual_seed(11)
    x = torch.randn(8, 5, generator=g, dtype=torch.float64) * 3
    y = torch.tensor([0, 1, 2, 3, 0, 1, 2, 2])
    return x, y


def _heads():
    torch.manual_seed(4)
    unpg = build_head("unpg", base="arcface", gather=True, embedding_size=5, num_classes=4).double()
    center = build_head("center", embedding_size=5, num_classes=4).double()
    ir = build_head("ir_cosface", embedding_size=5, num_classes=4).double()
    return unpg, center, ir


def _worker(rank: int, world_size: int, out_dir: str) -> None:
    x, y = _data()
    lo = 0 if rank == 0 else SPLIT[0]
    xr = x[lo:lo + SPLIT[rank]].clone().requires_grad_()
    yr = y[lo:lo + SPLIT[rank]]
    unpg, center, ir = _heads()
    loss = unpg(xr, yr)
    loss.backward()
    center(xr.detach(), yr)
    ir(xr.detach(), yr)
    torch.save({"loss": loss.item(), "grad": xr.grad, "kept": unpg.kept_negatives(xr, yr).detach(),
                "centers": center.centers, "ir_weight": ir.weight.clone()}, f"{out_dir}/rank{rank}.pt")


def test_two_gloo_ranks_match_one_process(tmp_path):
    # spawn, not fork: a child forked after the parent's OpenMP pool has run hangs (seen with the other tests first)
    spawn_ranks(_worker, 2, tmp_path, str(tmp_path))
    got = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]

    x, y = _data()
    unpg, center, ir = _heads()
    xt = x.clone().requires_grad_()
    kept = unpg.kept_negatives(xt, y)
    losses = []
    for lo, n in ((0, SPLIT[0]), (SPLIT[0], SPLIT[1])):
        z = unpg.base.logits(xt[lo:lo + n], y[lo:lo + n])
        full = torch.cat([z, (unpg.s * kept).expand(n, -1)], dim=1)
        losses.append(torch.nn.functional.cross_entropy(full, y[lo:lo + n]))
    sum(losses).backward()  # each rank's gradient collects every rank's loss through the gather
    for r, lo, n in ((0, 0, SPLIT[0]), (1, SPLIT[0], SPLIT[1])):
        assert abs(got[r]["loss"] - losses[r].item()) < 1e-12
        torch.testing.assert_close(got[r]["kept"], kept.detach())
        torch.testing.assert_close(got[r]["grad"], xt.grad[lo:lo + n], rtol=1e-10, atol=1e-12)

    center(x, y)
    ir(x, y)
    for r in range(2):
        torch.testing.assert_close(got[r]["centers"], center.centers, rtol=1e-12, atol=1e-14)
        torch.testing.assert_close(got[r]["ir_weight"], ir.weight, rtol=1e-12, atol=1e-14)
