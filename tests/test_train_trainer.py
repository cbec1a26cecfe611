"""Trainer: bit-identical resume on CPU, DDP (gloo, 2 ranks) against one process, checkpoints, seed policy."""

from __future__ import annotations

import os
import socket

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fr_bench.models import load_model
from fr_bench.train.recipe import load_recipe
from fr_bench.train.runtime import read_log
from fr_bench.train.trainer import CHECKPOINT, LOG, STATE, plan_steps, train
from train_fixtures import TINY, one_thread  # noqa: F401  (one_thread: a fixture)

RUN = [*TINY, "optim.warmup_fraction=0.2", "run.max_steps=6",
       "data.options={num_classes = 4, images_per_class = 6, image_size = 32}"]


pytestmark = pytest.mark.usefixtures("one_thread")


def _recipe(name="cosface", extra=()):
    return load_recipe(name, [*RUN, *extra])


def _state(path):
    return torch.load(path, map_location="cpu", weights_only=False)


@pytest.mark.parametrize("name", ["center", "sphereface"])
def test_resume_is_bit_identical_to_an_uninterrupted_run(tmp_path, name):
    rec = _recipe(name)
    full = train(rec, "synthetic", tmp_path / "full", progress=False)
    part = train(rec, "synthetic", tmp_path / "part", progress=False, stop_after=3)
    assert part.step == 3 and not part.finished and (tmp_path / "part" / STATE).is_file()
    done = train(rec, "synthetic", tmp_path / "part", progress=False, resume=True)
    assert done.step == full.step == 6 and done.finished
    a, b = _state(tmp_path / "full" / STATE), _state(tmp_path / "part" / STATE)
    for part_name in ("network", "head"):
        assert a[part_name].keys() == b[part_name].keys()
        for k in a[part_name]:
            assert torch.equal(a[part_name][k], b[part_name][k]), (part_name, k)
    for k, s in a["optimizer"]["state"].items():
        assert torch.equal(s["momentum_buffer"], b["optimizer"]["state"][k]["momentum_buffer"])
    ca, cb = _state(tmp_path / "full" / CHECKPOINT), _state(tmp_path / "part" / CHECKPOINT)
    assert all(torch.equal(ca["state_dict"][k], cb["state_dict"][k]) for k in ca["state_dict"])
    la = [r["loss"] for r in read_log(tmp_path / "full" / LOG)]
    lb = [r["loss"] for r in read_log(tmp_path / "part" / LOG)]
    assert la == lb and len(la) == 6


def test_resume_refuses_another_recipe_and_existing_out(tmp_path):
    train(_recipe(), "synthetic", tmp_path / "r", progress=False, stop_after=2)
    with pytest.raises(ValueError, match="another recipe"):
        train(_recipe(extra=["optim.lr=0.05"]), "synthetic", tmp_path / "r", progress=False, resume=True)
    with pytest.raises(FileExistsError, match="--resume"):
        train(_recipe(), "synthetic", tmp_path / "r", progress=False)
    with pytest.raises(FileNotFoundError, match="nothing to resume"):
        train(_recipe(), "synthetic", tmp_path / "empty", progress=False, resume=True)
    assert not (tmp_path / "empty").exists()


def test_same_seed_same_weights_other_seed_other_weights(tmp_path):
    a = train(_recipe(extra=["run.max_steps=2"]), "synthetic", tmp_path / "a", progress=False)
    b = train(_recipe(extra=["run.max_steps=2"]), "synthetic", tmp_path / "b", progress=False)
    c = train(_recipe(extra=["run.max_steps=2", "run.seed=1"]), "synthetic", tmp_path / "c", progress=False)
    sa, sb, sc = (_state(r.checkpoint)["state_dict"] for r in (a, b, c))
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)


