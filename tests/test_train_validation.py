"""Training validation (issue 14): ``--val`` callbacks through evaluation's paths, best checkpoint by a metric."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import pytest
import torch
from click.testing import CliRunner

from fr_bench.models import create_backbone
from fr_bench.train import trainer as trainer_mod
from fr_bench.train.best import BEST, BEST_RECORD, BestTracker, metric_mode
from fr_bench.train.recipe import load_recipe
from fr_bench.train.runtime import read_log
from fr_bench.train.trainer import STATE, train
from train_fixtures import TINY, one_thread  # noqa: F401  (one_thread: a fixture)

SYNTH = "data.options={num_classes = 4, images_per_class = 6, image_size = 32}"
pytestmark = pytest.mark.usefixtures("one_thread")


def _recipe(*extra):
    return load_recipe("cosface", [*TINY, SYNTH, "run.max_steps=6", "run.validate_every=1", *extra])


def _fake_run_suite(monkeypatch, fn):
    """Replace ``fr_bench.suites.run.run_suite`` (what the suite callback calls) by ``fn``."""
    import fr_bench.suites.run as mod

    monkeypatch.setattr(mod, "run_suite", fn)


def _ev(**metrics):
    return SimpleNamespace(result=SimpleNamespace(metrics=metrics))


# ------------------------------------------------------------------------------------------------ the callbacks
def test_suite_callback_runs_the_suite_on_the_exported_network_and_names_its_metrics(monkeypatch):
    from fr_bench.cli_train import SuiteValidation

    calls = []

    def fake(model, suite, root, **kw):
        calls.append((model, suite, root, kw))
        evs = {"lfw": _ev(**{"accuracy": 0.9, "accuracy_std": 0.01, "eer": 0.1, "tar@far=1e-4": 0.5, "xnorm": 20.0}),
               "cfp_fp": _ev(accuracy=0.7, auc=0.8),
               "ijbc": _ev(**{"tar@far=1e-4": 0.8, "tar@far=1e-3": 0.85, "rank1": 0.95, "flags": "x"})}
        return SimpleNamespace(evaluations=evs, skipped={"agedb_30": "not found under /r"})

    _fake_run_suite(monkeypatch, fake)
    told = []
    suite = SimpleNamespace(name="quick")
    cb = SuiteValidation(suite, "/r", 32, "cpu", allow_missing=True, echo=told.append)
    net = create_backbone("tinyface", num_features=16, width=4)
    got = cb.on_validate(7, net)
    model, s, root, kw = calls[0]
    assert model is not net and s is suite and root == "/r"  # a copy with the same weights: training is untouched
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), net.state_dict().values()))
    assert kw["model_options"] == {"input_size": [32, 32], "mean": [127.5] * 3, "std": [127.5] * 3,
                                   "channel_order": "RGB"}
    assert kw["use_cache"] is False and kw["progress"] is False and kw["allow_missing"] is True
    assert kw["name"] == "step7" and kw["device"] == "cpu" and kw.get("out") is None
    want = {"val_lfw_accuracy": 0.9, "val_lfw_eer": 0.1, "val_lfw_tar@far=1e-4": 0.5, "val_cfp_fp_accuracy": 0.7,
            "val_cfp_fp_auc": 0.8, "val_ijbc_tar@far=1e-4": 0.8, "val_ijbc_tar@far=1e-3": 0.85,
            "val_ijbc_rank1": 0.95, "val_quick_mean_accuracy": (0.9 + 0.7) / 2}
    assert got.keys() == want.keys() and all(got[k] == pytest.approx(v) for k, v in want.items())
    cb.on_validate(8, net)
    assert len(told) == 1 and "agedb_30" in told[0]  # skipped members said once, not at every validation


def test_the_preflight_of_check_is_reused_by_every_validation(monkeypatch):
    from fr_bench.cli_train import SuiteValidation
    from fr_bench.suites import load_suite

    seen = []
    _fake_run_suite(monkeypatch, lambda *a, **k: seen.append(k.get("checked")) or SimpleNamespace(
        evaluations={"demo": _ev(accuracy=1.0)}, skipped={}))
    cb = SuiteValidation(load_suite("demo"), None, 32, "cpu")
    cb.check()
    net = create_backbone("tinyface", num_features=16, width=4)
    cb.on_validate(1, net)
    cb.on_validate(2, net)
    assert seen[0] is not None and seen[0].passed and seen == [seen[0], seen[0]]  # loaded once, not per step


def test_suite_without_accuracy_has_no_mean_and_ad_hoc_lists_are_named_suite(monkeypatch):
    from fr_bench.cli_train import SuiteValidation

    _fake_run_suite(monkeypatch, lambda *a, **k: SimpleNamespace(
        evaluations={"ijbb": _ev(**{"tar@far=1e-4": 0.3}), "demo": _ev(accuracy=0.6)}, skipped={}))
    net = create_backbone("tinyface", num_features=16, width=4)
    got = SuiteValidation(SimpleNamespace(name="ijbb,demo"), None, 32).on_validate(1, net)
    assert got == {"val_ijbb_tar@far=1e-4": pytest.approx(0.3), "val_demo_accuracy": pytest.approx(0.6),
                   "val_suite_mean_accuracy": pytest.approx(0.6)}
    _fake_run_suite(monkeypatch, lambda *a, **k: SimpleNamespace(evaluations={"ijbb": _ev(eer=0.2)}, skipped={}))
    assert SuiteValidation(SimpleNamespace(name="x"), None, 32).on_validate(1, net) == {"val_ijbb_eer": 0.2}


def test_val_spec_picks_the_suite_or_the_one_protocol_path(monkeypatch):
    from fr_bench.cli_train import ProtocolValidation, SuiteValidation, validation_callback

    one = validation_callback("lfw", "/data/lfw.bin", 32)
    assert isinstance(one, ProtocolValidation) and (one.protocol, one.root) == ("lfw", "/data/lfw.bin")
    suite = validation_callback("suite:demo", None, 32)
    assert isinstance(suite, SuiteValidation) and suite.suite.protocols == ["demo"] and suite.name == "demo"
    checked = []
    monkeypatch.setattr(SuiteValidation, "check", lambda self: checked.append(self.suite.protocols))
    listed = validation_callback("lfw,cfp_fp", "/r", 32)
    assert isinstance(listed, SuiteValidation) and listed.suite.protocols == ["lfw", "cfp_fp"]
    assert checked == [["lfw", "cfp_fp"]]

    seen = []
    import fr_bench.runner

    def fake_eval(model, protocol, root, **kw):
        seen.append((model, protocol, root, kw))
        return _ev(accuracy=0.75, eer=0.25, xnorm=3.0)

    monkeypatch.setattr(fr_bench.runner, "evaluate_model", fake_eval)
    net = create_backbone("tinyface", num_features=16, width=4)
    assert one.on_validate(3, net) == {"val_lfw_accuracy": 0.75, "val_lfw_eer": 0.25}
    model, protocol, root, kw = seen[0]
    assert type(model) is type(net) and protocol == "lfw" and root == "/data/lfw.bin"
    assert kw["model_options"]["input_size"] == [32, 32] and kw["use_cache"] is False


# ------------------------------------------------------------------------------------------- direction, tracker
@pytest.mark.parametrize("metric, mode", [
    ("val_lfw_accuracy", "max"), ("val_cfp_fp_eer", "min"), ("val_ijbc_tar@far=1e-4", "max"),
    ("val_quick_mean_accuracy", "max"), ("val_megaface_rank1", "max"), ("val_agedb_30_accuracy_std", "min"),
    ("val_ijbc_1n_G1/tpir@fpir=1e-2", "max"), ("val_lfw_auc", "max"), ("eer", "min")])
def test_direction_from_the_metric_kind(metric, mode):
    assert metric_mode(metric) == mode
    assert metric_mode(metric, "min") == "min" and metric_mode(metric, "max") == "max"


@pytest.mark.parametrize("metric", ["val_lfw_xnorm", "val_lfw_acuracy", "loss"])
def test_direction_unknown_needs_the_mode(metric):
    with pytest.raises(ValueError, match="keep_best_mode"):
        metric_mode(metric)
    with pytest.raises(ValueError, match="'max' or 'min'"):
        metric_mode("val_lfw_accuracy", "avg")


def test_tracker_strict_improvement_and_nan():
    t = BestTracker("m_accuracy", "max")
    seq = [float("nan"), 0.5, 0.5, 0.4, 0.6]
    assert [t.update(i + 1, {"m_accuracy": v}) for i, v in enumerate(seq)] == [False, True, False, False, True]
    assert (t.step, t.value, t.history) == (5, 0.6, [[2, 0.5], [5, 0.6]])


# --------------------------------------------------------------------------------------- best.pt in the trainer
class Scripted:
    """A validation callback returning a scripted value per step; records the network's weights at each call."""

    def __init__(self, name, values, extra=None):
        self.name, self.values, self.extra, self.weights = name, values, extra or {}, {}

    def on_validate(self, step, model):
        self.weights[step] = {k: v.detach().clone() for k, v in model.state_dict().items()}
        return {self.name: self.values[step], **self.extra}


