"""Knowledge distillation, `python -m src.train distill.teacher=... distill.temperature=T distill.alpha=A`
(src/models/distill.py, src/runs/teacher.py), on real digits: the training loss against a hand computation with a
teacher whose normalisation differs from the student's, the frozen teacher (no gradients, weights unchanged, not
in the student's checkpoint), a timm teacher, and the one-sentence refusals. One teacher run is shared."""

from __future__ import annotations

import json
import os
from pathlib import Path

import lightning as L
import pytest
import torch
import torch.nn.functional as F

from tests.conftest import ROOT, CliResult, assert_one_sentence, run_module

STUDENT = ["model=mlp", "model.net.hidden_sizes=[16]", "logger=none"]


def run_cli(cwd: Path, module: str, *args: str) -> CliResult:
    env = dict(os.environ, PYTHONPATH=str(ROOT), HYDRA_FULL_ERROR="0", COLUMNS="120")
    return CliResult(run_module(module, args, cwd, env), cwd)


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    """A digits MLP (128 hidden units, 3 epochs) whose training split, and so its normalisation, differs from the
    students' (data.val_fraction=0.3 against 0.1): its run folder and best checkpoint."""
    cwd = tmp_path_factory.mktemp("teacher")
    result = run_cli(cwd, "src.train", "trainer.max_epochs=3", "data.val_fraction=0.3", "logger=none",
                     "hydra.run.dir=teacher_run")
    assert result.returncode == 0, result.output[-3000:]
    (best,) = (cwd / "teacher_run" / "checkpoints").glob("epoch_*.ckpt")
    return {"run": cwd / "teacher_run", "best": best}


class LossCheck(L.Callback):
    """Records, on the first training step, the module's loss and the loss computed by hand from the same batch
    with the teacher loaded on its own; then whether gradients reached the student and the teacher."""

    def __init__(self, hand_loss) -> None:
        self.hand_loss, self.batch, self.losses, self.grads = hand_loss, None, None, None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.batch = batch

    def on_before_backward(self, trainer, pl_module, loss) -> None:
        if self.losses is None:
            with torch.no_grad():  # the student's weights before this step's update
                self.losses = (float(loss), float(self.hand_loss(pl_module.net, *self.batch)))

    def on_after_backward(self, trainer, pl_module) -> None:
        if self.grads is None:
            teacher = type(pl_module).teacher.module
            self.grads = ([p.grad for p in pl_module.net.parameters()],
                          [(p.grad, p.requires_grad) for p in teacher.parameters()])


def test_the_training_loss_is_hinton_s_on_the_teacher_s_own_normalisation_and_the_teacher_stays_frozen(
        teacher, compose):
    from src import builders
    from src.inference.model import rebuild_module
    from src.runs.checkpoint import load_checkpoint

    temperature, alpha = 3.0, 0.7
    cfg = compose([*STUDENT, f"distill.teacher={teacher['best']}", f"distill.temperature={temperature}",
                   f"distill.alpha={alpha}"])
    path, ckpt = load_checkpoint(str(teacher["best"]))
    own_teacher = rebuild_module(path, ckpt, calibrated=False)  # loaded apart from the run's
    theirs = ckpt["DigitsDataModule"]["transform"]
    datamodule = builders.build_datamodule(cfg.data)
    datamodule.setup("fit")
    ours = datamodule.state_dict()["transform"]
    assert ours["mean"] != theirs["mean"] and ours["std"] != theirs["std"]  # the two normalisations differ

    def hand_loss(net, x, y):
        pixels = (x * ours["std"][0] + ours["mean"][0]) * ours["max_value"]  # the raw 0..16 pixel values
        t = own_teacher.net((pixels / theirs["max_value"] - theirs["mean"][0]) / theirs["std"][0])
        s = net(x)
        p = torch.softmax(t / temperature, 1)
        kl = (p * (torch.log(p) - torch.log_softmax(s / temperature, 1))).sum(1).mean()
        return alpha * temperature ** 2 * kl + (1 - alpha) * F.cross_entropy(s, y)

    L.seed_everything(cfg.seed)
    model = builders.build_module(cfg.model, cfg.optimizer, cfg.scheduler, 1, cfg.distill)  # as src.train builds it
    check = LossCheck(hand_loss)
    trainer = L.Trainer(max_steps=3, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, num_sanity_val_steps=0, limit_val_batches=0, callbacks=[check])
    trainer.fit(model, datamodule=datamodule)

    module_loss, by_hand = check.losses
    assert module_loss == pytest.approx(by_hand, rel=1e-5, abs=1e-6)
    student_grads, teacher_grads = check.grads
    assert all(g is not None and g.abs().sum() > 0 for g in student_grads)
    assert all(g is None and not needs for g, needs in teacher_grads)
    frozen = type(model).teacher.module
    assert not frozen.training
    assert all(torch.equal(v, ckpt["state_dict"][k]) for k, v in frozen.state_dict().items())  # unchanged by 3 steps
    assert not [k for k in model.state_dict() if not k.startswith("net.")]  # the student's own weights only


