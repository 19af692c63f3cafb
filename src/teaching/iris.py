"""Notes 0's iris scatter plot (sepal length vs petal length, the notes' markers) with the decision
regions of a trained softmax regression on those two features.

    python -m src.train experiment=notes0_iris_2features
    python -m src.visualize iris ckpt_path=logs/train/runs/<run>/checkpoints/last.ckpt
    python -m src.visualize iris          # no checkpoint: trained here with the same recipe (10,000 steps)
"""

from __future__ import annotations

import numpy as np
import torch
from matplotlib.colors import ListedColormap
from matplotlib.patches import Patch

from src.errors import require
from src.figures.plots import new_figure
from src.teaching.trained import load_trained, train_in_process

EXPERIMENT = "notes0_iris_2features"
FEATURES = ["sepal_length", "petal_length"]
# The notes' plt.scatter styles: class 0 'x' black, 1 'o' blue, 2 '^' red.
MARKERS = (("x", "k"), ("o", "b"), ("^", "r"))
REGION_COLORS = ("#d9d9d9", "#c6dbef", "#fcbba1")


@torch.no_grad()
def predict_grid(module, transform, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Predicted class on every point of the grid (xs x ys) of raw feature values."""
    gx, gy = np.meshgrid(xs, ys)
    points = torch.tensor(np.stack([gx.ravel(), gy.ravel()], axis=1), dtype=torch.float32)
    inputs = transform(points) if transform else points
    return module.predict_proba(inputs).argmax(1).reshape(gx.shape).numpy()


def decision_figure(trained, caption: str):
    dm = trained.datamodule
    train, test = dm.train_split, dm.test_split
    everything = torch.cat([train.inputs, test.inputs]).numpy()
    low, high = everything.min(0) - 0.5, everything.max(0) + 0.5
    xs, ys = np.linspace(low[0], high[0], 400), np.linspace(low[1], high[1], 400)
    regions = predict_grid(trained.module, dm.transform, xs, ys)
    fig = new_figure(8.5, 6.5)
    ax = fig.subplots()
    ax.contourf(xs, ys, regions, levels=[-0.5, 0.5, 1.5, 2.5], cmap=ListedColormap(REGION_COLORS), alpha=0.9)
    ax.contour(xs, ys, regions, levels=[0.5, 1.5], colors="grey", linewidths=1)
    names = dm.class_names
    points = train.inputs.numpy()
    targets = train.targets.numpy()
    for k, (marker, color) in enumerate(MARKERS):
        chosen = points[targets == k]
        ax.scatter(chosen[:, 0], chosen[:, 1], marker=marker, c=color, s=50, label=f"{k} ({names[k]})")
    ax.set_xlabel("sepal_length")
    ax.set_ylabel("petal_length")

    flowers = ax.legend(title="training flowers", loc="upper left")
    ax.add_artist(flowers)
    ax.legend(handles=[Patch(facecolor=c, edgecolor="grey", label=n) for c, n in zip(REGION_COLORS, names)],
              title="predicted class", loc="lower right")
    ax.set_title(f"Notes 0's iris scatter plot with a softmax regression's decision regions\n{caption}",
                 fontsize=11)
    return fig


def render(cfg, output) -> None:
    if cfg.get("ckpt_path"):
        trained = load_trained(str(cfg.ckpt_path))
        features = list(trained.data_cfg.get("features") or [])
        require(
            trained.data_cfg.get("name") == "iris" and features == FEATURES,
            f"the iris topic needs a model trained on iris' {' and '.join(FEATURES)} (experiment={EXPERIMENT}), "
            f"but {trained.source} was trained on {trained.data_cfg.get('name')} "
            f"{('features ' + str(features)) if features else ''}".rstrip() + ".",
        )
    else:
        trained = train_in_process(EXPERIMENT, cfg.get("steps"))
    accuracy = trained.accuracy()
    caption = f"{trained.net_name}, {trained.source}\ntest accuracy {accuracy:.4f} on the notes' 75 test flowers"
    output.figure("iris_decision_regions", decision_figure(trained, caption))
