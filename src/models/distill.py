"""Knowledge distillation (Hinton, Vinyals and Dean 2015, "Distilling the Knowledge in a Neural Network",
arXiv 1503.02531): a student module learns from a frozen teacher's softened outputs and from the labels.

With temperature T and weight alpha, the training loss of a batch is

    loss = alpha * T^2 * KL(softmax(t / T) || softmax(s / T)) + (1 - alpha) * label_loss

- s, t: the student's and the teacher's (N, C) logits on the same batch (augmented, and mixed when mixup or
  cutmix is on: the teacher sees exactly what the student's net sees);
- KL(p || q) = sum_c p_c (log p_c - log q_c), summed over the classes and averaged over the batch;
- label_loss: the family's own training loss on the labels (cross-entropy with its label smoothing and soft
  targets, GoogLeNet's auxiliary heads included, binary cross-entropy for one output unit);
- T^2 keeps the soft term's gradients on the scale of the label term's whatever T (Hinton et al., section 2).
A one-output (binary) model's logit z counts as the two logits [0, z] (softmax([0, z]) = [1 - sigmoid(z),
sigmoid(z)]), so a binary student learns from a binary or a two-class teacher.

The teacher runs in eval mode under `torch.no_grad()`, its parameters frozen. It is a class attribute of the
variant, not a registered submodule: it is in no state_dict (so in no checkpoint), optimizer, device move or
model summary; the variant moves it to the batch's device itself. Its input is the student's batch with the
student's normalisation undone and the teacher's applied (per channel, an affine map; none when they agree).
Validation, test and prediction score the student alone, and the checkpoint loads as the plain student class.
This file loads only when `distill.teacher` is set (src/builders.py, src/runs/teacher.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from src.errors import require
from src.models.binary import BinaryClassificationModule


def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, label_loss: torch.Tensor,
                      temperature: float, alpha: float) -> torch.Tensor:
    """alpha * T^2 * KL(softmax(t / T) || softmax(s / T)) (batch mean) + (1 - alpha) * label_loss."""
    t = float(temperature)
    student = F.log_softmax(student_logits.float() / t, dim=1)
    teacher = F.log_softmax(teacher_logits.float() / t, dim=1)
    soft = F.kl_div(student, teacher, reduction="batchmean", log_target=True)
    return alpha * t * t * soft + (1 - alpha) * label_loss


def class_logits(module: nn.Module, outputs: torch.Tensor) -> torch.Tensor:
    """(N, C) logits of a module's net output: a one-output (binary) module's logit z as [0, z]."""
    if isinstance(module, BinaryClassificationModule):
        z = outputs.reshape(-1, 1)
        return torch.cat([torch.zeros_like(z), z], dim=1)
    return module.class_scores(outputs)


def is_binary(module_class: type) -> bool:
    return issubclass(module_class, BinaryClassificationModule)


@dataclass
class Teacher:
    """A trained `ClassificationModule` (eval mode, frozen) and what it was trained on: `data_state` is its data
    module's stored state (class names, normalisation); `source` names its checkpoint in messages."""

    module: nn.Module
    temperature: float
    alpha: float
    source: str
    data_state: dict[str, Any] = field(default_factory=dict)
    scale: torch.Tensor | None = None  # teacher input = student input * scale + shift (None: the same input)
    shift: torch.Tensor | None = None

    def check_fits(self, student_class: type, hparams: Mapping[str, Any]) -> None:
        """The student must predict the teacher's classes from inputs of the teacher's shape."""
        classes, mine = int(self.module.num_classes), int(hparams["num_classes"])
        binary = " (a one-output binary model learns only from a two-class teacher)" if is_binary(student_class) \
            else ""
        require(classes == mine, f"the teacher {self.source} predicts {classes} classes but this model predicts "
                                 f"{mine}{binary}; distil from a teacher trained on the same data set.")
        theirs = list((self.module.hparams.get("net") or {}).get("input_shape") or [])
        ours = list((hparams.get("net") or {}).get("input_shape") or [])
        require(not theirs or not ours or theirs == ours,
                f"the teacher {self.source} takes inputs of shape {theirs} but this model takes {ours}; distil from "
                "a teacher trained on the same data set.")

    def bind_data(self, student_state: Mapping[str, Any]) -> None:
        """Check the classes against the student's data (its data module's state) and set the input map."""
        theirs, ours = self.data_state.get("class_names"), student_state.get("class_names")
        require(not theirs or not ours or list(theirs) == list(ours),
                f"the teacher {self.source} was trained on the classes {_short(theirs)} but this data set has "
                f"{_short(ours)}; distil from a teacher trained on the same data set.")
        require(self.data_state.get("table") == student_state.get("table"),
                f"the teacher {self.source} encodes the table's columns differently from this run; distil from a "
                "teacher trained on the same table and columns.")
        t, s = self.data_state.get("transform"), student_state.get("transform")
        self.scale = self.shift = None
        if t == s:
            return
        require(isinstance(t, Mapping) and isinstance(s, Mapping) and {"mean", "std"} <= set(t) & set(s),
                f"the teacher {self.source} normalises its inputs ({t}) in a way that cannot be mapped from this "
                f"run's ({s}); distil from a teacher trained on the same data set.")
        raw = float(s.get("max_value", 255.0)) / float(t.get("max_value", 255.0))  # student's [0, max] -> teacher's
        mean_s, std_s, mean_t, std_t = (torch.tensor(v, dtype=torch.float32).view(1, -1, 1, 1)
                                        for v in (s["mean"], s["std"], t["mean"], t["std"]))
        self.scale, self.shift = raw * std_s / std_t, (raw * mean_s - mean_t) / std_t

    @torch.no_grad()
    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """The teacher's (N, C) logits for the student's input batch `x`."""
        module = self.module
        if next(module.parameters()).device != x.device:
            module.to(x.device)
        if self.scale is not None:
            scale, shift = self.scale.to(x.device), self.shift.to(x.device)
            x = x * scale.view(1, -1, *[1] * (x.ndim - 2)) + shift.view(1, -1, *[1] * (x.ndim - 2))
        return class_logits(module, module.net(x)).float()


