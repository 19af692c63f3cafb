"""Each training recipe end to end on the digits (docs/recipes.md), as a user types it."""

import json
import shutil

import pytest
import torch
import torch.nn.functional as F

from src.train import train
from tests.conftest import assert_one_sentence

FAST = ["callbacks.progress_bar=null", "callbacks.model_summary=null", "logger=none"]


def ok(result):
    assert result.returncode == 0, result.output[-3000:]
    return result


def checkpoint(run, name="last.ckpt"):
    return torch.load(run / "checkpoints" / name, map_location="cpu", weights_only=True)


def test_label_smoothing_mixup_cutmix_tta_warmup_and_clipping_in_one_run(cli):
    result = ok(cli("src.train", *FAST, "trainer.max_epochs=3", "model.label_smoothing=0.1", "model.mixup_alpha=0.2",
                    "model.cutmix_alpha=1.0", "model.tta_flip=true", "scheduler=cosine", "scheduler.warmup_epochs=1",
                    "trainer.gradient_clip_val=1.0"))
    assert result.metrics()["test/acc"] > 0.5
    (run,) = result.run_dirs()
    ckpt = checkpoint(run)
    hp = ckpt["hyper_parameters"]
    assert (hp["label_smoothing"], hp["mixup_alpha"], hp["cutmix_alpha"], hp["tta_flip"]) == (0.1, 0.2, 1.0, True)
    assert "_schedulers" in ckpt["lr_schedulers"][0]  # SequentialLR(LinearLR, CosineAnnealingLR)


def test_ema_with_k_steps_per_call_and_step_warmup_resumes_exactly(cli):
    args = [*FAST, "callbacks=[default,ema]", "callbacks.ema.decay=0.9", "steps_per_call=4",
            "scheduler.warmup_steps=10", "callbacks.early_stopping=null"]
    straight = ok(cli("src.train", *args, "trainer.max_epochs=3"))
    (run_a,) = straight.run_dirs()
    ok(cli("src.train", *args, "trainer.max_epochs=2"))
    run_b = next(r for r in straight.run_dirs() if r != run_a)
    ok(cli("src.train", "ckpt_path=last", "trainer.max_epochs=3", "callbacks.progress_bar=null"))
    a, b = checkpoint(run_a), checkpoint(run_b)
    state = a["callbacks"]["EMA"]
    assert state["num_updates"] == a["global_step"] == 63  # one update per optimizer step, K steps per call
    training = state["training_weights"]
    assert any(not torch.equal(a["state_dict"][k], training[k]) for k in training)  # checkpoints hold the EMA
    for key, value in a["state_dict"].items():
        assert torch.allclose(b["state_dict"][key], value, atol=1e-6), key
        assert torch.allclose(b["callbacks"]["EMA"]["training_weights"][key], training[key], atol=1e-6), key
    final = [json.loads((r / "metrics.json").read_text())["metrics"] for r in (run_a, run_b)]
    assert final[1]["test/acc"] == pytest.approx(final[0]["test/acc"], abs=1e-6)
    # the last validation scored the averaged weights, not the training weights
    val_loss = {name: validation_loss(a, weights) for name, weights in (("ema", a["state_dict"]), ("raw", training))}
    assert val_loss["ema"] == pytest.approx(final[0]["val/loss"], rel=1e-5)
    assert val_loss["raw"] != pytest.approx(final[0]["val/loss"], rel=1e-3)


def validation_loss(ckpt, weights) -> float:
    from src.builders import build_datamodule
    from src.models.classifier import ClassificationModule

    datamodule = build_datamodule(ckpt["run_config"]["data"])
    datamodule.setup("fit")
    module = ClassificationModule(**ckpt["hyper_parameters"]).eval()
    module.load_state_dict(weights)
    with torch.no_grad():
        losses = [(F.cross_entropy(module(x), y, reduction="sum"), len(y)) for x, y in datamodule.val_dataloader()]
    return float(sum(loss for loss, _ in losses) / sum(n for _, n in losses))


