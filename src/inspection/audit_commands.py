"""What `python -m src.audit` runs: the label audit of a k-fold sweep, a k-fold sweep started and audited,
and the duplicate check of a data set alone."""

from __future__ import annotations

import logging
import shlex
import subprocess
import sys
from datetime import datetime
from pathlib import Path

from omegaconf import DictConfig
from torch.utils.tensorboard import SummaryWriter

from src import builders
from src.config.names import plain
from src.data.duplicates import check_policy, find_duplicates
from src.errors import UserError, require
from src.figures.plots import save_png
from src.inspection.issue_grid import issues_figure
from src.inspection.label_issues import label_issues, out_of_fold, write_issues_csv

log = logging.getLogger(__name__)


def audit_labels(sweep: str | Path, top: int = 30) -> Path:
    """label_issues.csv (+ label_issues.png and its TensorBoard image) in the sweep folder; returns the CSV."""
    sweep = Path(str(sweep)).expanduser()
    from src.inspection.multilabel_issues import is_multilabel_sweep
    several = is_multilabel_sweep(sweep)  # several labels per sample: cleanlab's multi-label mode, no grid
    if several:
        from src.inspection.multilabel_issues import multilabel_label_issues, multilabel_out_of_fold
    oof = multilabel_out_of_fold(sweep) if several else out_of_fold(sweep)
    issues = multilabel_label_issues(oof) if several else label_issues(oof)
    path = sweep / "label_issues.csv"
    write_issues_csv(issues, path)
    print(f"{len(issues)} likely label error(s) among {len(oof.samples)} training samples of {len(oof.jobs)} runs "
          f"(cleanlab{', multi-label' if several else ''}, out-of-fold predictions): {path}", flush=True)
    figure = None if several else issues_figure(oof.jobs[0], issues, oof.class_names, top)
    if figure is not None:
        print(f"wrote {save_png(figure, sweep / 'label_issues.png')}", flush=True)
        with SummaryWriter(str(sweep / "tensorboard")) as writer:
            writer.add_figure("audit/label_issues", figure)
    return path


def run_and_audit(overrides: list[str], folds: int, top: int) -> Path:
    """`python -m src.train -m <overrides> data.num_folds=F data.fold=range(0,F)` into one sweep folder, then
    its label audit."""
    require(isinstance(folds, int) and folds >= 2, f"folds must be an integer of at least 2, got {folds!r}.")
    given = [o for o in overrides if o.startswith("hydra.sweep.dir=")]
    sweep = given[-1].split("=", 1)[1] if given else \
        f"logs/train/multiruns/{datetime.now():%Y-%m-%d_%H-%M-%S}_audit"
    command = [sys.executable, "-m", "src.train", "-m", *[o for o in overrides if o not in given],
               f"data.num_folds={folds}", f"data.fold=range(0,{folds})", f"hydra.sweep.dir={sweep}"]
    print("running " + shlex.join(command[1:]), flush=True)
    if subprocess.run(command).returncode != 0:
        raise UserError(f"the k-fold sweep stopped (see its message above); fix it, then audit {sweep} with "
                        f"python -m src.audit {sweep}.")
    return audit_labels(sweep, top)


def check_duplicates(cfg: DictConfig) -> Path:
    """The duplicate check of `cfg.data` alone: duplicates.csv in the output folder, counts printed."""
    check_policy("warn", cfg.get("duplicate_distance"))
    datamodule = builders.build_datamodule({**plain(cfg.data), "duplicates": "off"})
    datamodule.prepare_data()
    datamodule.setup("fit")
    splits = {"train": datamodule.train_split, "val": datamodule.val_split, "test": datamodule.test_split}
    require(not getattr(datamodule, "file_backed", False),
            "the duplicate check reads decoded images; set data.loader=tensor (the image cache).")
    arrays = {s: split.inputs.cpu().numpy() for s, split in splits.items()}
    names = {s: list(split.names) if split.names is not None else [str(i) for i in range(len(split))]
             for s, split in splits.items()}
    distance = cfg.get("duplicate_distance")
    report = find_duplicates(arrays, names, arrays["train"].ndim == 4, distance)
    path = Path(cfg.paths.output_dir) / "duplicates.csv"
    report.write_csv(path)
    sizes = ", ".join(f"{s} {len(split)}" for s, split in splits.items())
    print(f"{datamodule.name} ({sizes}): {report.summary()}; {len(report.leaked('val'))} validation and "
          f"{len(report.leaked('test'))} test sample(s) duplicate a training sample: {path}", flush=True)
    return path
