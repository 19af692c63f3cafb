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

When the runs differ in `seed` or `data.fold` (repeats of one setting), a second table groups them
by their other overrides: mean ± std (sample standard deviation) and the number of runs per group,
best first, written as `report_groups.csv` beside a plot of the optimised metric per group with
error bars (`report_groups.png`); `report.md` holds both tables.

The steps are separate functions (`collect_runs` -> `sort_runs` -> `group_runs` / `build_table` ->
writers).
"""

from __future__ import annotations

import argparse
import difflib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from matplotlib.figure import Figure

from src.errors import UserError, exits_on_user_error, shorten
from src.runs.sweep import Run, collect_runs
from src.runs.tables import csv_text, markdown_table

SEARCH_SWEEPER_PACKAGE = "hydra_plugins.classify_optuna_sweeper."  # the sweeper of an Optuna search
DEFAULT_METRICS = (
    "test/acc", "test/loss", "test/f1", "test/precision", "test/recall", "val/acc_best", "val/acc", "val/loss",
    "test/map", "test/f1_micro", "test/f1_macro", "test/hamming", "val/map",  # several labels per sample
)


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
    unknown = [m for m in wanted or () if m not in present]
    if unknown and present:  # (runs that all failed record nothing: their table still says why)
        close = difflib.get_close_matches(unknown[0], present, n=1)
        hint = f"did you mean {close[0]}? " if close else ""
        raise UserError(f"--metrics {unknown[0]}: no run records it; {hint}the runs record "
                        f"{shorten(', '.join(present), 160)} (or --metrics all).")
    optimized = [m for m in dict.fromkeys(r.optimized_metric for r in runs if r.optimized_metric)]
    per_class = [m for m in dict.fromkeys(k for r in runs for k in r.metrics) if m.startswith("test/recall/")]
    defaults = [*DEFAULT_METRICS, "test/balanced_acc", *per_class] if per_class else DEFAULT_METRICS  # class_recall
    columns = optimized + [m for m in (wanted or defaults) if m in present or wanted]
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
    timed = any(r.wall_time_s is not None for r in runs)
    header = ["rank", "job", *varying, *metrics, *(["time (s)", "device"] if timed else []), "status"]
    rows, rank = [], 0
    for run in runs:
        rank += not run.failed
        cells = [str(rank) if not run.failed else "-", run.job]
        cells += [run.overrides.get(k, "") for k in varying]
        for m in metrics:
            value = run.metrics.get(m)
            cells.append("" if value is None else (repr(value) if precise else f"{value:.4f}"))
        if timed:
            cells += ["" if run.wall_time_s is None else f"{run.wall_time_s:.1f}", run.device or ""]
        rows.append([*cells, run.status])
    return header, rows


# --- groups of repeats (seeds, folds) -----------------------------------------------------------
REPEAT_KEYS = ("seed", "data.fold")


@dataclass
class Group:
    """Runs that differ only in their seed or cross-validation fold."""

    overrides: dict[str, str]
    runs: list[Run]

    @property
    def finished(self) -> list[Run]:
        return [r for r in self.runs if not r.failed]

    def stats(self, metric: str) -> tuple[float, float, int] | None:
        """(mean, sample std, n) of `metric` over the finished runs that have it."""
        values = [r.metrics[metric] for r in self.finished if metric in r.metrics and not math.isnan(r.metrics[metric])]
        if not values:
            return None
        mean = sum(values) / len(values)
        var = sum((v - mean) ** 2 for v in values) / (len(values) - 1) if len(values) > 1 else 0.0
        return mean, math.sqrt(var), len(values)


def group_runs(runs: Sequence[Run]) -> list[Group] | None:
    """Groups by the varying overrides other than `seed` / `data.fold`, best mean first; None when no
    repeat key varies (every run is its own group)."""
    varying, _ = split_overrides(runs)
    if not any(k in REPEAT_KEYS for k in varying):
        return None
    keys = [k for k in varying if k not in REPEAT_KEYS]
    groups: dict[tuple, Group] = {}
    for run in runs:
        label = tuple(run.overrides.get(k, "") for k in keys)
        groups.setdefault(label, Group(dict(zip(keys, label)), [])).runs.append(run)
    ordered = list(groups.values())
    metric = next((r.optimized_metric for r in runs if r.optimized_metric), None)
    maximise = next((r.optimized_mode for r in runs if not r.failed), "max") != "min"
    if metric:
        def key(group: Group) -> float:
            stats = group.stats(metric)
            return math.inf if stats is None else (-stats[0] if maximise else stats[0])

        ordered.sort(key=key)
    return ordered


def build_group_table(groups: Sequence[Group], metrics: Sequence[str], precise: bool = False
                      ) -> tuple[list[str], list[list[str]]]:
    keys = list(groups[0].overrides) if groups else []
    header = [*keys, "runs", *metrics, "failed"]
    rows = []
    for group in groups:
        cells = [group.overrides[k] for k in keys] + [str(len(group.finished))]
        for m in metrics:
            stats = group.stats(m)
            if stats is None:
                cells.append("")
            elif precise:
                cells.append(f"{stats[0]!r} ± {stats[1]!r}")
            else:
                cells.append(f"{stats[0]:.4f} ± {stats[1]:.4f}")
        rows.append([*cells, str(len(group.runs) - len(group.finished))])
    return header, rows


def plot_groups(groups: Sequence[Group], metric: str, path: Path) -> None:
    """`metric` per group: the mean as a point with ± 1 std error bars, and the number of runs."""
    shown = [(g, g.stats(metric)) for g in groups if g.stats(metric) is not None]
    labels = [", ".join(f"{k}={v}" for k, v in g.overrides.items()) or "all runs" for g, _ in shown]
    fig = Figure(figsize=(max(5.0, 1.1 * len(shown) + 2), 4.2))
    ax = fig.subplots()
    means, stds = [s[0] for _, s in shown], [s[1] for _, s in shown]
    ax.errorbar(range(len(shown)), means, yerr=stds, fmt="o", markersize=7, capsize=6, color="#4c72b0")
    for x, (mean, (_, stats)) in enumerate(zip(means, shown)):
        ax.annotate(f"{mean:.4f}\nn={stats[2]}", (x, mean), xytext=(10, 0), textcoords="offset points",
                    va="center", fontsize=8)
    ax.set_xticks(range(len(shown)), labels, rotation=20, ha="right", fontsize=8)
    low = min(m - s for m, s in zip(means, stds)) if shown else 0
    high = max(m + s for m, s in zip(means, stds)) if shown else 1
    ax.set_ylim(max(0.0, low - 0.1 * (high - low + 1e-9)), high + 0.15 * (high - low + 1e-9))
    ax.set_xlim(-0.5, len(shown) - 0.2)
    ax.grid(axis="y", alpha=0.3)
    ax.set_ylabel(f"{metric} (mean ± std)")
    ax.set_title(f"{metric} per group (repeats: seed / data.fold)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


# --- writers ------------------------------------------------------------------------------------
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
    groups = group_runs(runs)
    if groups is not None:
        header, rows = build_group_table(groups, columns)
        lines += [f"## Groups: mean ± std over {' / '.join(REPEAT_KEYS)}", "", markdown_table(header, rows), "",
                  "## Runs", ""]
        header, rows = build_group_table(groups, columns, precise=True)
        (root / "report_groups.csv").write_text(csv_text(header, rows))
        if optimized:
            plot_groups(groups, optimized, root / "report_groups.png")
    header, rows = build_table(runs, columns)
    text = "\n".join(lines) + markdown_table(header, rows) + "\n"
    study = search_section(root)  # an Optuna search's folder: its trials, best trial(s), importances
    text += "\n" + study if study else ""
    (root / "report.md").write_text(text)
    header, rows = build_table(runs, columns, precise=True)
    (root / "report.csv").write_text(csv_text(header, rows))
    return text


def search_section(sweep_dir: Path) -> str:
    """The Optuna study's section of an Optuna search's folder (src/sweeps/report.py); "" for any other folder.
    The search's code (and Optuna) loads only for a folder whose multirun.yaml names the project's sweeper:
    the search is an optional feature (docs/development.md#optional-features-and-the-files-they-own)."""
    from omegaconf import OmegaConf

    try:
        target = str(OmegaConf.load(sweep_dir / "multirun.yaml").hydra.sweeper.get("_target_"))
    except Exception:  # no multirun.yaml, or not Hydra's: no study (as src/sweeps/report.py reads it)
        return ""
    if not target.startswith(SEARCH_SWEEPER_PACKAGE):
        return ""
    from src.sweeps.report import study_section
    return study_section(sweep_dir)


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
