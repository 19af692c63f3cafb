"""The `README.md` model card of `src.export format=hub`, made from the run's own records.

From the run folder of the checkpoint (`<run>/checkpoints/<name>.ckpt`): the test metrics of
`metrics.json` (also in the card's YAML header as the Hub's `model-index`, with their exact values;
mean ± std over the runs of a seed sweep beside it: same overrides but the seed), the ECE (the latest
`src.eval` record, else computed from `test_predictions.csv`), per-class precision, recall and F1 and a
confusion-matrix image from `confusion_matrix_test.csv`, the data set and a fingerprint of its splits (a
SHA-256 of every sample id and label, split by split, from the data module rebuilt as training built it),
the training command and configuration, and an "Intended use and limitations" section for the author.
A model with several labels per sample shows its own metrics (mAP, F1 micro / macro / samples, Hamming loss,
exact match; no accuracy), the mean per-label ECE, and each label's threshold, precision, recall and F1 from the
run's `test_predictions.csv` instead of the confusion matrix.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import statistics
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

METRIC_TYPES = {"acc": "accuracy", "f1": "f1", "precision": "precision", "recall": "recall", "loss": "loss",
                "ece": "ece", "map": "mAP", "f1_micro": "f1", "f1_macro": "f1", "f1_samples": "f1",
                "hamming": "hamming_loss", "exact_match": "exact_match"}


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _test_metrics(record: dict[str, Any] | None) -> dict[str, float]:
    return {k: float(v) for k, v in ((record or {}).get("metrics") or {}).items() if k.startswith("test/")}


def seed_sweep(run_dir: Path, record: dict[str, Any]) -> dict[str, tuple[float, float, int]]:
    """{metric: (mean, std, runs)} over the sibling runs that differ from this one only by the seed."""
    def same(overrides) -> list[str]:
        return sorted(o for o in overrides or [] if not str(o).startswith(("seed=", "hydra.")))

    mine, runs = same(record.get("overrides")), []
    for other in sorted(run_dir.parent.glob("*/metrics.json")):
        rec = _read_json(other)
        if rec and same(rec.get("overrides")) == mine and rec.get("status", "completed") == "completed":
            runs.append(_test_metrics(rec))
    if len(runs) < 2:
        return {}
    keys = [k for k in runs[0] if all(k in r for r in runs)]
    return {k: (statistics.fmean(r[k] for r in runs), statistics.stdev(r[k] for r in runs), len(runs)) for k in keys}


def ece_of(run_dir: Path, class_names: list[str], multilabel: bool = False) -> float | None:
    """The test ECE: the latest src.eval record's, else from the run's test probabilities (several labels per
    sample: the mean of every label's ECE, as src.eval reports it)."""
    evals = sorted(run_dir.glob("eval/*/metrics.json"))
    for record in reversed(evals):
        ece = (_read_json(record) or {}).get("metrics", {}).get("test/ece")
        if ece is not None:
            return float(ece)
    rows = _csv(run_dir / "test_predictions.csv")
    if not rows or len(rows) < 2:
        return None
    import torch

    from src.models.calibration import calibration_metrics

    columns = [i for i, c in enumerate(rows[0]) if c.startswith("p_")]
    probabilities = torch.tensor([[float(r[i]) for i in columns] for r in rows[1:]])
    if multilabel:
        from src.inference.multilabel import per_label_ece

        truth = torch.tensor(label_sets(rows, "true", class_names))
        return float(per_label_ece(probabilities, truth).mean())
    targets = torch.tensor([class_names.index(r[rows[0].index("true")]) for r in rows[1:]])
    return float(calibration_metrics(probabilities, targets)["ece"])


def _csv(path: Path) -> list[list[str]] | None:
    try:
        with open(path, newline="") as f:
            return list(csv.reader(f))
    except OSError:
        return None


def per_class(run_dir: Path, out: Path, class_names: list[str]) -> tuple[list[str], bool]:
    """Markdown rows of per-class precision/recall/F1 and whether confusion_matrix.png was drawn."""
    rows = _csv(run_dir / "confusion_matrix_test.csv")
    if not rows or len(rows) != len(class_names) + 1:
        return [], False
    import numpy as np

    matrix = np.array([[int(v) for v in row[1:]] for row in rows[1:]])
    lines = ["| class | precision | recall | F1 | test samples |", "|---|---|---|---|---|"]
    for i, name in enumerate(class_names):
        tp, predicted, actual = matrix[i, i], matrix[:, i].sum(), matrix[i].sum()
        p, r = (tp / predicted if predicted else 0.0), (tp / actual if actual else 0.0)
        f1 = 2 * p * r / (p + r) if p + r else 0.0
        lines.append(f"| {name} | {p:.4f} | {r:.4f} | {f1:.4f} | {actual} |")
    from src.figures.plots import confusion_matrix_figure, save_png

    save_png(confusion_matrix_figure(matrix, class_names, "test confusion matrix"), out / "confusion_matrix.png")
    return lines, True


def label_sets(rows: list[list[str]], column: str, names: list[str]) -> list[list[int]]:
    """0/1 rows of the `|`-joined label sets in `column` of a test_predictions.csv (header first)."""
    at = rows[0].index(column)
    return [[int(n in r[at].split("|")) for n in names] for r in rows[1:]]


def per_label(run_dir: Path, class_names: list[str], thresholds: dict[str, float]) -> list[str]:
    """Markdown rows of each label's threshold, precision, recall and F1 from the run's test_predictions.csv."""
    rows = _csv(run_dir / "test_predictions.csv")
    if not rows or len(rows) < 2 or not {"true", "predicted"} <= set(rows[0]):
        return []
    true, predicted = label_sets(rows, "true", class_names), label_sets(rows, "predicted", class_names)
    lines = ["| label | threshold | precision | recall | F1 | test samples with it |", "|---|---|---|---|---|---|"]
    for i, name in enumerate(class_names):
        tp = sum(t[i] and p[i] for t, p in zip(true, predicted))
        guessed, actual = sum(p[i] for p in predicted), sum(t[i] for t in true)
        precision, recall = (tp / guessed if guessed else 0.0), (tp / actual if actual else 0.0)
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        lines.append(f"| {name} | {thresholds[name]:.4f} | {precision:.4f} | {recall:.4f} | {f1:.4f} | {actual} |")
    return lines


def split_fingerprint(ckpt: dict[str, Any]) -> tuple[str | None, dict[str, int]]:
    """(SHA-256 of every split's sample ids and labels, samples per split), from the data module rebuilt."""
    from src.builders import build_datamodule
    from src.runs.checkpoint import training_paths

    try:
        datamodule = build_datamodule({**training_paths(ckpt["run_config"]), "device": "cpu"})
        datamodule.prepare_data()
        datamodule.setup("fit")
    except Exception as exc:  # the data are not on this machine: the card says so
        log.warning("the data set could not be rebuilt for the card's split fingerprint (%s).", exc)
        return None, {}
    digest, counts = hashlib.sha256(), {}
    for name in ("train", "val", "test"):
        split = getattr(datamodule, f"{name}_split")
        names = split.names or [str(i) for i in range(len(split))]
        counts[name] = len(split)
        for sample, label in zip(names, split.targets.tolist()):
            digest.update(f"{name}\t{sample}\t{label}\n".encode())
    return digest.hexdigest(), counts


def _front_matter(config: dict[str, Any], metrics: dict[str, float], dataset: str, image: bool,
                  multilabel: bool = False) -> list[str]:
    lines = ["---", "library_name: lightning-hydra-classify", "tags:", "- image-classification" if image
             else "- tabular-classification", *(["- multi-label-classification"] if multilabel else []),
             "- pytorch", "model-index:", f"- name: {config['architecture']}",
             "  results:", "  - task:", f"      type: {'image' if image else 'tabular'}-classification",
             "    dataset:", f"      name: {json.dumps(dataset)}", f"      type: {json.dumps(dataset)}",
             "    metrics:"]
    for key, value in metrics.items():
        kind = METRIC_TYPES.get(key.split("/", 1)[1], key.split("/", 1)[1])
        lines += [f"    - type: {kind}", f"      name: {key}", f"      value: {value!r}"]
    return [*lines, "---", ""]


def write_card(out: Path, path: Path, ckpt: dict[str, Any], prep, config: dict[str, Any]) -> Path:
    from omegaconf import OmegaConf

    from src.runs.checkpoint import run_dir_of

    run_dir = run_dir_of(path.resolve())
    record = _read_json(run_dir / "metrics.json") if run_dir else None
    multilabel = config.get("task") == "multilabel"  # its test/acc is the exact match, shown under that name
    metrics = {k: v for k, v in sorted(_test_metrics(record).items(), key=lambda kv: multilabel and kv[0] != "test/map")
               if not (multilabel and k == "test/acc")}  # mAP first
    names = list(prep.class_names)
    data_cfg = ckpt["run_config"].get("data") or {}
    dataset = str(data_cfg.get("dataset") or data_cfg.get("name") or prep.data_name)
    ece = ece_of(run_dir, names, multilabel) if run_dir else None
    sweep = seed_sweep(run_dir, record) if run_dir and record else {}
    lines = _front_matter(config, {**metrics, **({"test/ece": ece} if ece is not None else {})}, dataset,
                          prep.is_image, multilabel)
    kind = f"a multi-label classifier of {len(names)} labels, each predicted above its own threshold" \
        if multilabel else f"a classifier of {len(names)} classes"
    lines += [f"# {config['architecture']} on {dataset}", "",
              f"`{config['architecture']}`, {kind} ({', '.join(names[:20])}"
              f"{', ...' if len(names) > 20 else ''}), input shape {list(prep.input_shape)}, trained with "
              "lightning-hydra-classify. Load it with `python -m src.predict ckpt_path=<this folder> inputs=...`"
              + (" or `timm.create_model('local-dir:<this folder>', pretrained=True)`." if "pretrained_cfg" in config
                 else "."), "", "## Test metrics", ""]
    if metrics:
        lines += ["| metric | value |" + (" mean ± std over the seed sweep |" if sweep else ""),
                  "|---|---|" + ("---|" if sweep else "")]
        for key, value in metrics.items():
            spread = f" {sweep[key][0]:.4f} ± {sweep[key][1]:.4f} ({sweep[key][2]} runs) |" if key in sweep else \
                (" |" if sweep else "")
            lines.append(f"| {key} | {value:.4f} |{spread}")
        if ece is not None:
            lines.append(f"| test/ece | {ece:.4f} |" + (" |" if sweep else ""))
    else:
        lines.append("The run's metrics.json was not found beside the checkpoint: no test metrics recorded.")
    if multilabel:
        rows, drawn = (per_label(run_dir, names, config["thresholds"]) if run_dir else []), False
    else:
        rows, drawn = per_class(run_dir, out, names) if run_dir else ([], False)
    if rows:
        lines += ["", f"## Per-{'label' if multilabel else 'class'} metrics (test)", "", *rows]
    if drawn:
        lines += ["", "![test confusion matrix](confusion_matrix.png)"]
    fingerprint, counts = split_fingerprint(ckpt)
    lines += ["", "## Data", "", f"- data set: `{dataset}` (`{data_cfg.get('_target_')}`)"]
    if fingerprint:
        lines += [f"- samples: {', '.join(f'{k} {v}' for k, v in counts.items())}",
                  f"- split fingerprint (SHA-256 of each split's sample ids and labels): `{fingerprint}`"]
    else:
        lines.append("- split fingerprint: not computed (the data set could not be read where the folder was made)")
    training = {k: ckpt["run_config"].get(k) for k in ("data", "model", "optimizer", "scheduler", "trainer")
                if ckpt["run_config"].get(k) is not None}
    lines += ["", "## Training", "", "```bash", config["training_command"], "```", "",
              "<details><summary>configuration</summary>", "", "```yaml",
              OmegaConf.to_yaml(OmegaConf.create(training)).rstrip(), "```", "", "</details>", "",
              "## Intended use and limitations", "",
              "_To be written by the model's author: what the model is for, what it was not tested on, known "
              "failure modes and biases of the data._", ""]
    card = out / "README.md"
    card.write_text("\n".join(lines))
    return card