def _spy_saves(monkeypatch):
    saved = []
    real = trainer_mod._save_best

    def spy(out, network, best, ckpt_args):
        saved.append(best.step)
        return real(out, network, best, ckpt_args)

    monkeypatch.setattr(trainer_mod, "_save_best", spy)
    return saved


SEQ = {1: 0.5, 2: 0.7, 3: 0.6, 4: 0.7, 5: 0.9, 6: 0.1}


@pytest.mark.parametrize("metric, mode, want", [
    ("val_demo_accuracy", "", [1, 2, 5]),   # higher is better; the tie at step 4 is no improvement
    ("val_demo_eer", "", [1, 6]),           # lower is better
    ("val_demo_eer", "max", [1, 2, 5]),     # run.keep_best_mode overrides the kind
])
def test_best_checkpoint_written_only_on_improvement(tmp_path, monkeypatch, metric, mode, want):
    saved = _spy_saves(monkeypatch)
    cb = Scripted(metric, SEQ)
    res = train(_recipe(f"run.keep_best={metric}", f"run.keep_best_mode={mode!r}" if mode else "run.keep_best_mode=''"),
                "synthetic", tmp_path / "r", progress=False, callbacks=[cb])
    assert saved == want
    rec = json.loads((tmp_path / "r" / BEST_RECORD).read_text())
    assert rec["step"] == want[-1] and rec["value"] == SEQ[want[-1]] and rec["metric"] == metric
    assert rec["history"] == [[s, SEQ[s]] for s in want] and res.best == rec
    ck = torch.load(tmp_path / "r" / BEST, map_location="cpu", weights_only=False)
    assert ck["meta"]["steps"] == want[-1] and ck["meta"]["best"]["value"] == SEQ[want[-1]]
    best_w = cb.weights[want[-1]]
    assert all(torch.equal(ck["state_dict"][k], best_w[k]) for k in best_w)
    if want[-1] != 6:
        assert not all(torch.equal(ck["state_dict"][k], cb.weights[6][k]) for k in best_w)
    assert [r[metric] for r in read_log(tmp_path / "r" / "log.csv")] == [f"{SEQ[s]:.8g}" for s in range(1, 7)]


