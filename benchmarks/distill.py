"""Distillation benchmark: a LeNet-5 student on Fashion-MNIST with and without a teacher, paired by seed.

    .venv/bin/python -m benchmarks.distill                         # the settings of experiment=distill_fashion_mnist
    .venv/bin/python -m benchmarks.distill --seeds 1 2 3 4 5 --student-epochs 20

Four commands, each `src.train` / `src.compare` as a user types them, in a scratch folder:
1. the teacher, once: `python -m src.train experiment=distill_fashion_mnist_teacher` (Notes 1's CNN on the whole
   training split);
2. the students without a teacher: `python -m src.train -m experiment=distill_fashion_mnist seed=1,2,3`
   (LeNet-5 on 3,000 training images);
3. the same students with it: the same command plus `distill.teacher=<the teacher's run folder>`
   (distill.temperature=4, distill.alpha=0.9);
4. `python -m src.compare <with> <without> --metric test/acc`: the runs paired by seed, the mean difference,
   a paired t-test and Wilcoxon's signed-rank test.
Prints a table and writes benchmarks/results/distill.json (the commands, every run's test accuracy, the paired
tests, seconds per stage and the machine).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def run(args: list[str], cwd: Path, threads: int) -> float:
    """`python -m ARGS` in cwd (the project on PYTHONPATH); its seconds. A failure ends the benchmark."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), HYDRA_FULL_ERROR="0", OMP_NUM_THREADS=str(threads))
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", *args], cwd=cwd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"benchmark command failed ({done.returncode}): python -m {' '.join(args)}\n{done.stderr[-3000:]}")
    return time.perf_counter() - started


def test_accuracy(run_dir: Path) -> float:
    return json.loads((run_dir / "metrics.json").read_text())["metrics"]["test/acc"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--teacher-epochs", type=int, default=3)
    parser.add_argument("--student-epochs", type=int, default=15)
    parser.add_argument("--val-fraction", type=float, default=0.95, help="student's: 0.95 trains on 3,000 images")
    parser.add_argument("--temperature", type=float, default=4.0)
    parser.add_argument("--alpha", type=float, default=0.9)
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run (OMP_NUM_THREADS)")
    parser.add_argument("--out", type=Path, default=RESULTS / "distill.json")
    opts = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="distill-benchmark-"))
    common = [f"paths.root_dir={work}", f"paths.data_dir={ROOT / 'data'}", "callbacks.progress_bar=null",
              "callbacks.model_summary=null"]
    teacher_cmd = ["src.train", "experiment=distill_fashion_mnist_teacher", f"trainer.max_epochs={opts.teacher_epochs}",
                   *common, f"hydra.run.dir={work / 'teacher'}"]
    student = ["src.train", "-m", "experiment=distill_fashion_mnist", "seed=" + ",".join(map(str, opts.seeds)),
               f"trainer.max_epochs={opts.student_epochs}", f"data.val_fraction={opts.val_fraction}", *common]
    alone_cmd = [*student, f"hydra.sweep.dir={work / 'alone'}"]
    distilled_cmd = [*student, f"distill.teacher={work / 'teacher'}", f"distill.temperature={opts.temperature}",
                     f"distill.alpha={opts.alpha}", f"hydra.sweep.dir={work / 'distilled'}"]
    compare_cmd = ["src.compare", str(work / "distilled"), str(work / "alone"), "--metric", "test/acc",
                   "--out", str(work / "compare")]
    seconds = {}
    for name, cmd in (("teacher", teacher_cmd), ("alone", alone_cmd), ("distilled", distilled_cmd),
                      ("compare", compare_cmd)):
        print(f"[{name}] python -m {' '.join(cmd)}", flush=True)
        seconds[name] = round(run(cmd, work, opts.threads), 1)
    compared = json.loads((work / "compare" / "compare.json").read_text())

    teacher_acc = test_accuracy(work / "teacher")
    rows = [{"seed": r["seed"], "alone": r["b"], "distilled": r["a"], "gain": r["difference"]}
            for r in compared["rows"]]
    mean = lambda key: statistics.mean(r[key] for r in rows)  # noqa: E731
    std = lambda key: statistics.stdev(r[key] for r in rows) if len(rows) > 1 else 0.0  # noqa: E731
    print(f"\nteacher (experiment=distill_fashion_mnist_teacher, {opts.teacher_epochs} epochs): "
          f"test/acc {teacher_acc:.4f}")
    print(f"student: LeNet-5, {opts.student_epochs} epochs, data.val_fraction={opts.val_fraction}; "
          f"T={opts.temperature}, alpha={opts.alpha}\n")
    print("| seed | without teacher | with teacher | gain (points) |\n|---|---|---|---|")
    for r in rows:
        print(f"| {r['seed']} | {r['alone']:.4f} | {r['distilled']:.4f} | {100 * r['gain']:+.2f} |")
    print(f"| mean +- std | {mean('alone'):.4f} +- {std('alone'):.4f} | {mean('distilled'):.4f} +- "
          f"{std('distilled'):.4f} | {100 * compared['mean_difference']:+.2f} |")
    p_t, p_w = compared["t_test_p"], compared["wilcoxon_p"]
    print(f"\npaired t-test p = {p_t if p_t is None else f'{p_t:.4g}'}; Wilcoxon signed-rank p = "
          f"{p_w if p_w is None else f'{p_w:.4g}'}" + (f" ({compared['note']})" if compared.get("note") else ""))
    print("seconds: " + ", ".join(f"{k} {v}" for k, v in seconds.items()))

    result = {
        "date": date.today().isoformat(), "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                                                       "threads_per_run": opts.threads},
        "commands": {name: "python -m " + " ".join(cmd).replace(str(work), "<work>").replace(str(ROOT), "<repo>")
                     for name, cmd in (("teacher", teacher_cmd), ("without_teacher", alone_cmd),
                                       ("with_teacher", distilled_cmd), ("compare", compare_cmd))},
        "teacher_test_acc": teacher_acc, "rows": rows,
        "mean_without": mean("alone"), "mean_with": mean("distilled"), "mean_gain": compared["mean_difference"],
        "std_gain": compared["std_difference"], "t_test_p": p_t, "wilcoxon_p": p_w, "note": compared.get("note"),
        "seconds": seconds,
    }
    opts.out.parent.mkdir(parents=True, exist_ok=True)
    opts.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {opts.out}")


if __name__ == "__main__":
    main()
