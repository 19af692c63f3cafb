"""What runs are compared by (HPARAMS, MLflow and W&B parameters), the trackers' settings, and the
sweep folder's override: in-process, no training."""

from __future__ import annotations

import pytest

from src.runs.loggers import final_metrics_for_logging, hparams_for_logging


def test_hparams_are_the_choices_the_set_values_and_the_overridden_keys_without_paths_or_targets(compose):
    from src.runs.record import composition_of

    cfg = compose(["model=mlp", "optimizer=sgd", "optimizer.lr=0.05", "model.net.hidden_sizes=[32,16]",
                   "data.num_folds=5", "data.fold=2", "model.label_smoothing=0.1", "+data.cache_dir=/elsewhere",
                   "trainer.max_epochs=3", "+callbacks.extra.every=2", "logger=csv", "augment=noise"])
    hp = hparams_for_logging(cfg, composition_of(cfg))
    assert {k: hp[k] for k in ("model", "data", "optimizer", "scheduler", "augment", "trainer")} == {
        "model": "mlp", "data": "digits", "optimizer": "sgd", "scheduler": "none", "augment": "noise",
        "trainer": "default"}
    assert hp["optimizer.lr"] == 0.05 and hp["optimizer.momentum"] == 0.0 and hp["optimizer.weight_decay"] == 0.0
    assert hp["data.batch_size"] == 64 and hp["trainer.max_epochs"] == 3 and hp["seed"] == 42
    assert hp["model.net.hidden_sizes"] == "[32, 16]" and hp["model.net.dropout"] == 0.0
    assert hp["data.fold"] == 2 and hp["model.label_smoothing"] == 0.1  # a fold of a CV; an overridden key
    assert not [k for k in hp if "_target_" in k or "dir" in k or k.startswith(("callbacks", "logger", "paths"))]
    assert "trainer.max_steps" not in hp  # -1: no limit, nothing to compare
    assert all(isinstance(v, (bool, int, float, str)) for v in hp.values())


def test_final_metrics_go_under_hp_and_counters_are_no_metric():
    assert final_metrics_for_logging({"val/acc": 0.5, "test/loss": 1, "epoch": 3, "hp/step": 7, "step": 2}) == {
        "hp/val/acc": 0.5, "hp/test/loss": 1.0}


def test_a_tracker_that_is_not_installed_is_one_sentence_naming_the_extra(compose, monkeypatch):
    import importlib.util

    from src.errors import UserError
    from src.runs.trackers import check_trackers_installed

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name in ("mlflow", "wandb") else
                        real(name, *a))
    for tracker in ("mlflow", "wandb"):
        with pytest.raises(UserError, match=rf"logger={tracker} needs the {tracker} package, which is not "
                                            rf"installed: pip install '\.\[{tracker}\]'"):
            check_trackers_installed(compose([f"logger={tracker}"]).logger)
    check_trackers_installed(compose(["logger=many"]).logger)  # TensorBoard and CSV need nothing more


@pytest.mark.parametrize("env,offline", [({}, True), ({"WANDB_API_KEY": "k"}, False),
                                         ({"WANDB_API_KEY": "k", "WANDB_MODE": "offline"}, True),
                                         ({"WANDB_MODE": "online"}, False)])
def test_wandb_is_offline_unless_an_api_key_is_configured(tmp_path, monkeypatch, env, offline):
    from src.runs.trackers import wandb_offline

    for key in ("WANDB_API_KEY", "WANDB_MODE", "WANDB_BASE_URL"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc from `wandb login`
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert wandb_offline() is offline


def test_wandb_login_in_netrc_counts_as_a_key(tmp_path, monkeypatch):
    from src.runs.trackers import wandb_offline

    for key in ("WANDB_API_KEY", "WANDB_MODE", "WANDB_BASE_URL"):
        monkeypatch.delenv(key, raising=False)
    (tmp_path / ".netrc").write_text("machine api.wandb.ai\n  login user\n  password secret\n")
    (tmp_path / ".netrc").chmod(0o600)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert wandb_offline() is False


@pytest.mark.parametrize("folder", ["/tmp/a b/it's", "C:\\runs\\x\\", "/tmp/a,b=c[1]"])
def test_the_pinned_sweep_folder_parses_back_to_itself(folder):
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from src.config.sweep_folder import quoted_override_value

    (override,) = OverridesParser.create().parse_overrides([f"hydra.sweep.dir={quoted_override_value(folder)}"])
    assert override.value() == folder
