"""Two settings run over several seeds, compared seed by seed: the runs of two sweep folders, or the two
groups of one sweep that differ in one override (`--by model`), paired by their `seed`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from src.errors import UserError, require, shorten
from src.runs.paired import seed_tests
from src.runs.record import METRICS_FILE, read_record


@dataclass
class FinishedRun:
    folder: Path
    seed: Any
    overrides: dict[str, str]
    config: dict[str, Any]
    metrics: dict[str, float]

    def value_of(self, key: str) -> str | None:
        """An override as typed, else the configuration's value at the dotted key."""
        if key in self.overrides:
            return self.overrides[key]
        node: Any = self.config
        for part in key.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        return None if node is None else str(node)


def read_finished_run(folder: Path) -> FinishedRun | None:
    record = read_record(folder)
    if record is None or not record.finished:
        return None
    config = record.config or {}
    overrides = dict(str(o).partition("=")[::2] for o in record.overrides or [])
    seed = record.seed if record.seed is not None else config.get("seed")
    return FinishedRun(folder, seed, overrides, config, dict(record.metrics))


def finished_runs(sweep: Path) -> list[FinishedRun]:
    """The finished runs in a sweep folder (its job folders, and run folders one level below them)."""
    folders = sorted(p for p in sweep.iterdir() if p.is_dir())
    folders += sorted(q for p in folders for q in p.iterdir() if q.is_dir() and (q / METRICS_FILE).is_file())
    return [run for run in map(read_finished_run, folders) if run is not None]


def is_sweep(folder: Path) -> bool:
    return folder.is_dir() and not (folder / METRICS_FILE).is_file() and bool(finished_runs(folder))


def by_seed(runs: list[FinishedRun], label: str) -> dict[Any, FinishedRun]:
    seeds: dict[Any, FinishedRun] = {}
    for run in runs:
        earlier = seeds.get(run.seed, run).folder
        require(run.seed not in seeds, f"{label} holds two runs with seed {run.seed} ({earlier} and {run.folder}); "
                                       "give each setting one run per seed.")
        seeds[run.seed] = run
    return seeds


def groups_by(sweep: Path, key: str) -> tuple[tuple[str, list[FinishedRun]], tuple[str, list[FinishedRun]]]:
    """The two groups of a sweep's runs by the value of `key`."""
    groups: dict[str, list[FinishedRun]] = {}
    for run in finished_runs(sweep):
        groups.setdefault(run.value_of(key) or "(unset)", []).append(run)
    if len(groups) != 2:  # a value may be a whole config (--by model where no run chose one): each one shortened
        values = shorten(", ".join(shorten(v, 40) for v in sorted(groups)), 100)
        runs = [r for g in groups.values() for r in g]
        varying = sorted(k for k in {k for r in runs for k in r.overrides}
                         if len({r.overrides.get(k) for r in runs}) > 1) or ["none"]
        raise UserError(f"--by {key} splits {sweep} into {len(groups)} group(s) ({values}); it needs exactly two: "
                        f"split by an override its runs differ in ({shorten(', '.join(varying), 80)}), or pass two "
                        "sweep folders.")
    (name_a, runs_a), (name_b, runs_b) = sorted(groups.items())
    return (name_a, runs_a), (name_b, runs_b)


def compare_seeds(runs_a: list[FinishedRun], runs_b: list[FinishedRun], metric: str, label_a: str, label_b: str
                  ) -> dict[str, Any]:
    """Per-seed values of `metric` for both settings, their differences (A - B) and the tests on them."""
    a, b = by_seed(runs_a, label_a), by_seed(runs_b, label_b)
    seeds = [s for s in a if s in b]
    require(bool(seeds), f"{label_a} and {label_b} share no seed; run both with the same seeds (-m seed=1,2,3).")
    missing = [s for s in seeds if metric not in a[s].metrics or metric not in b[s].metrics]
    require(not missing, f"the runs of seed {missing[0] if missing else ''} lack {metric}; pick a metric both "
                         "record with --metric (e.g. test/acc).")
    rows = [{"seed": s, "a": a[s].metrics[metric], "b": b[s].metrics[metric], "run_a": str(a[s].folder),
             "run_b": str(b[s].folder)} for s in sorted(seeds, key=str)]
    for row in rows:
        row["difference"] = row["a"] - row["b"]
    result = {"metric": metric, "a": label_a, "b": label_b, "rows": rows,
              "unpaired_seeds": sorted({*a, *b} - set(seeds), key=str)}
    result.update(seed_tests([row["difference"] for row in rows]))
    return result


def seed_summary_lines(result: dict[str, Any]) -> list[str]:
    metric = result["metric"]
    lines = [f"{metric} per seed (A = {result['a']}, B = {result['b']}):"]
    lines += [f"  seed {row['seed']}: A {row['a']:.4f}  B {row['b']:.4f}  A - B {row['difference']:+.4f}"
              for row in result["rows"]]
    std = result["std_difference"]
    lines.append(f"mean difference A - B over {result['pairs']} paired seed(s): {result['mean_difference']:+.4f}"
                 + (f" (std {std:.4f})" if std is not None else ""))
    p_t, p_w = result["t_test_p"], result["wilcoxon_p"]
    lines.append(f"paired t-test p = {p_t:.4g}" if p_t is not None else "paired t-test: not defined here")
    lines.append(f"Wilcoxon signed-rank p = {p_w:.4g}" if p_w is not None else "Wilcoxon signed-rank: not defined here")
    if result["note"]:
        lines.append(f"Too few seeds: {result['note']}.")
    if result["unpaired_seeds"]:
        lines.append(f"left out (run on one side only): seeds {', '.join(map(str, result['unpaired_seeds']))}")
    return lines
