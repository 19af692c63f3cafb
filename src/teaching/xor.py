"""Notes 3's XOR: the perceptron's single line (which cannot separate XOR) vs the decision boundary
of the 2-10-10-10-1 sigmoid MLP (which can).

    python -m src.visualize xor                    # both trained here with the notes' recipe (10,001 steps)
    python -m src.visualize xor perceptron_ckpt=... mlp_ckpt=...   # checkpoints of experiment=notes3_perceptron_xor
                                                   # and experiment=notes3_xor_mlp
"""

from __future__ import annotations

import textwrap

import numpy as np
import torch

from src.errors import require
from src.figures.plots import new_figure
from src.teaching.trained import load_trained, train_in_process

PERCEPTRON = "notes3_perceptron_xor"
MLP = "notes3_xor_mlp"
LIMITS = (-0.5, 1.5)


def perceptron_line(module) -> tuple[float, float, float]:
    """(w1, w2, b) of a one-unit linear model: its decision line is w1 x1 + w2 x2 + b = 0."""
    linear = module.net.linear
    w1, w2 = (float(v) for v in linear.weight.detach()[0])
    return w1, w2, float(linear.bias.detach()[0])


def layer_sizes(net: torch.nn.Module) -> str:
    """'2-10-10-10-1': the widths of a stack of Linear layers."""
    linears = [m for m in net.modules() if isinstance(m, torch.nn.Linear)]
    return "-".join(str(n) for n in [linears[0].in_features] + [m.out_features for m in linears]) if linears else "?"


@torch.no_grad()
def probability_grid(module, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """P(class 1) on every point of the grid (xs x ys)."""
    gx, gy = np.meshgrid(xs, ys)
    points = torch.tensor(np.stack([gx.ravel(), gy.ravel()], axis=1), dtype=torch.float32)
    return module.predict_proba(points)[:, 1].reshape(gx.shape).numpy()


def get_model(cfg, key: str, experiment: str):
    path = cfg.get(key)
    if not path:
        return train_in_process(experiment, cfg.get("steps"))
    trained = load_trained(str(path))
    require(
        trained.data_cfg.get("name") == "logic_gates",
        f"{key} must be a model trained on the logic gates (experiment={experiment}), but {trained.source} was "
        f"trained on {trained.data_cfg.get('name')}.",
    )
    return trained


def panel(ax, trained, title: str, line: tuple[float, float, float] | None) -> None:
    xs = ys = np.linspace(*LIMITS, 300)
    p = probability_grid(trained.module, xs, ys)
    image = ax.contourf(xs, ys, p, levels=np.linspace(0, 1, 11), cmap="RdBu_r", vmin=0, vmax=1, alpha=0.75)
    if line is None:
        ax.contour(xs, ys, p, levels=[0.5], colors="k", linewidths=2)
    else:
        w1, w2, b = line
        weights = f"w1 = {w1:.3g}, w2 = {w2:.3g}, b = {b:.3g}"
        if max(abs(w1), abs(w2)) < 1e-3:
            ax.text(0.5, 0.5, f"{weights}:\ntraining drove the weights to 0, so P = 0.5\neverywhere (loss ln 2): "
                    "no line separates XOR", transform=ax.transAxes, ha="center", va="center", fontsize=10,
                    bbox={"facecolor": "white", "alpha": 0.9, "edgecolor": "grey"})
        else:
            xline = np.array(LIMITS)
            if abs(w2) > 1e-12:
                ax.plot(xline, -(w1 * xline + b) / w2, color="k", linewidth=2, label=f"the line: {weights}")
            else:
                ax.axvline(-b / w1, color="k", linewidth=2, label=f"the line: {weights}")
            ax.legend(loc="lower right", fontsize=8)
    table = trained.datamodule.test_split
    gate = trained.data_cfg.get("gate", "?")
    for (x1, x2), t in zip(table.inputs.tolist(), table.targets.tolist()):
        ax.scatter([x1], [x2], s=180, c="#d62728" if t else "#1f77b4", edgecolors="k", linewidths=1.5, zorder=3,
                   marker="o" if t else "s")
        ax.annotate(f"{gate}={t}", (x1, x2), xytext=(10, 8), textcoords="offset points", fontsize=9)
    ax.set_xlim(*LIMITS)
    ax.set_ylim(*LIMITS)
    ax.set_aspect("equal")
    ax.set_xlabel("x1")
    ax.set_ylabel("x2")
    source = textwrap.fill(trained.source, 60)
    ax.set_title(f"{title}\n{source}\naccuracy on the 4 rows: {trained.accuracy():.2f}", fontsize=10)
    return image


def render(cfg, output) -> None:
    perceptron = get_model(cfg, "perceptron_ckpt", PERCEPTRON)
    mlp = get_model(cfg, "mlp_ckpt", MLP)
    fig = new_figure(13, 7.6)
    axes = fig.subplots(1, 2)
    panel(axes[0], perceptron, "perceptron: one linear unit + sigmoid", perceptron_line(perceptron.module))
    image = panel(axes[1], mlp, f"{mlp.net_name} {layer_sizes(mlp.module.net)} (black: P = 0.5)", None)
    fig.colorbar(image, ax=axes, label="P(output = 1)", shrink=0.8)
    fig.suptitle("Notes 3's XOR: one line cannot separate the 1s (red circles) from the 0s (blue squares);\n"
                 "the MLP's hidden layers bend its decision boundary around them", fontsize=12)
    output.figure("xor_decision_boundaries", fig)
