"""Every config choice composes, and the foundation's data x model pairs instantiate."""

import pytest

from src.builders import build_datamodule, build_module, resolve_precision
from src.config.names import CONF, plain
from tests.own_data import own_data


def choices(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


@pytest.mark.parametrize("group", ["optimizer", "scheduler", "trainer", "callbacks", "logger", "debug", "augment"])
def test_every_choice_of_small_groups_composes(compose, group):
    for choice in choices(group):
        cfg = compose([f"{group}={choice}"])
        plain(cfg)  # resolves every interpolation


@pytest.mark.parametrize("experiment", choices("experiment"))
def test_every_experiment_composes(compose, experiment, tmp_path):
    cfg = compose([f"experiment={experiment}", *own_data(tmp_path, "experiment", experiment)])
    plain(cfg)
    assert cfg.data.name and cfg.model._target_


@pytest.mark.parametrize(
    "data,model",
    [("digits", "mlp"), ("digits", "softmax_regression"), ("iris", "mlp"), ("iris", "softmax_regression"),
     ("logic_gates", "perceptron"), ("logic_gates", "xor_mlp"), ("logic_gates", "mlp")],
)
def test_foundation_pairs_instantiate_and_take_shapes_from_data(compose, data, model):
    cfg = compose([f"data={data}", f"model={model}"])
    dm = build_datamodule(cfg.data)
    module = build_module(cfg.model, cfg.optimizer, cfg.scheduler)
    dm.setup()
    x, y = next(iter(dm.train_dataloader()))
    assert list(x.shape[1:]) == list(cfg.data.input_shape)
    loss = module.training_step((x, y), 0)
    assert loss.ndim == 0 and loss.isfinite()


def test_iris_input_shape_follows_the_feature_list(compose):
    cfg = compose(["data=iris", "data.features=[sepal_length,petal_length]"])
    assert list(cfg.data.input_shape) == [2]


@pytest.mark.parametrize("scheduler", choices("scheduler"))
def test_every_scheduler_builds(compose, scheduler):
    overrides = [f"scheduler={scheduler}", "data=iris"]
    if scheduler == "onecycle":
        overrides.append("scheduler.total_steps=10")  # null = taken from the trainer during fit
    cfg = compose(overrides)
    module = build_module(cfg.model, cfg.optimizer, cfg.scheduler)
    out = module.configure_optimizers()
    if scheduler == "none":
        assert out.__class__.__name__ == "Adam"
    else:
        assert out["lr_scheduler"]["scheduler"].optimizer is out["optimizer"]


def test_precision_auto_is_full_precision_on_cpu():
    assert resolve_precision("cpu", "auto") == "32-true"
    assert resolve_precision("cpu", "bf16-mixed") == "bf16-mixed"


@pytest.mark.parametrize("experiment", [None, *choices("experiment")])
@pytest.mark.parametrize("extra", [[], ["trainer=ddp_sim", "logger=many", "scheduler=onecycle", "augment=flip_crop"]])
def test_every_shipped_config_passes_the_schema(compose, experiment, extra, tmp_path):
    from src.config.schema import validate_config

    overrides = ([f"experiment={experiment}"] if experiment else []) + extra
    overrides += own_data(tmp_path, "experiment", experiment)
    validate_config(plain(compose(overrides)))


@pytest.mark.parametrize("group,choice", [(g, c) for g in ("data", "model", "optimizer", "scheduler", "trainer",
                                                          "callbacks", "logger", "augment") for c in choices(g)])
def test_every_group_choice_passes_the_schema(compose, group, choice, tmp_path):
    from src.config.schema import validate_config

    validate_config(plain(compose([f"{group}={choice}", *own_data(tmp_path, group, choice)])))


def test_shared_keys_come_from_the_base_configs(compose):
    """A data set's or model's file keeps its own keys; the shared ones still compose and override without `+`."""
    cfg = compose(["data=svhn", "data.val_fraction=0.2", "data.loader=dataloader", "model=lenet",
                   "model.label_smoothing=0.1"])
    assert (cfg.data.name, cfg.data.val_fraction, cfg.data.loader, cfg.data.batch_size) == ("svhn", 0.2,
                                                                                           "dataloader", 128)
    assert cfg.model.label_smoothing == 0.1 and cfg.model.loss == "cross_entropy"
    assert cfg.model._target_ == "src.models.classifier.ClassificationModule"


def test_base_configs_are_not_offered_as_choices(cli_in_process):
    result = cli_in_process("src.train", "--help")
    assert result.returncode == 0, result.output
    lines = {line.split(":", 1)[0]: line for line in result.stdout.splitlines() if ": " in line}
    assert "base" not in lines["data"] and "base" not in lines["model"]
    assert "cifar10" in lines["data"] and "vgg16" in lines["model"]
