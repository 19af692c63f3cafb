"""`python -m src.compare A B`: is the difference between two runs real?

Two runs (run folders with `test_predictions.csv`, or `src.eval` report folders with `predictions.csv`)
tested on the same samples in the same order: the accuracy of each, McNemar's exact test on the samples
one got right and the other wrong, a bootstrap 95 % interval of the accuracy difference (10,000 paired
resamples, seeded), per-class accuracies, and those disagreements as `disagreements.csv` (and
`disagreements.png` for image data). Two sweep folders, or one sweep split by an override (`--by model`):
the runs paired by seed, the mean difference of a metric, a paired t-test and Wilcoxon's signed-rank test,
and a plain note when there are too few seeds for any test to reach p < 0.05.

    python -m src.compare logs/train/runs/<run_a> logs/train/runs/<run_b>
    python -m src.compare logs/train/multiruns/<sweep_a> logs/train/multiruns/<sweep_b>
    python -m src.compare logs/train/multiruns/<sweep> --by model --metric test/acc

Everything printed is also written to `--out` (default `logs/compare/<A>_vs_<B>/`): `compare.json`,
`compare.md`, and for two runs `per_class.csv`, `disagreements.csv`, `disagreements.png`.
"""

from __future__ import annotations

import argparse
import csv
import json
from collections.abc import Sequence
from pathlib import Path

from src.errors import UserError, exits_on_user_error, require
from src.runs.comparison import compare_pair, disagreements, read_predictions, summary_lines, write_disagreements
from src.runs.paired import RESAMPLES
from src.runs.seed_comparison import compare_seeds, finished_runs, groups_by, is_sweep, seed_summary_lines


def compare_runs(folder_a: Path, folder_b: Path, out: Path, resamples: int, seed: int) -> list[str]:
    a, b = read_predictions(folder_a), read_predictions(folder_b)
    result = compare_pair(a, b, resamples=resamples, seed=seed)
    index = disagreements(a, b)
    write_disagreements(out / "disagreements.csv", a, b, index)
    with open(out / "per_class.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["class", "support", "acc_a", "acc_b", "difference"])
        writer.writeheader()
        writer.writerows(result["per_class"])
    (out / "compare.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = summary_lines(result, str(folder_a), str(folder_b))
    lines.append("per class (accuracy A, B, A - B): " + ", ".join(
        f"{r['class']} {r['acc_a']:.3f}/{r['acc_b']:.3f}/{r['difference']:+.3f}" for r in result["per_class"]))
    lines.append(f"{len(index)} disagreement(s) in {out / 'disagreements.csv'}"
                 + (f" and {out / 'disagreements.png'}" if draw_disagreements(out, a, b, index) else ""))
    return lines


def draw_disagreements(out: Path, a, b, index: list[int], limit: int = 50) -> bool:
    """The grid of the disagreements (at most `limit`), titled true:A/B, for image data."""
    if not index:
        return False
    from src.figures.plots import prediction_grid_figure, save_png
    from src.inference.test_images import test_images

    shown = index[:limit]
    images = test_images(a.folder, shown, len(a.samples))
    if images is None:
        return False
    names = sorted(set(a.true) | set(a.predicted) | set(b.predicted), key=lambda c: (len(c), c))
    code = {name: i for i, name in enumerate(names)}
    figure = prediction_grid_figure(images.numpy(), [code[a.true[i]] for i in shown],
                                    [code[a.predicted[i]] for i in shown], names,
                                    suffixes=[f"/{b.predicted[i]}" for i in shown],
                                    title=f"disagreements, true:A/B (red: A wrong) — A {a.name}, B {b.name}")
    save_png(figure, out / "disagreements.png")
    return True


def compare_sweeps(groups, metric: str, out: Path) -> list[str]:
    (label_a, runs_a), (label_b, runs_b) = groups
    result = compare_seeds(runs_a, runs_b, metric, label_a, label_b)
    (out / "compare.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    return seed_summary_lines(result)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m src.compare", description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs="+", help="two run / eval report / sweep folders, or one sweep with --by")
    parser.add_argument("--by", help="split one sweep into two groups by this override (e.g. model)")
    parser.add_argument("--metric", default="test/acc", help="the metric compared across seeds (default test/acc)")
    parser.add_argument("--out", help="the folder the comparison is written to (default logs/compare/<A>_vs_<B>)")
    parser.add_argument("--resamples", type=int, default=RESAMPLES, help="bootstrap resamples (default 10000)")
    parser.add_argument("--seed", type=int, default=0, help="the bootstrap's random seed (default 0)")
    args = parser.parse_args(argv)
    run(args)


@exits_on_user_error
def run(args: argparse.Namespace) -> None:
    folders = [Path(f).expanduser() for f in args.folders]
    for folder in folders:
        require(folder.is_dir(), f"there is no folder at {folder}; pass run folders (logs/train/runs/<run>), eval "
                                 "report folders or sweep folders (logs/train/multiruns/<stamp>).")
    require(args.resamples > 0, f"--resamples must be a positive number, got {args.resamples}.")
    if args.by:
        require(len(folders) == 1, f"--by {args.by} splits one sweep folder into two groups; pass one folder.")
        groups = groups_by(folders[0], args.by)
        name = f"{folders[0].name}_by_{args.by}"
    else:
        require(len(folders) == 2, f"pass two folders to compare (got {len(folders)}), or one sweep with --by KEY.")
        sweeps = [is_sweep(f) for f in folders]
        if sweeps[0] != sweeps[1]:
            sweep, single = folders[sweeps.index(True)], folders[sweeps.index(False)]
            raise UserError(f"{sweep} is a sweep and {single} a single run, which cannot be paired; pass two sweeps "
                            "(runs paired by seed), two runs or eval report folders (paired sample by sample), or one "
                            "sweep with --by KEY.")
        name = f"{folders[0].name}_vs_{folders[1].name}"
    out = Path(args.out) if args.out else Path("logs") / "compare" / name
    out.mkdir(parents=True, exist_ok=True)
    if args.by:
        lines = compare_sweeps(groups, args.metric, out)
    elif all(map(is_sweep, folders)):
        require(folders[0].resolve() != folders[1].resolve(), f"both arguments are {folders[0]}; compare two "
                                                              "different sweeps.")
        lines = compare_sweeps(((str(f), finished_runs(f)) for f in folders), args.metric, out)
    else:
        lines = compare_runs(folders[0], folders[1], out, args.resamples, args.seed)
    (out / "compare.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines) + f"\n(written to {out})", flush=True)


if __name__ == "__main__":
    main()