def test_real_validation_leaves_the_training_unchanged(tmp_path):
    from fr_bench.cli_train import ProtocolValidation

    plain = train(_recipe("run.max_steps=3"), "synthetic", tmp_path / "plain", progress=False)
    val = train(_recipe("run.max_steps=3"), "synthetic", tmp_path / "val", progress=False,
                callbacks=[ProtocolValidation("demo", None, 32, "cpu")])
    assert [r["loss"] for r in val.rows] == [r["loss"] for r in plain.rows]
    assert all(0.0 <= r["val_demo_accuracy"] <= 1.0 for r in val.rows) and len(val.rows) == 3
    a, b = (torch.load(r.checkpoint, map_location="cpu", weights_only=False)["state_dict"] for r in (plain, val))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_best_pt_is_evaluated_by_load_model_like_checkpoint_pt(tmp_path):
    from fr_bench.models import load_model

    train(_recipe("run.keep_best=val_demo_accuracy"), "synthetic", tmp_path / "r", progress=False,
          callbacks=[Scripted("val_demo_accuracy", {s: 1.0 / s for s in range(1, 7)})])
    emb = load_model(str(tmp_path / "r" / BEST))
    assert emb.preprocessing["input_size"] == [32, 32] and emb.embedding_size == 16


def test_unknown_metric_is_an_error_at_the_first_validation_naming_the_metrics(tmp_path):
    cb = Scripted("val_demo_accuracy", SEQ, extra={"val_demo_eer": 0.2})
    with pytest.raises(ValueError, match="val_lfw_accuracy") as err:
        train(_recipe("run.keep_best=val_lfw_accuracy"), "synthetic", tmp_path / "r", progress=False, callbacks=[cb])
    assert "val_demo_accuracy, val_demo_eer" in str(err.value)
    assert list(cb.weights) == [1] and not (tmp_path / "r" / BEST).exists()


def test_keep_best_needs_validation_and_a_direction(tmp_path):
    with pytest.raises(ValueError, match="needs validation"):
        train(_recipe("run.keep_best=val_demo_accuracy"), "synthetic", tmp_path / "a", progress=False)
    with pytest.raises(ValueError, match="keep_best_mode"):
        train(_recipe("run.keep_best=val_loss"), "synthetic", tmp_path / "b", progress=False,
              callbacks=[Scripted("val_loss", SEQ)])
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_resume_keeps_the_best_so_far(tmp_path, monkeypatch):
    values = {1: 0.5, 2: 0.9, 3: 0.6, 4: 0.7, 5: 0.8, 6: 0.85}  # after the resume nothing beats step 2
    rec = _recipe("run.keep_best=val_demo_accuracy")
    train(rec, "synthetic", tmp_path / "r", progress=False, stop_after=3,
          callbacks=[Scripted("val_demo_accuracy", values)])
    before = (tmp_path / "r" / BEST).read_bytes()
    saved = _spy_saves(monkeypatch)
    done = train(rec, "synthetic", tmp_path / "r", progress=False, resume=True,
                 callbacks=[Scripted("val_demo_accuracy", values)])
    assert done.step == 6 and saved == []
    assert (tmp_path / "r" / BEST).read_bytes() == before
    assert json.loads((tmp_path / "r" / BEST_RECORD).read_text())["history"] == [[1, 0.5], [2, 0.9]]
    assert (tmp_path / "r" / STATE).is_file()


