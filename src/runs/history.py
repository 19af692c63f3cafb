"""A training run's logged history (learning curves), read back from its TensorBoard event files or,
failing those, its CSV logs."""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass, field
from pathlib import Path

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

CURVES = ("train/loss", "val/loss", "train/acc", "val/acc")


@dataclass
class History:
    """Points (x, value) per metric; x is the 1-based epoch when the run logged epochs, else the step."""

    source: Path
    x_label: str = "epoch"
    curves: dict[str, list[tuple[float, float]]] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return any(self.curves.values())


def _inside_eval(path: Path, run_dir: Path) -> bool:
    return "eval" in path.relative_to(run_dir).parts[:-1]


def read_history(run_dir: str | Path, metrics: tuple[str, ...] = CURVES) -> History | None:
    """The run's curves from `<run_dir>/**/events.out.tfevents.*`, else `<run_dir>/**/metrics.csv`;
    None when neither holds any of `metrics` (report folders under `eval/` are not searched)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return None
    events = sorted({p.parent for p in run_dir.rglob("events.out.tfevents.*") if not _inside_eval(p, run_dir)})
    for folder in events:
        history = _from_tensorboard(folder, metrics)
        if history:
            return history
    for path in sorted(p for p in run_dir.rglob("metrics.csv") if not _inside_eval(p, run_dir)):
        history = _from_csv(path, metrics)
        if history:
            return history
    return None


def _from_tensorboard(folder: Path, metrics: tuple[str, ...]) -> History:
    quiet = logging.getLogger("tensorboard")  # its reader logs every file switch and duplicate graph
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        events = EventAccumulator(str(folder), size_guidance={"scalars": 0}).Reload()
    finally:
        quiet.setLevel(level)
    tags = set(events.Tags().get("scalars", []))
    epoch_at: dict[int, float] = {}
    for e in events.Scalars("epoch") if "epoch" in tags else []:
        epoch_at.setdefault(e.step, e.value)
    by_step: dict[str, dict[int, float]] = {}
    for name in (m for m in metrics if m in tags):
        points: dict[int, float] = {}
        for e in events.Scalars(name):
            points.setdefault(e.step, e.value)  # first value per step
        by_step[name] = points
    # Lightning logs `epoch` beside every per-epoch metric. Curve points without it come from a per-step
    # history (StepHistory): the curves are then read by optimizer step, every point kept.
    per_step = not epoch_at or any(s not in epoch_at for points in by_step.values() for s in points)
    history = History(folder, "step" if per_step else "epoch")
    for name, points in by_step.items():
        history.curves[name] = [(s if per_step else epoch_at[s] + 1, v) for s, v in sorted(points.items())]
    return history


def _from_csv(path: Path, metrics: tuple[str, ...]) -> History:
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    rows = [r for r in rows if any(r.get(name) not in (None, "") for name in metrics)]
    has_epoch = bool(rows) and all(r.get("epoch") not in (None, "") for r in rows)
    history = History(path, "epoch" if has_epoch else "step")
    for name in metrics:
        points = []
        for row in rows:
            value = row.get(name)
            if value in (None, ""):
                continue
            x = float(row["epoch"]) + 1 if has_epoch else float(row.get("step") or len(points))
            points.append((x, float(value)))
        if points:
            history.curves[name] = points
    return history
