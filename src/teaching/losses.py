"""Notes 1's table: cross-entropy vs L1 loss of a softmax output against a one-hot target, and the
curve behind it (drawn by the `activations` topic).

    softmax      cross-entropy   L1
    [0.1, 0.9]   0.1053          0.1      (target: class 1, "cat" = [0, 1])
    [0.7, 0.3]   2.3025 (sic)    0.7

The notes' numbers are truncated to 4 decimals (-ln 0.9 = 0.10536). Its 2.3025 is -ln 0.1, the loss
of a prediction giving the true class 0.1; for [0.7, 0.3] the cross-entropy is -ln 0.3 = 1.2040.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from src.figures.plots import new_figure
from src.models.losses import cross_entropy

NOTES1_ROWS = (([0.1, 0.9], 0.1053, 0.1), ([0.7, 0.3], 2.3025, 0.7))  # (softmax output, CE, L1) as printed
NOTES1_TARGET = 1


def cross_entropy_and_l1(probabilities, target: int) -> tuple[float, float]:
    """(cross-entropy, L1) of one softmax output against class `target`: the project's
    `cross_entropy` on the log-probabilities (softmax(log p) = p, so it is -log p[target]), and the
    mean absolute difference from the one-hot target (`F.l1_loss`)."""
    p = torch.as_tensor(probabilities, dtype=torch.float64)[None]
    t = torch.tensor([target])
    ce = cross_entropy(torch.log(p), t)
    l1 = F.l1_loss(p, F.one_hot(t, p.shape[1]).double())
    return float(ce), float(l1)


def losses_figure():
    p = np.linspace(0.01, 1.0, 300)  # probability given to the true class (two classes)
    fig = new_figure(8, 5)
    ax = fig.subplots()
    ax.plot(p, -np.log(p), color="#1f77b4", linewidth=2, label="cross-entropy  -ln p")
    ax.plot(p, 1 - p, color="#ff7f0e", linewidth=2, label="L1  mean |output - one-hot| = 1 - p")
    for probabilities, seed_ce, seed_l1 in NOTES1_ROWS:
        ce, l1 = cross_entropy_and_l1(probabilities, NOTES1_TARGET)
        q = probabilities[NOTES1_TARGET]
        ax.scatter([q, q], [ce, l1], color="k", zorder=3)
        ax.annotate(f"{probabilities}: CE {ce:.4f}, L1 {l1:.1f}\n(seed: {seed_ce}, {seed_l1})", (q, ce),
                    xytext=(12, 10) if q < 0.6 else (-170, 25), textcoords="offset points", fontsize=9)
    ax.set_xlabel("softmax probability of the true class, p")
    ax.set_ylabel("loss")
    ax.set_ylim(0, 4.7)
    ax.grid(True, alpha=0.3)
    ax.legend()
    ax.set_title("Notes 1: cross-entropy punishes confident mistakes far more than L1\n"
                 "(the notes' 2.3025 for [0.7, 0.3] is -ln 0.1; -ln 0.3 = 1.2040)", fontsize=11)
    return fig