def _rank_best(rank, world, port, out):
    import os

    os.environ.update({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "RANK": str(rank),
                       "WORLD_SIZE": str(world), "LOCAL_RANK": str(rank)})
    torch.set_num_threads(1)
    real = trainer_mod._save_best

    def spy(o, network, best, ckpt_args):  # which rank writes, for which step
        with open(f"{out}.saves", "a") as f:
            f.write(f"{rank} {best.step}\n")
        return real(o, network, best, ckpt_args)

    trainer_mod._save_best = spy
    try:
        train(_recipe("run.max_steps=3", "run.keep_best=val_demo_accuracy",
                      "model.backbone_kwargs={width=4, norm = \"group\"}"), "synthetic", out, device="cpu",
              progress=False, callbacks=[Scripted("val_demo_accuracy", {1: 0.2, 2: 0.1, 3: 0.3})])
    finally:
        torch.distributed.destroy_process_group()


def test_under_two_ranks_only_rank_0_writes_the_best(tmp_path):
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    out = tmp_path / "two"
    torch.multiprocessing.start_processes(_rank_best, args=(2, port, str(out)), nprocs=2, join=True,
                                          start_method="fork")
    assert sorted((tmp_path / "two.saves").read_text().split("\n")[:-1]) == ["0 1", "0 3"]
    assert json.loads((out / BEST_RECORD).read_text())["history"] == [[1, 0.2], [3, 0.3]]


# -------------------------------------------------------------------------------------------------- the CLI
def _cli(*args):
    from fr_bench.cli import main

    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def test_cli_flag_errors(tmp_path):
    base = ["train", "cosface", "--data", "synthetic", "--out", tmp_path / "o", *TINY, SYNTH]
    both = _cli(*base, "--val", "demo", "--validate", "demo")
    assert both.exit_code != 0 and "not both" in both.output
    every = _cli(*base, "--val-every", "2")
    assert every.exit_code != 0 and "--val-every needs --val" in every.output
    best = _cli(*base, "--keep-best", "val_demo_accuracy")
    assert best.exit_code != 0 and "needs validation" in best.output
    # a metric the validation cannot report, before any training step (names what it can)
    typo = _cli(*base, "--val", "suite:demo", "--keep-best", "val_lfw_accuracy")
    assert typo.exit_code != 0 and "val_lfw_accuracy" in typo.output and "val_demo_mean_accuracy" in typo.output
    # a suite whose packs are not under --val-root: its preflight, before any training step
    (tmp_path / "empty").mkdir()
    missing = _cli(*base, "--val", "lfw,cfp_fp", "--val-root", tmp_path / "empty")
    assert missing.exit_code != 0 and "lfw" in missing.output and "cfp_fp" in missing.output, missing.output
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("spec", ["suite:demo", "demo"])
def test_cli_val_end_to_end_then_evaluate_best(tmp_path, spec):
    out = tmp_path / "run"
    res = _cli("train", "cosface", "--data", "synthetic", "--out", out, "--max-steps", 2, "-q", *TINY, SYNTH,
               "--val", spec, "--val-every", 1, "--keep-best", "val_demo_eer")
    assert res.exit_code == 0, res.output
    rows = read_log(out / "log.csv")
    assert [r["step"] for r in rows] == ["1", "2"]
    cols = {"val_demo_accuracy", "val_demo_eer", "val_demo_rank1"} | (
        {"val_demo_mean_accuracy"} if spec.startswith("suite:") else set())
    assert cols <= set(rows[0]) and all(r[c] for r in rows for c in cols)
    eers = [float(r["val_demo_eer"]) for r in rows]
    rec = json.loads((out / BEST_RECORD).read_text())
    assert rec["value"] == pytest.approx(min(eers)) and rec["step"] == 1 + eers.index(min(eers))
    assert f"best val_demo_eer = {rec['value']:.6g} at step {rec['step']}" in res.output
    if spec.startswith("suite:"):
        assert all(float(r["val_demo_mean_accuracy"]) == float(r["val_demo_accuracy"]) for r in rows)
    ev = _cli("evaluate", "-m", out / BEST, "-p", "demo", "--no-cache", "-q", "--json", "--out", tmp_path / "results")
    assert ev.exit_code == 0, ev.output
    record = json.loads(ev.output[ev.output.index("{"):])
    assert record["result"]["metrics"]["eer"] == pytest.approx(rec["value"], abs=1e-6)
    assert not math.isnan(record["result"]["metrics"]["accuracy"])