def test_a_distilled_student_s_checkpoint_holds_the_student_alone_and_evaluates_as_a_plain_model(teacher, tmp_path,
                                                                                                  compose):
    from src import builders

    result = run_cli(tmp_path, "src.train", *STUDENT, f"distill.teacher={teacher['run']}", "trainer.max_epochs=2",
                     "hydra.run.dir=student")
    assert result.returncode == 0, result.output[-3000:]
    assert json.loads((tmp_path / "student/metrics.json").read_text())["metrics"]["test/acc"] > 0.6
    ckpt = torch.load(tmp_path / "student/checkpoints/last.ckpt", weights_only=True)
    cfg = compose(STUDENT)
    plain = builders.build_module(cfg.model, cfg.optimizer, cfg.scheduler).state_dict()
    assert {k: v.shape for k, v in ckpt["state_dict"].items()} == {k: v.shape for k, v in plain.items()}
    assert ckpt["run_config"]["distill"]["teacher"] == str(teacher["run"])  # the settings, not the teacher's tensors
    assert ckpt["run_config"]["model"]["_target_"] == "src.models.classifier.ClassificationModule"
    evaluated = run_cli(tmp_path, "src.eval", "ckpt_path=student/checkpoints/last.ckpt", "logger=none")
    assert evaluated.returncode == 0, evaluated.output[-3000:]
    assert "test: acc=" in evaluated.output


def test_a_timm_teacher_teaches_a_student(tmp_path):
    made = run_cli(tmp_path, "src.train", "model=timm", "model.net.name=test_resnet", "trainer.max_epochs=1",
                   "trainer.limit_train_batches=5", "trainer.limit_val_batches=2", "logger=none", "test=false",
                   "hydra.run.dir=timm_teacher")
    assert made.returncode == 0, made.output[-3000:]
    (best,) = (tmp_path / "timm_teacher/checkpoints").glob("epoch_*.ckpt")
    assert torch.load(best, weights_only=True)["hyper_parameters"]["net"]["_target_"].endswith("timm_net")
    result = run_cli(tmp_path, "src.train", *STUDENT, "distill.teacher=timm_teacher", "trainer.max_epochs=1",
                     "trainer.limit_train_batches=5", "trainer.limit_val_batches=2", "test=false",
                     "hydra.run.dir=student")
    assert result.returncode == 0, result.output[-3000:]
    ckpt = torch.load(tmp_path / "student/checkpoints/last.ckpt", weights_only=True)
    assert all(k.startswith("net.") for k in ckpt["state_dict"]) and len(ckpt["state_dict"]) == 4  # 2 layers


@pytest.mark.parametrize(("overrides", "fragments"), [
    (["distill.teacher=nowhere"], ["distill.teacher=nowhere is neither a checkpoint file nor a run folder"]),
    (["distill.teacher=notes.txt"], ["distill.teacher: ", "is not a readable PyTorch checkpoint"]),
    (["data=iris", "model=softmax_regression", "distill.teacher=TEACHER"],
     ["predicts 10 classes but this model predicts 3", "same data set"]),
    (["experiment=notes3_xor_mlp", "distill.teacher=TEACHER"],
     ["predicts 10 classes but this model predicts 2", "one-output binary model learns only from a two-class"]),
    (["data=fashion_mnist", "model=lenet", "distill.teacher=TEACHER"],
     ["takes inputs of shape [1, 8, 8] but this model takes [1, 28, 28]"]),
    (["distill.teacher=TEACHER", "distill.temperature=0"], ["distill.temperature must be a number > 0", "got 0"]),
    (["distill.teacher=TEACHER", "distill.alpha=1.5"], ["distill.alpha", "must be in [0, 1], got 1.5"]),
    (["distill.teacher=TEACHER", "+distill.weight=1"], ["distill.weight is not a distillation setting"]),
    (["distill.tempreature=2"], ["distill.tempreature is not a setting", "did you mean distill.temperature?"]),
], ids=["missing", "not_a_checkpoint", "class_count", "binary_student", "input_shape", "temperature", "alpha",
        "unknown_key", "misspelt_key"])
def test_bad_distillation_settings_end_in_one_sentence(teacher, cli_in_process, tmp_path, overrides, fragments):
    (tmp_path / "notes.txt").write_text("not a checkpoint\n")
    args = [o.replace("TEACHER", str(teacher["run"])) for o in overrides]
    result = cli_in_process("src.train", *args, "trainer.max_epochs=1", "logger=none")
    assert_one_sentence(result, *fragments)
