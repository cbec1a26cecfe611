"""Recipes: inheritance, typed overrides, clear errors naming file and key; the learning-rate schedule."""

from __future__ import annotations

import math
import tomllib

import pytest

from fr_bench.train.recipe import RECIPE_NAMES, RecipeError, load_recipe, parse_overrides, recipes_dir
from fr_bench.train.schedule import lr_at, warmup_steps


def _read(name: str) -> dict:
    with open(recipes_dir() / f"{name}.toml", "rb") as f:
        return tomllib.load(f)


@pytest.mark.parametrize("name", RECIPE_NAMES)
def test_every_loss_recipe_overrides_only_its_head(name):
    raw = _read(name)
    assert raw.pop("inherit") == "base"
    assert set(raw) == {"head"}, f"{name}.toml sets more than [head]"
    base, rec = _read("base"), load_recipe(name)
    for table in ("model", "optim", "data", "run"):
        assert rec.config[table] == base[table]
    assert rec.config["head"]["name"] == raw["head"]["name"]
    assert rec.config["head"]["params"] == raw["head"]["params"]


def test_base_recipe_has_the_issue_defaults():
    b = load_recipe("arcface").config
    assert b["model"]["input_size"] == 112 and b["model"]["embedding_size"] == 512
    assert b["optim"]["momentum"] == 0.9 and b["optim"]["weight_decay"] == 5e-4
    assert b["optim"]["schedule"] in ("poly", "cosine") and b["data"]["flip"] is True
    assert load_recipe("cosface").config["head"]["params"] == {"s": 64.0, "m": 0.35}
    assert load_recipe("arcface").config["head"]["params"]["m"] == 0.5
    mag = load_recipe("magface").config["head"]["params"]
    assert (mag["l_a"], mag["u_a"], mag["l_m"], mag["u_m"], mag["lambda_g"]) == (10, 110, 0.45, 0.8, 35)


def test_every_recipe_builds_its_head():
    from fr_bench.train import build_head

    for name in RECIPE_NAMES:
        head = load_recipe(name).config["head"]
        build_head(head["name"], embedding_size=8, num_classes=3, **head["params"])


def test_overrides_are_typed_by_the_value_they_replace():
    rec = load_recipe("arcface", ["optim.lr=1", "optim.epochs=3", "run.bf16=false", "model.backbone=tinyface",
                                  "head.params.s=32", "data.options={num_classes = 5}"])
    c = rec.config
    assert isinstance(c["optim"]["lr"], float) and c["optim"]["lr"] == 1.0
    assert isinstance(c["optim"]["epochs"], int) and c["optim"]["epochs"] == 3
    assert c["run"]["bf16"] is False and c["model"]["backbone"] == "tinyface"
    assert c["head"]["params"]["s"] == 32.0 and c["data"]["options"] == {"num_classes": 5}
    assert rec.overrides["optim.lr"] == 1
    assert load_recipe("arcface", {"optim.schedule": "cosine"}).config["optim"]["schedule"] == "cosine"


@pytest.mark.parametrize("item, words", [
    ("optim.lrr=0.1", ["arcface.toml", "optim.lrr"]),
    ("nosuch.key=1", ["arcface.toml", "nosuch.key"]),
    ("optim.epochs=2.5", ["arcface.toml", "optim.epochs", "int"]),
    ("run.bf16=maybe", ["arcface.toml", "run.bf16", "bool"]),
    ("optim.lr=fast", ["arcface.toml", "optim.lr", "float"]),
])
def test_bad_override_names_file_and_key(item, words):
    with pytest.raises(RecipeError) as err:
        load_recipe("arcface", [item])
    for w in words:
        assert w in str(err.value)


def test_override_syntax_error():
    with pytest.raises(RecipeError, match="dotted.key=value"):
        parse_overrides(["optim.lr"])


def test_unknown_key_in_a_loss_file_names_that_file(tmp_path):
    (tmp_path / "base.toml").write_text('[optim]\nlr = 0.1\n[head]\nname = "x"\nparams = {}\n')
    (tmp_path / "mine.toml").write_text('inherit = "base"\n[optim]\nlearning_rate = 0.2\n')
    with pytest.raises(RecipeError) as err:
        load_recipe(tmp_path / "mine.toml")
    assert "mine.toml" in str(err.value) and "optim.learning_rate" in str(err.value)
    (tmp_path / "ok.toml").write_text('inherit = "base"\n[optim]\nlr = 1\n[head]\nparams = { s = 3 }\n')
    rec = load_recipe(tmp_path / "ok.toml")
    assert rec.config == {"optim": {"lr": 1.0}, "head": {"name": "x", "params": {"s": 3}}}
    assert [p.rsplit("/", 1)[-1] for p in rec.files] == ["base.toml", "ok.toml"]


def test_inheritance_cycle_and_missing_parent(tmp_path):
    (tmp_path / "a.toml").write_text('inherit = "b"\n')
    (tmp_path / "b.toml").write_text('inherit = "a"\n')
    with pytest.raises(RecipeError, match="cycle"):
        load_recipe(tmp_path / "a.toml")
    (tmp_path / "c.toml").write_text('inherit = "nothere"\n')
    with pytest.raises(RecipeError, match="nothere"):
        load_recipe(tmp_path / "c.toml")
    (tmp_path / "bad.toml").write_text('x = = 1\n')
    with pytest.raises(RecipeError, match="bad.toml"):
        load_recipe(tmp_path / "bad.toml")


def test_unknown_recipe_name_lists_known():
    with pytest.raises(RecipeError, match="arcface"):
        load_recipe("arcfcae")


def test_digest_changes_with_any_value():
    assert load_recipe("arcface").digest() == load_recipe("arcface").digest()
    assert load_recipe("arcface").digest() != load_recipe("arcface", ["optim.lr=0.2"]).digest()


def test_schedule_hand_computed():
    # 10 steps, 2 of warm-up: 0.05, 0.1, then poly power 2 over the remaining 8
    assert warmup_steps(10, 0.2) == 2
    assert lr_at(0, 10, 0.1, warmup=2) == pytest.approx(0.05)
    assert lr_at(1, 10, 0.1, warmup=2) == pytest.approx(0.1)
    assert lr_at(2, 10, 0.1, warmup=2) == pytest.approx(0.1)
    assert lr_at(6, 10, 0.1, warmup=2) == pytest.approx(0.1 * (1 - 4 / 8) ** 2)
    assert lr_at(9, 10, 0.1, warmup=2, power=1.0) == pytest.approx(0.1 / 8)
    assert lr_at(6, 10, 0.1, warmup=2, kind="cosine") == pytest.approx(0.05 * (1 + math.cos(math.pi / 2)))
    with pytest.raises(ValueError):
        lr_at(10, 10, 0.1)
    with pytest.raises(ValueError):
        lr_at(0, 10, 0.1, kind="step")