def test_tuner_finds_batch_size_then_lr_and_the_run_uses_them(cli):
    result = ok(cli("src.train", *FAST, "tuner=lr_find", "tuner.batch_size_find=true", "trainer.max_epochs=1",
                    "tuner.lr_finder.num_training=30", "tuner.batch_size_finder.max_trials=3", "steps_per_call=3"))
    (run,) = result.run_dirs()
    found = json.loads((run / "tuner.json").read_text())
    assert found["batch_size"] == 8  # 2 doubled 3 times (nothing runs out of memory here)
    assert found["lr"] > 0 and (run / "lr_finder.png").stat().st_size > 1000
    assert f"tuner: optimizer.lr={found['lr']:.4g}" in result.stdout
    ckpt = checkpoint(run)
    assert ckpt["hyper_parameters"]["optimizer"]["lr"] == pytest.approx(found["lr"])
    assert ckpt["run_config"]["data"]["batch_size"] == 8 and ckpt["run_config"]["optimizer"]["lr"] == found["lr"]


@pytest.mark.parametrize("args,fragment", [
    (["data=iris", "model=softmax_regression", "model.mixup_alpha=0.2"], "model.mixup_alpha works on images"),
    (["data=iris", "steps_per_call=5", "trainer.gradient_clip_val=1.0"],
     "error: trainer.gradient_clip_val needs one optimizer step per Lightning step, but steps_per_call > 1 "
     "takes several in each (Lightning's manual optimisation); set steps_per_call=1 or drop "
     "trainer.gradient_clip_val.\n"),
    (["data=iris", "data.steps_per_call=5"],
     "error: data.steps_per_call is not a setting of data=iris; did you mean the top-level setting steps_per_call?\n"),
])
def test_impossible_recipes_stop_with_one_sentence(cli_in_process, args, fragment):
    result = cli_in_process("src.train", *args, *FAST, "trainer.max_epochs=1")
    line = assert_one_sentence(result, fragment.removeprefix("error: ").rstrip("\n"))
    assert not fragment.startswith("error: ") or line + "\n" == fragment  # given whole: the line exactly


def test_no_weight_decay_on_biases_and_norms(cli):
    result = ok(cli("src.train", *FAST, "trainer.max_epochs=1", "optimizer=adamw", "model.net.batch_norm=true",
                    "optimizer.decay_bias_and_norm=false"))
    (run,) = result.run_dirs()
    groups = checkpoint(run)["optimizer_states"][0]["param_groups"]
    assert [g["weight_decay"] for g in groups] == [0.01, 0.0]


def clipped_iris(compose, tmp_path, steps_per_call: int, clip: float | None, warmup: str):
    shutil.rmtree(tmp_path / "run", ignore_errors=True)
    cfg = compose(["experiment=notes0_iris_4features", f"steps_per_call={steps_per_call}", warmup,
                   "data.steps_per_epoch=10", "trainer.max_epochs=10",
                   f"trainer.gradient_clip_val={clip if clip else 'null'}", *FAST])
    train(cfg)
    (ckpt,) = (tmp_path / "run" / "checkpoints").glob("last*.ckpt")
    return torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"]


@pytest.mark.parametrize("warmup", ["scheduler.warmup_steps=25", "scheduler.warmup_epochs=3"])
def test_warmup_is_the_same_in_both_optimisation_modes_and_clipping_clips(compose, tmp_path, warmup):
    automatic = clipped_iris(compose, tmp_path, 1, None, warmup)
    manual = clipped_iris(compose, tmp_path, 10, None, warmup)  # 10 optimizer steps per Lightning step
    clipped = clipped_iris(compose, tmp_path, 1, 0.01, warmup)  # Lightning's clipping: one step per call
    for name, tensor in automatic.items():
        assert torch.allclose(manual[name], tensor, atol=1e-6), name
    assert any(not torch.allclose(clipped[name], tensor, atol=1e-4) for name, tensor in automatic.items())
