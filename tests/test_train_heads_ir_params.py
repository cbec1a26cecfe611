"""IR-Softmax's wrapped head takes its own parameters, SphereFace's lambda schedule included (whose ``base`` the
wrapper keeps for the choice of head): through the ``base_params`` table, as the ir_sphereface recipe does, checked
against the schedule max(lambda_min, base (1 + gamma step)^-power) written out here."""

from __future__ import annotations

import pytest

from fr_bench.train import build_head
from fr_bench.train.heads.registry import HeadConfigError
from fr_bench.train.recipe import load_recipe


def _schedule(step, base, gamma, power, lambda_min):
    return max(lambda_min, base * (1.0 + gamma * step) ** (-power))


def test_ir_sphereface_sets_the_lambda_schedule_through_base_params():
    sched = {"base": 500.0, "gamma": 0.5, "power": 2.0, "lambda_min": 3.0}
    head = build_head("ir_sphereface", embedding_size=4, num_classes=3, momentum=0.8, base_params={"m": 3, **sched})
    assert head.momentum == 0.8 and head.base.m == 3
    for step in (0, 1, 7, 30, 10_000):  # 500 / (1 + 0.5 k)^2 reaches the floor 3 between k = 22 and 23
        head.on_step(step)
        assert head.base.lam == pytest.approx(_schedule(step, **sched))
    assert head.base.lam == 3.0


def test_recipe_passes_the_released_schedule():
    params = load_recipe("ir_sphereface").config["head"]["params"]
    head = build_head("ir_sphereface", embedding_size=4, num_classes=3, **params)
    released = {"base": 1000.0, "gamma": 0.12, "power": 1.0, "lambda_min": 5.0}  # wy1iu/sphereface prototxt
    for step in (0, 100, 5000):
        head.on_step(step)
        assert head.base.lam == pytest.approx(_schedule(step, **released))
    assert head.base.m == 4


def test_flat_keys_still_reach_the_base_and_misuse_is_named():
    head = build_head("ir_cosface", embedding_size=4, num_classes=3, s=30.0, base_params={"m": 0.2})
    assert (head.base.s, head.base.m3) == (30.0, 0.2)
    with pytest.raises(HeadConfigError, match="base_params"):
        build_head("ir_sphereface", embedding_size=4, num_classes=3, base=1000.0)
    with pytest.raises(HeadConfigError, match="'m' given both flat and in base_params"):
        build_head("ir_cosface", embedding_size=4, num_classes=3, m=0.3, base_params={"m": 0.2})
    with pytest.raises(HeadConfigError, match="unknown parameter.*'lambda_min'.*cosface"):
        build_head("ir_cosface", embedding_size=4, num_classes=3, base_params={"lambda_min": 5.0})
