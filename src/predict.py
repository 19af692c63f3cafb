"""`python -m src.predict ckpt_path=... inputs=PATH`: classify image files or table rows with a trained checkpoint.

For an image model PATH is one image, a folder (its image files) or a glob (`'photos/*.png'`,
quoted). Every image is preprocessed as training preprocessed the data set, from the checkpoint
alone: decoded, converted to grey or RGB as the model's input shape says and resized to its height x
width by the rule `data=image_folder` trains with (`src/data/image_files.py`), scaled to the data
set's pixel range (digits 0..16, image data sets 0..255) and normalised with the training mean/std.
The CSV has `file, class, probability`.

For a model trained with `data=csv`, PATH is a CSV or Parquet file with the training features: its
rows are encoded with the encoding fitted in training (stored in the checkpoint), and the CSV has
`row` (0-based, header not counted), the target's column if the file has it, `class`,
`probability` and one `p_<class>` column per class.

Prints a table and writes `predictions.csv` into the run folder
(`logs/predict/runs/<date>_<time>_<microseconds>/`) or to `output=FILE`.
"""

from __future__ import annotations

import csv
import logging
import sys
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig
from rich.console import Console
from rich.table import Table

import src.config.resolvers  # noqa: F401
from src.config.choices import check_command_line
from src.errors import exits_on_user_error, require

log = logging.getLogger(__name__)


def predict(cfg: DictConfig) -> list[dict[str, Any]]:
    # Imported here: a command Hydra refuses (a misspelt override, --help) ends before torch and Lightning load.
    import torch

    from src.inference.images import predict_images
    from src.inference.model import rebuild_module
    from src.inference.preprocessing import preprocessing_of
    from src.inference.tables import predict_table
    from src.runs.checkpoint import load_checkpoint

    path, ckpt = load_checkpoint(cfg.ckpt_path)
    prep = preprocessing_of(ckpt, path)
    require(
        prep.is_image or prep.is_table,
        f"predict takes images, but the model in {path} was trained on {prep.data_name}, whose inputs have shape "
        f"{list(prep.input_shape)} (not channels x height x width); use src.eval for such data.",
    )
    require(bool(str(cfg.get("inputs") or "").strip()),
            "inputs is required: pass inputs=PATH (an image, a folder or a glob; a table file for a table model).")
    batch_size = int(cfg.get("batch_size") or 256)
    require(batch_size > 0, f"batch_size must be a positive integer, got {batch_size}.")
    device = torch.device(cfg.get("device") or "cpu")
    multilabel = str(ckpt["run_config"].get("data", {}).get("task_model", "")).endswith("MultiLabelModule")
    if multilabel:  # several labels per sample (src/inference/multilabel.py): the labels above their thresholds
        from src.inference.multilabel import predict_labels, print_label_table
        rows, key = predict_labels(cfg, path, ckpt, prep, batch_size, device)
        what = "row(s)" if prep.is_table else "image(s)"
    elif prep.is_table:
        model = rebuild_module(path, ckpt).to(device)
        rows = predict_table(model, prep, str(cfg.inputs), batch_size, device)
        what, key = "row(s)", "row"
    else:
        rows = predict_images(cfg, path, ckpt, prep, batch_size, device)
        what, key = "image(s)", "file"

    output = Path(str(cfg.output))
    output.parent.mkdir(parents=True, exist_ok=True)
    with open(output, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else [key, "class", "probability"])
        writer.writeheader()
        writer.writerows({k: f"{v:.6f}" if isinstance(v, float) and k != key else v for k, v in r.items()}
                         for r in rows)
    (print_label_table if multilabel else print_table)(rows, int(cfg.get("show", 50)), prep.data_name, key)
    print(f"{len(rows)} {what} classified with {path}; predictions: {output}", flush=True)
    return rows


def print_table(rows: list[dict[str, Any]], show: int, data_name: str, key: str = "file") -> None:
    table = Table(title=f"Predictions ({data_name} classes)")
    table.add_column(key, overflow="fold")
    table.add_column("class")
    table.add_column("probability", justify="right")
    for row in rows[: max(show, 0)]:
        table.add_row(str(row[key]), str(row["class"]), f"{row['probability']:.4f}")
    if len(rows) > show:
        table.caption = f"... and {len(rows) - show} more in the CSV file"
    Console().print(table)


@hydra.main(version_base="1.3", config_path="../conf", config_name="predict")
@exits_on_user_error
def main(cfg: DictConfig) -> None:
    predict(cfg)


if __name__ == "__main__":
    exits_on_user_error(check_command_line)(sys.argv[1:])
    main()
