"""The teacher of a distillation run, `python -m src.train distill.teacher=PATH` (src/models/distill.py):
the model of a checkpoint that src.train wrote, or of a run folder's best checkpoint, rebuilt in eval mode
on the CPU with its parameters frozen, and the data state its checkpoint stored (class names, normalisation).

A run folder's checkpoint: the one checkpoint of `<run>/checkpoints/` besides `last.ckpt` and `interrupted.ckpt`
(the best, as `callbacks=model_checkpoint` keeps it), else `last.ckpt`. The module is rebuilt from the
checkpoint's stored class and hyper-parameters, as src.inference.model does for src.eval (without its
calibration temperature: distillation softens the raw logits with its own), and its initial weights are drawn
from a forked generator, so the student starts from the same weights as it would without a teacher.
Loaded only when `distill.teacher` is set (src/builders.py).
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from hydra.utils import get_class

from src.errors import UserError, require
from src.models.distill import Teacher, distillation_class
from src.models.nets.weights import without_weight_loading
from src.runs.checkpoint import load_checkpoint

SETTINGS = ("teacher", "temperature", "alpha")  # the `distill` node of conf/train.yaml
NOT_THE_BEST = ("last.ckpt", "interrupted.ckpt")


def student_class(base: type, settings: Mapping[str, Any]) -> type:
    """`base` (the configured `ClassificationModule` class) learning from the teacher `settings` name."""
    check_settings(settings)
    # The loss is the KL of softened softmax outputs over exclusive classes: a model with several labels per
    # sample (independent sigmoids) has no such distribution, as student or as teacher.
    require(getattr(base, "task", None) != "multilabel",
            "distill.teacher trains from a teacher's softmax over exclusive classes, which a model with several "
            "labels per sample does not have; train it without distill.teacher.")
    path = teacher_checkpoint(str(settings["teacher"]))
    teacher = load_teacher(path, float(settings["temperature"]), float(settings["alpha"]))
    require(getattr(teacher.module, "task", None) != "multilabel",
            f"the teacher {path} predicts several labels per sample (one sigmoid each), which gives no softmax over "
            "exclusive classes to distil; pass a teacher trained with one class per sample.")
    return distillation_class(base, teacher)


def check_settings(settings: Mapping[str, Any]) -> None:
    for key in settings:
        close = difflib.get_close_matches(str(key), SETTINGS, n=1)
        hint = f"did you mean distill.{close[0]}?" if close else f"it takes {', '.join(SETTINGS)}."
        require(key in SETTINGS, f"distill.{key} is not a distillation setting; {hint}")
    teacher, t, alpha = (settings.get(key) for key in SETTINGS)
    require(isinstance(teacher, str) and teacher.strip() != "",
            f"distill.teacher must be the path of a checkpoint or run folder of src.train, got {teacher!r}.")
    number = lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)  # noqa: E731
    require(number(t) and t > 0, f"distill.temperature must be a number > 0 (Hinton et al. use 1 to 20; 1 = the "
                                 f"plain softmax), got {t!r}.")
    require(number(alpha) and 0 <= alpha <= 1, f"distill.alpha (the weight of the teacher's term) must be in [0, 1], "
                                               f"got {alpha!r}.")


def teacher_checkpoint(teacher: str) -> Path:
    """The checkpoint file `distill.teacher` names: the file itself, or a run folder's best (else last) one."""
    path = Path(teacher).expanduser()
    if not path.is_dir():
        require(path.is_file(), f"distill.teacher={teacher} is neither a checkpoint file nor a run folder; pass a "
                                "checkpoint of src.train (logs/train/runs/<run>/checkpoints/last.ckpt) or its run "
                                "folder.")
        return path
    folder = path / "checkpoints" if (path / "checkpoints").is_dir() else path
    found = sorted(folder.glob("*.ckpt"))
    best = [p for p in found if p.name not in NOT_THE_BEST]
    require(len(best) <= 1, f"the run folder {teacher} holds {len(best)} checkpoints besides last.ckpt "
                            f"({', '.join(p.name for p in best[:4])}); pass the one to distil from as distill.teacher.")
    if best:
        return best[0]
    require((folder / "last.ckpt").is_file(), f"the folder {teacher} holds no checkpoint (.ckpt) of src.train; pass a "
                                               "run folder whose run kept checkpoints, or a checkpoint file.")
    return folder / "last.ckpt"


def load_teacher(path: Path, temperature: float, alpha: float) -> Teacher:
    """The frozen, eval-mode teacher of the checkpoint at `path`."""
    try:
        path, ckpt = load_checkpoint(str(path))
    except UserError as exc:
        raise UserError(f"distill.teacher: {exc}") from exc
    target = (ckpt["run_config"].get("model") or {}).get("_target_")
    try:
        module_class = get_class(str(target))
    except (ImportError, ValueError) as exc:
        raise UserError(f"the teacher {path} names the model class {target!r}, which this code does not have; "
                        "distil from a checkpoint written by this code's src.train.") from exc
    hparams = without_weight_loading(ckpt.get("hyper_parameters") or {})
    try:
        with torch.random.fork_rng(devices=[]):  # its initial weights are overwritten: the run's draws stay the same
            module = module_class(**hparams)
        module.load_state_dict(ckpt["state_dict"], strict=True)
    except (TypeError, RuntimeError) as exc:
        reason = next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
        raise UserError(f"the teacher {path} cannot be rebuilt from its stored class and hyper-parameters "
                        f"({reason.rstrip('.')[:160]}); distil from a checkpoint written by this code's src.train.") \
            from exc
    module.eval().requires_grad_(False)
    return Teacher(module, temperature, alpha, str(path), data_state(ckpt))


def data_state(ckpt: Mapping[str, Any]) -> dict[str, Any]:
    """The teacher's data module state (class names, fitted normalisation) that Lightning stored under its class
    name; empty when the checkpoint holds none."""
    data = (ckpt["run_config"].get("data") or {}).get("_target_")
    try:
        state = ckpt.get(get_class(str(data)).__qualname__)
    except (ImportError, ValueError):
        state = None
    return dict(state) if isinstance(state, Mapping) else {}
