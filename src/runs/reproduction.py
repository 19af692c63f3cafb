"""The course notes' results beside ours: one `Recipe` per experiment with a `notes_result` block, what
its job of a reproduction sweep recorded (`job_results`), and the page that compares them (`results_page`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from src.lightning_internals import epochs_trained
from src.runs.record import read_record
from src.runs.tables import markdown_table


@dataclass
class Recipe:
    """One experiment: its composed config, what the notes report, and whether its data is here."""

    name: str
    config: Any  # DictConfig composed with `experiment=<name>`
    notes_result: dict[str, Any]
    missing: str | None = None  # why it was not run (data missing), or None
    job_dir: Path | None = None
    results: dict[str, Any] = field(default_factory=dict)


def relative(path: Path | str) -> str:
    path = Path(path).resolve()
    try:
        return str(path.relative_to(Path.cwd().resolve())) + "/"
    except ValueError:
        return str(path) + "/"



def count_parameters(config: Any) -> int:
    net = instantiate(OmegaConf.to_container(config.model.net, resolve=True), _convert_="all")
    return sum(p.numel() for p in net.parameters())


def job_results(recipe: Recipe) -> dict[str, Any]:
    """Metrics, epochs / steps, wall time and the notes_result block of a job folder."""
    job = recipe.job_dir
    out: dict[str, Any] = {}
    if job is None:
        return out
    config = OmegaConf.load(job / ".hydra" / "config.yaml")
    recipe.config = config
    recipe.notes_result = OmegaConf.to_container(config.get("notes_result") or {}, resolve=True)
    record = read_record(job)
    if record is not None and record.finished:
        out["metrics"] = record.metrics
        # src.train records its device and wall time; else: from the config's to the record's file time
        started = (job / ".hydra" / "config.yaml").stat().st_mtime
        out["wall_s"] = record.wall_time_s or record.path.stat().st_mtime - started
        out["device"] = record.device
    elif record is not None:
        out["error"] = record.error or "failed"
    last = job / "checkpoints" / "last.ckpt"
    if last.is_file():
        ckpt = torch.load(last, map_location="cpu", weights_only=True)
        out["epochs"] = epochs_trained(ckpt)
        out["steps"] = int(ckpt.get("global_step", 0))
    return out


def fmt(value: Any, metric: str) -> str:
    if value is None:
        return "—"
    return f"{int(value):,}" if metric == "params" else f"{float(value):.4f}"


def device_of(job_device: str | None, sweep_device: str) -> str:
    """The job's own device ("cuda:0", "cpu") where it recorded one, named as the sweep's description
    ("cuda (NVIDIA H100 ...)", "cpu (16 cores)") when they are the same kind."""
    if not job_device or job_device.split(":")[0] == sweep_device.split(" ")[0]:
        return sweep_device
    return job_device


def table_row(recipe: Recipe, device: str) -> dict[str, str]:
    result = recipe.notes_result
    metric = str(result.get("metric", "test/acc"))
    value = result.get("value")
    relation = str(result.get("relation") or "=")
    res = recipe.results
    if metric == "params":
        ours: float | None = count_parameters(recipe.config)
    else:
        ours = (res.get("metrics") or {}).get(metric)
    stand_in = result.get("stand_in")
    if value is None or ours is None:
        difference = "—"
    elif stand_in:
        difference = "n/a (stand-in)"
    elif relation == "<=":
        within = ours <= value + 1e-9
        difference = f"within (≤ {fmt(value, metric)})" if within else f"above the bound by {ours - value:.4f}"
    else:
        difference = f"{int(ours - value):+,}" if metric == "params" else f"{ours - value:+.4f}"
    data = str(recipe.config.data.get("name"))
    status = []
    if recipe.missing:
        status.append(f"**not run: data missing**: {recipe.missing}, then "
                      f"`python -m src.train experiment={recipe.name}` (with network access it downloads them itself)")
    elif res.get("error"):
        status.append(f"**failed**: {res['error']}")
    elif recipe.job_dir is None:
        status.append(f"**not run**: not in this sweep (`python -m src.reproduce --only {recipe.name}`)")
    elif "metrics" not in res:
        status.append(f"**no result**: see {relative(recipe.job_dir)}train.log")
    if stand_in:
        status.append(f"stand-in: {stand_in}")
    if result.get("note"):
        status.append(str(result["note"]))
    ran = "metrics" in res
    epochs = f"{res['epochs']:,} ({res['steps']:,} steps)" if ran and "epochs" in res else "—"
    notes_value = fmt(value, metric) if value is None else f"{'≤ ' if relation == '<=' else ''}{fmt(value, metric)}"
    return {
        "notes": str(result.get("notes", "?")),
        "experiment": f"`{recipe.name}`",
        "metric": metric,
        "notes' number": notes_value,
        "ours": fmt(ours, metric),
        "difference": difference,
        "data": data + (" (stand-in)" if stand_in else ""),
        "epochs": epochs,
        "device": device_of(res.get("device"), device) if ran else "—",
        "wall time": f"{res['wall_s']:.0f} s" if ran and "wall_s" in res else "—",
        "status and notes": "; ".join(status),
    }


def results_page(recipes: list[Recipe], sweep_dir: Path | None, info: dict[str, Any]) -> str:
    """The Markdown page of the course notes' results beside ours."""
    rows = [table_row(r, info.get("device", "?")) for r in recipes]
    header = list(rows[0]) if rows else []
    lines = [
        "# The course notes' results, reproduced",
        "",
        f"Generated by `python -m src.reproduce` on {datetime.now().strftime('%Y-%m-%d %H:%M')}"
        + (f" from the sweep `{relative(sweep_dir)}`" if sweep_dir else "") + ".",
    ]
    if info.get("command"):
        lines.append(f"Jobs: `python {info['command']}`.")
    if info.get("max_epochs") is not None:
        lines.append(f"**Quick run: every recipe was cut to `trainer.max_epochs={info['max_epochs']}`**, so the "
                     "numbers are not the course notes' full recipes.")
    lines += [
        "",
        "`notes' number`: what the course notes report (`notes_result` in `conf/experiment/<experiment>.yaml`); "
        "`ours`: the final test metric of the run (`metrics.json`; `params`: counted on the net the config builds); "
        "`difference`: ours - notes'; `epochs`: trained epochs and optimizer steps (`last.ckpt`); `wall time`: the "
        "job's, from its config to its metrics file. Stand-in rows run the notes' recipe on another data set and are "
        "not comparable with the notes' number.",
        "",
    ]
    if rows:
        lines.append(markdown_table(header, [[row[h] for h in header] for row in rows]))
    return "\n".join(lines) + "\n"
