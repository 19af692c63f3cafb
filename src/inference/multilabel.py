"""src.eval, src.predict and src.calibrate for a model with several labels per sample (src/models/multilabel.py).

src.eval's report folder holds: metrics.json (test/map, f1_micro, f1_macro, f1_samples, hamming, exact_match,
acc, loss, and the per-label calibration error test/ece: the mean of every label's ECE), per_label.csv
(label, precision, recall, f1, support, threshold, ece), per_label.png, and predictions.csv (`sample`, `true` and
`predicted` label sets joined by `|`, `loss`, one `p_<label>` column per label). src.predict lists each input's
labels above their thresholds, with their probabilities. src.calibrate fits one temperature per label.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torchmetrics.functional.classification import binary_calibration_error

from src.errors import UserError
from src.inference.eval_report import write_csv
from src.inference.images import find_images, load_image
from src.inference.model import rebuild_module
from src.inference.tables import predict_table
from src.models.multilabel_reports import per_label_figure, per_label_rows


def per_label_ece(probabilities: torch.Tensor, targets: torch.Tensor, bins: int = 15) -> torch.Tensor:
    """Each label's expected calibration error (torchmetrics: `bins` equal-width bins of its probability, the
    observed frequency of the label in each)."""
    return torch.tensor([float(binary_calibration_error(p.contiguous(), t.long(), n_bins=bins, norm="l1"))
                         for p, t in zip(probabilities.T.float().cpu(), targets.T.cpu())])


def check_label_names(datamodule, ckpt: dict, path: Path) -> None:
    """The data's labels (after `setup`) must be the checkpoint's: a label the model never learned, in a labels
    file or label lists given to src.eval or src.calibrate, stops in one sentence."""
    from src.inference.preprocessing import preprocessing_of

    known = list(preprocessing_of(ckpt, path).class_names)
    unknown = [str(n) for n in datamodule.class_names if str(n) not in known]
    if unknown:
        raise UserError(f"the data has the unknown label {unknown[0]!r} ({len(unknown)} label(s) the model in {path} "
                        f"never learned); its labels are {', '.join(known[:12])}: fix the labels, or train a model "
                        "on them.")


def write_multilabel_report(out_dir: Path, trainer, model, datamodule, probabilities) -> dict[str, float]:
    """predictions.csv, per_label.csv, per_label.png; returns `test/ece` (logged to the loggers too)."""
    from src.figures.plots import save_png
    from src.inference.test_predictions import test_probabilities

    if probabilities is None:
        probabilities = test_probabilities(trainer, model, datamodule)
    names = [str(n) for n in datamodule.class_names]
    model.write_predictions_csv(out_dir / "predictions.csv", datamodule.test_split, probabilities, names)
    targets = datamodule.test_split.targets.cpu()
    ece = per_label_ece(probabilities, targets)
    rows = per_label_rows(model.test_per_label, names)
    rows[0] += ["threshold", "ece"]
    for row, threshold, value in zip(rows[1:], model.thresholds.tolist(), ece.tolist()):
        row += [f"{threshold:.2f}", f"{value:.6f}"]
    write_csv(out_dir / "per_label.csv", rows)
    save_png(per_label_figure(model.test_per_label, names, "Per-label scores, test"), out_dir / "per_label.png")
    metrics = {"test/ece": float(ece.mean())}
    for logger in trainer.loggers:
        logger.log_metrics(metrics, step=trainer.global_step)
    return metrics


def predict_labels(cfg, path: Path, ckpt: dict, prep: Any, batch_size: int, device: torch.device
                   ) -> tuple[list[dict[str, Any]], str]:
    """(one row per input: `file` or `row`, `labels` (above their thresholds, joined by `|`), one `p_<label>`
    column per label; the key column's name)."""
    model = rebuild_module(path, ckpt).to(device)
    names, thresholds = list(prep.class_names), model.thresholds.cpu().tolist()
    if prep.is_table:
        rows = [{k: v for k, v in r.items() if k not in ("class", "probability")}
                for r in predict_table(model, prep, str(cfg.inputs), batch_size, device)]
        key = "row"
    else:
        files, rows, key = find_images(str(cfg.inputs)), [], "file"
        for start in range(0, len(files), batch_size):
            chunk = files[start : start + batch_size]
            raw = torch.stack([load_image(f, prep.input_shape, prep.max_value, bool(cfg.get("invert"))) for f in chunk])
            with torch.no_grad():
                probabilities = model.predict_proba(prep.normalize(raw).to(device)).cpu()
            rows += [{"file": str(f), **{f"p_{n}": v for n, v in zip(names, p)}}
                     for f, p in zip(chunk, probabilities.tolist())]
    for row in rows:
        row["labels"] = "|".join(n for n, t in zip(names, thresholds) if row[f"p_{n}"] > t)
    return [{key: r[key], "labels": r["labels"], **{k: v for k, v in r.items() if k not in (key, "labels")}}
            for r in rows], key


def print_label_table(rows: list[dict[str, Any]], show: int, data_name: str, key: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"Predicted labels ({data_name}; a label above its threshold)")
    table.add_column(key, overflow="fold")
    table.add_column("labels (probability)")
    for row in rows[: max(show, 0)]:
        labels = [f"{n} ({row['p_' + n]:.3f})" for n in row["labels"].split("|") if n]
        table.add_row(str(row[key]), ", ".join(labels) or "(none)")
    if len(rows) > show:
        table.caption = f"... and {len(rows) - show} more in the CSV file"
    Console().print(table)


def fit_label_temperatures(logits: torch.Tensor, targets: torch.Tensor, max_iter: int = 200) -> torch.Tensor:
    """One temperature T > 0 per label minimising the binary cross-entropy of `logits / T` (LBFGS on log T)."""
    import torch.nn.functional as F

    logits, targets = logits.detach().float().cpu(), targets.float().cpu()
    log_t = torch.zeros(logits.shape[1], requires_grad=True)
    optimizer = torch.optim.LBFGS([log_t], lr=0.1, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = F.binary_cross_entropy_with_logits(logits / log_t.exp(), targets, reduction="none").mean(0).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    return log_t.detach().exp()


def calibrate_labels(module, datamodule, ckpt: dict, path: Path, output: Path) -> dict[str, Any]:
    """src.calibrate for several labels: a temperature per label fitted on validation, per-label ECE on the test
    split before and after, and a calibrated checkpoint whose thresholds move with the temperatures
    (sigmoid(logit(t) / T)), so every predicted label stays the same."""
    from src.inference.model import TEMPERATURE_KEY
    from src.runs.checkpoint_writer import AtomicCheckpointIO

    def outputs(loader) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.no_grad():
            pairs = [(module(x.to(module.device)).float().cpu(), y.cpu()) for x, y in loader]
        return torch.cat([p[0] for p in pairs]), torch.cat([p[1] for p in pairs])

    (val_logits, val_targets), (test_logits, test_targets) = outputs(datamodule.val_dataloader()), \
        outputs(datamodule.test_dataloader())
    temperatures = fit_label_temperatures(val_logits, val_targets)
    before = per_label_ece(torch.sigmoid(test_logits), test_targets)
    after = per_label_ece(torch.sigmoid(test_logits / temperatures), test_targets)
    thresholds = module.thresholds.cpu().clamp(1e-6, 1 - 1e-6)
    moved = torch.sigmoid(torch.logit(thresholds) / temperatures)
    state = {**ckpt["state_dict"], "thresholds": moved}
    calibrated = {**ckpt, "state_dict": state, TEMPERATURE_KEY: temperatures.tolist(),
                  "calibration": {"fitted_on": "val", "source": str(path.resolve()),
                                  "test_ece_before": before.tolist(), "test_ece_after": after.tolist()}}
    AtomicCheckpointIO().save_checkpoint(calibrated, output)
    names = [str(n) for n in datamodule.class_names]
    print(f"one temperature per label (fitted on {len(val_targets)} validation samples); test ECE per label:")
    for name, t, b, a in zip(names, temperatures.tolist(), before.tolist(), after.tolist()):
        print(f"  {name}: T = {t:.4f}, ECE {b:.4f} -> {a:.4f}")
    print(f"mean test ECE {float(before.mean()):.4f} -> {float(after.mean()):.4f}; predicted labels unchanged "
          f"(thresholds moved with T); calibrated checkpoint: {output}", flush=True)
    return {"temperature": temperatures.tolist(), "test/ece_before": float(before.mean()),
            "test/ece_after": float(after.mean())}