class DistillationTraining:
    """Module side: the training loss of `distillation_loss` on the batch the net saw; the rest is the family's."""

    teacher: Teacher

    def check_task(self) -> None:  # runs inside the base constructor, before the net is built
        super().check_task()
        self.teacher.check_fits(type(self), self.hparams)

    def setup(self, stage: str) -> None:
        super().setup(stage)
        if stage != "fit":
            return
        datamodule = self.trainer.datamodule
        self.teacher.bind_data(datamodule.state_dict() if datamodule is not None else {})
        handle = getattr(self, "_input_hook", None)
        if handle is not None:
            handle.remove()
        self._net_input = None
        self._input_hook = self.net.register_forward_pre_hook(self._remember_input)

    def _remember_input(self, net: nn.Module, args: tuple[Any, ...]) -> None:
        if net.training:  # the batch of the training step (after mixing): what the teacher sees
            self._net_input = args[0]

    def training_loss(self, outputs: Any, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits, label_loss = super().training_loss(outputs, targets)
        x, self._net_input = self._net_input, None
        if x is None:  # setup("fit") hooks the net: training_loss follows the net's training-mode call
            raise RuntimeError("the distillation loss needs the batch of the net's last training-mode call")
        teacher = self.teacher
        loss = distillation_loss(class_logits(self, logits), teacher.logits(x), label_loss, teacher.temperature,
                                 teacher.alpha)
        return logits, loss


def distillation_class(base: type, teacher: Teacher) -> type:
    """`base` (a `ClassificationModule` family) learning from `teacher`. It keeps the base's name and module, so
    its checkpoints store the base's hyper-parameters and load as the base class."""
    return type(base.__name__, (DistillationTraining, base), {
        "teacher": teacher, "__qualname__": base.__qualname__, "__module__": base.__module__})


def _short(names: Any) -> str:
    names = [str(n) for n in names or []]
    return "[" + ", ".join(names[:5]) + (", ..." if len(names) > 5 else "") + "]"
