"""`python -m src.report DIR`: one table of a sweep's runs, best first.

DIR is a multirun folder (`logs/train/multiruns/<stamp>/`) whose job folders (`0/`, `1/`, ...) each
hold `.hydra/overrides.yaml` and, when the job finished, `metrics.json` (a job that failed leaves
`failed.json` with its error instead). The table has one row per job: its rank, the overrides that
differ between jobs (those shared by all are listed above the table), the final metrics, and its
status; jobs without `metrics.json` are listed as failed (with the error when recorded), last.
Rows are sorted by the optimised metric (`optimized_metric` and `optimized_mode` from the job's
`metrics.json`, else from its `.hydra/config.yaml`). The table is printed and written into DIR as
`report.md` and `report.csv` (full precision).

    python -m src.report logs/train/multiruns/2026-01-01_12-00-00_000000
    python -m src.report DIR --metrics test/acc,test/loss       # choose the metric columns ("all": every one)

The steps are separate functions (`collect_runs` -> `sort_runs` -> `build_table` -> writers), so
that grouping runs by their overrides other than `seed` (mean ± std per group) can be added between
collecting and building the table.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from src.utils.errors import UserError, exits_on_user_error, require

DEFAULT_METRICS = (
    "test/acc", "test/loss", "test/f1", "test/precision", "test/recall", "val/acc_best", "val/acc", "val/loss",
)


@dataclass
class Run:
    """One job of a sweep."""

    job: str
    path: Path
    overrides: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    optimized_metric: str | None = None
    optimized_mode: str = "max"
    failed: bool = False
    error: str | None = None  # the failed job's error (its failed.json)

    @property
    def status(self) -> str:
        if not self.failed:
            return "ok"
        return f"failed: {self.error}" if self.error else "failed (no metrics.json)"

    def score(self) -> float | None:
        value = self.metrics.get(self.optimized_metric) if self.optimized_metric else None
        return None if value is None or math.isnan(value) else float(value)


# --- collecting ---------------------------------------------------------------------------------
def _job_key(path: Path) -> tuple[int, int | str]:
    return (0, int(path.name)) if path.name.isdigit() else (1, path.name)


def collect_runs(sweep_dir: str | Path) -> list[Run]:
    """Every job folder of `sweep_dir` (a folder with `.hydra/overrides.yaml` or `metrics.json`)."""
    root = Path(sweep_dir).expanduser()
    require(root.is_dir(), f"there is no folder at {root}; pass a multirun folder, e.g. logs/train/multiruns/<stamp>.")
    jobs = sorted((p for p in root.iterdir() if p.is_dir() and _is_job(p)), key=_job_key)
    if not jobs and _is_job(root):  # a single run's folder
        jobs = [root]
    require(
        bool(jobs),
        f"{root} holds no runs (job folders with .hydra/overrides.yaml or metrics.json); pass a multirun "
        "folder such as logs/train/multiruns/<stamp>.",
    )
    return [read_run(job) for job in jobs]


def _is_job(path: Path) -> bool:
    return any((path / name).is_file() for name in (".hydra/overrides.yaml", "metrics.json", "failed.json"))


def read_run(job: Path) -> Run:
    import yaml

    run = Run(job=job.name, path=job)
    overrides_file = job / ".hydra" / "overrides.yaml"
    if overrides_file.is_file():
        for item in yaml.safe_load(overrides_file.read_text()) or []:
            key, _, value = str(item).partition("=")
            run.overrides[key] = value
    config_file = job / ".hydra" / "config.yaml"
    config = {}
    if config_file.is_file():
        try:
            config = yaml.safe_load(config_file.read_text()) or {}
        except yaml.YAMLError:
            config = {}
    run.optimized_mode = str(config.get("optimized_mode") or "max").lower()
    run.optimized_metric = config.get("optimized_metric")
    try:
        content = json.loads((job / "metrics.json").read_text())
        run.metrics = {k: float(v) for k, v in (content.get("metrics") or {}).items()}
        run.optimized_metric = content.get("optimized_metric") or run.optimized_metric
        run.optimized_mode = str(content.get("optimized_mode") or run.optimized_mode).lower()
    except (OSError, ValueError, TypeError, AttributeError):
        run.failed = True
        try:
            error = json.loads((job / "failed.json").read_text()).get("error")
            run.error = " ".join(str(error).split()) or None if error else None
        except (OSError, ValueError, TypeError, AttributeError):
            run.error = None
    return run


# --- ordering and table -------------------------------------------------------------------------
def sort_runs(runs: Sequence[Run]) -> list[Run]:
    """Finished runs by the optimised metric, best first (ties and the rest in job order); then
    finished runs without that metric; then failed runs."""
    scored = [r for r in runs if not r.failed and r.score() is not None]
    maximise = (scored[0].optimized_mode if scored else "max") != "min"
    scored.sort(key=lambda r: -r.score() if maximise else r.score())  # stable: job order among ties
    rest = [r for r in runs if not r.failed and r.score() is None]
    return scored + rest + [r for r in runs if r.failed]


def metric_columns(runs: Sequence[Run], wanted: Sequence[str] | None = None) -> list[str]:
    """The optimised metric first, then `wanted` (default: the main test/val metrics) that any run has."""
    present = sorted({k for r in runs for k in r.metrics})
    if wanted and list(wanted) == ["all"]:
        wanted = present
    optimized = [m for m in dict.fromkeys(r.optimized_metric for r in runs if r.optimized_metric)]
    columns = optimized + [m for m in (wanted or DEFAULT_METRICS) if m in present or wanted]
    return list(dict.fromkeys(columns))


def split_overrides(runs: Sequence[Run]) -> tuple[list[str], dict[str, str]]:
    """(override keys whose values differ between runs, {key: value} shared by every run)."""
    keys = list(dict.fromkeys(k for r in runs for k in r.overrides))
    varying, common = [], {}
    for key in keys:
        values = {r.overrides.get(key) for r in runs}
        if len(values) == 1 and None not in values:
            common[key] = values.pop()
        else:
            varying.append(key)
    return varying, common


def build_table(
    runs: Sequence[Run], metrics: Sequence[str], precise: bool = False
) -> tuple[list[str], list[list[str]]]:
    """Header and rows: rank, job, varying overrides, metrics, status (runs already sorted)."""
    varying, _ = split_overrides(runs)
    header = ["rank", "job", *varying, *metrics, "status"]
    rows, rank = [], 0
    for run in runs:
        rank += not run.failed
        cells = [str(rank) if not run.failed else "-", run.job]
        cells += [run.overrides.get(k, "") for k in varying]
        for m in metrics:
            value = run.metrics.get(m)
            cells.append("" if value is None else (repr(value) if precise else f"{value:.4f}"))
        rows.append([*cells, run.status])
    return header, rows


# --- writers ------------------------------------------------------------------------------------
def markdown(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    escape = lambda cell: str(cell).replace("|", "\\|")  # noqa: E731
    lines = ["| " + " | ".join(map(escape, header)) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(map(escape, row)) + " |" for row in rows]
    return "\n".join(lines)


def report(sweep_dir: str | Path, wanted: Sequence[str] | None = None) -> str:
    """Build the report of `sweep_dir`, write report.md and report.csv into it, return the Markdown."""
    root = Path(sweep_dir).expanduser()
    runs = sort_runs(collect_runs(root))
    columns = metric_columns(runs, wanted)
    _, common = split_overrides(runs)
    ok = [r for r in runs if not r.failed]
    optimized = next((r.optimized_metric for r in ok if r.optimized_metric), None)
    mode = ok[0].optimized_mode if ok else "max"
    lines = [f"# Sweep report: {root}", ""]
    summary = f"{len(runs)} runs, {len(ok)} finished, {len(runs) - len(ok)} failed"
    if optimized:
        summary += f"; sorted by {optimized} ({mode})"
    lines += [summary + ".", ""]
    if common:
        lines += ["Shared by every run: " + ", ".join(f"`{k}={v}`" for k, v in common.items()), ""]
    header, rows = build_table(runs, columns)
    text = "\n".join(lines) + markdown(header, rows) + "\n"
    (root / "report.md").write_text(text)
    header, rows = build_table(runs, columns, precise=True)
    buffer = io.StringIO()
    csv.writer(buffer).writerows([header, *rows])
    (root / "report.csv").write_text(buffer.getvalue())
    return text


@exits_on_user_error
def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m src.report", description=__doc__.split("\n\n")[0])
    parser.add_argument("dir", help="a multirun folder, e.g. logs/train/multiruns/<stamp>")
    parser.add_argument("--metrics", default=None,
                        help="comma-separated metric columns (default: the main test/val metrics; 'all': every one)")
    args = parser.parse_args(argv)
    wanted = [m.strip() for m in args.metrics.split(",") if m.strip()] if args.metrics else None
    if wanted is not None and not wanted:
        raise UserError("--metrics needs at least one metric name, e.g. --metrics test/acc,test/loss.")
    text = report(args.dir, wanted)
    print(text, end="", flush=True)
    root = Path(args.dir)
    print(f"\nwritten: {root / 'report.md'} and {root / 'report.csv'}", flush=True)


if __name__ == "__main__":
    main()