def test_checkpoint_is_self_describing_and_evaluates_on_resized_112_crops(tmp_path):
    rec = _recipe(extra=["run.max_steps=2"])
    res = train(rec, "synthetic", tmp_path / "run", progress=False)
    ck = _state(res.checkpoint)
    assert ck["arch"] == "tinyface" and ck["arch_kwargs"] == {"num_features": 16, "width": 4}
    assert ck["preprocessing"]["input_size"] == [32, 32]  # the bare network with its true input contract
    assert ck["preprocessing"]["resize"] == "bilinear-antialias"
    meta = ck["meta"]
    assert meta["head"] == "cosface" and meta["steps"] == 2
    assert meta["recipe"]["config"]["model"]["backbone"] == "tinyface" and meta["git"]
    # evaluation's loader: 112x112 crops, resized to 32x32 by the contract, equal the bare network on the
    # independently resized and normalised crops
    emb = load_model(res.checkpoint)
    assert emb.preprocessing["input_size"] == [32, 32]
    crop = torch.randint(0, 256, (3, 112, 112, 3), dtype=torch.uint8)
    got = emb(crop)
    from fr_bench.models import create_backbone

    net = create_backbone("tinyface", num_features=16, width=4).eval()
    net.load_state_dict(_state(tmp_path / "run" / STATE)["network"])
    x = F.interpolate(crop.permute(0, 3, 1, 2).float(), size=(32, 32), mode="bilinear", align_corners=False,
                      antialias=True)
    with torch.no_grad():
        want = net((x - 127.5) / 127.5)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_partial_fc_at_rate_one_trains_like_the_plain_head(tmp_path):
    plain = train(_recipe(extra=["run.max_steps=3"]), "synthetic", tmp_path / "plain", progress=False)
    pfc = train(_recipe(extra=["run.max_steps=3", "head.partial_fc=true", "head.sample_rate=1.0"]), "synthetic",
                tmp_path / "pfc", progress=False)
    np.testing.assert_allclose([r["loss"] for r in pfc.rows], [r["loss"] for r in plain.rows], rtol=1e-5)
    assert _state(tmp_path / "pfc" / STATE)["head"]["weight"].shape == (4, 16)


def test_validation_callback_sees_the_network_in_eval_mode_and_logs_its_metrics(tmp_path):
    seen = []

    class Probe:
        def on_validate(self, step, model):
            seen.append((step, model.training))
            return {"val_probe": float(step)}

    res = train(_recipe(extra=["run.max_steps=4", "run.log_every=10", "run.validate_every=2"]), "synthetic",
                tmp_path / "v", progress=False, callbacks=[Probe()])
    assert seen == [(2, False), (4, False)]
    assert [r.get("val_probe") for r in res.rows] == [2.0, 4.0]
    assert [r["val_probe"] for r in read_log(tmp_path / "v" / LOG)] == ["2", "4"]


def test_plan_steps():
    cfg = _recipe().config
    assert plan_steps(cfg, 24, 1) == (8, 3, 6)
    assert plan_steps(cfg, 24, 2) == (4, 3, 6)
    assert plan_steps({**cfg, "run": {**cfg["run"], "max_steps": 0}}, 24, 1)[2] == 3 * cfg["optim"]["epochs"]
    with pytest.raises(ValueError, match="split evenly"):
        plan_steps(cfg, 24, 3)
    with pytest.raises(ValueError, match="fewer than one global batch"):
        plan_steps(cfg, 7, 1)


# ------------------------------------------------------------------------------------------ DDP, 2 gloo ranks
DDP = ["model.backbone_kwargs={width=4, norm = \"group\"}", "run.max_steps=4"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "RANK": str(rank),
                       "WORLD_SIZE": str(world), "LOCAL_RANK": str(rank)})
    torch.set_num_threads(1)
    try:
        train(_recipe(extra=DDP), "synthetic", out, device="cpu", progress=False)
    finally:
        torch.distributed.destroy_process_group()


def test_two_gloo_ranks_match_one_process_on_the_same_global_batch(tmp_path):
    """BatchNorm is per rank under DDP (as in arcface_torch), so the comparison uses tinyface with GroupNorm."""
    one = train(_recipe(extra=DDP), "synthetic", tmp_path / "one", progress=False)
    # fork: the children inherit the imported modules (a spawned child spends seconds importing torch again)
    torch.multiprocessing.start_processes(_rank, args=(2, _free_port(), str(tmp_path / "two")), nprocs=2,
                                          join=True, start_method="fork")
    l1 = np.array([float(r["loss"]) for r in read_log(tmp_path / "one" / LOG)])
    l2 = np.array([float(r["loss"]) for r in read_log(tmp_path / "two" / LOG)])
    assert len(l1) == len(l2) == one.total_steps == 4
    np.testing.assert_allclose(l2, l1, rtol=1e-4)
    assert not np.allclose(l1[0], l1[-1])  # it trains: the loss moves
    s1, s2 = _state(tmp_path / "one" / CHECKPOINT)["state_dict"], _state(tmp_path / "two" / CHECKPOINT)["state_dict"]
    for k in s1:
        torch.testing.assert_close(s2[k], s1[k], rtol=1e-4, atol=1e-5)
    assert _state(tmp_path / "two" / CHECKPOINT)["meta"]["world_size"] == 2
