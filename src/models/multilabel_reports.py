"""Per-label scores of a model with several labels per sample: rows for CSV files, a markdown table and a bar
figure (matplotlib's Agg canvas, as src/figures draws), logged to TensorBoard (TEXT and IMAGES tabs) after each
test pass."""

from __future__ import annotations

from typing import Any

import torch

SCORES = ("precision", "recall", "f1")


def per_label_rows(per_label: dict[str, torch.Tensor], names: list[str]) -> list[list[str]]:
    """[["label", "precision", "recall", "f1", "support"], one row per label]."""
    rows = [["label", *SCORES, "support"]]
    for i, name in enumerate(names):
        rows.append([name, *(f"{float(per_label[k][i]):.6f}" for k in SCORES), str(int(per_label["support"][i]))])
    return rows


def per_label_figure(per_label: dict[str, torch.Tensor], names: list[str], title: str):
    """Grouped bars: precision, recall and F1 of every label."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(max(4.0, 0.7 * len(names) + 1.5), 3.6), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    width = 0.27
    for j, key in enumerate(SCORES):
        ax.bar([i + (j - 1) * width for i in range(len(names))], per_label[key].float().numpy(), width, label=key)
    ax.set_xticks(range(len(names)), names, rotation=45 if len(names) > 6 else 0, ha="right", fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_title(title)
    ax.legend(loc="lower right", fontsize=8)
    return fig


def log_per_label(module: Any, per_label: dict[str, torch.Tensor] | None) -> None:
    """The test pass's per-label table and figure to every TensorBoard logger of the module's trainer."""
    trainer = module.trainer
    if per_label is None or not trainer.is_global_zero:
        return
    writers = [w for w in (getattr(lg, "experiment", None) for lg in trainer.loggers)
               if hasattr(w, "add_text") and hasattr(w, "add_image")]
    if not writers:
        return
    import numpy as np

    names = [str(n) for n in getattr(trainer.datamodule, "class_names", None) or range(len(per_label["f1"]))]
    rows = per_label_rows(per_label, names)
    markdown = "\n".join("| " + " | ".join(r) + " |" for r in [rows[0], ["---"] * len(rows[0]), *rows[1:]])
    figure = per_label_figure(per_label, names, "Per-label scores, test")
    figure.canvas.draw()
    image = np.asarray(figure.canvas.buffer_rgba())[..., :3].copy()
    for writer in writers:
        writer.add_text("test/per_label", markdown, global_step=trainer.global_step)
        writer.add_image("test/per_label", image, trainer.global_step, dataformats="HWC")
