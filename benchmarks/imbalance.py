"""Long-tailed Fashion-MNIST (imbalance ratio 100), LeNet-5: plain cross-entropy against effective-number
class weights and against the balanced sampler, the same seeds each; test balanced accuracy (the mean
per-class recall) mean ± std, and `src.compare` of each remedy against plain cross-entropy, paired by seed.

    .venv/bin/python -m benchmarks.imbalance                      # 5 seeds, 2 epochs each (15 runs)
    .venv/bin/python -m benchmarks.imbalance --seeds 3 --epochs 5

Each setting is one sweep, `python -m src.train -m experiment=long_tailed_fashion_mnist seed=0,...,4
trainer.max_epochs=<epochs> logger=none [model.class_weights=effective_num | data.sampler=balanced]`
(validation and test balanced, the best checkpoint by val/balanced_acc tested), then
`python -m src.compare <plain sweep> <remedy sweep> --metric test/balanced_acc`. Prints a table and writes
benchmarks/results/imbalance.json. Minutes of CPU.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = {
    "cross_entropy": [],
    "effective_num": ["model.class_weights=effective_num"],
    "balanced_sampler": ["data.sampler=balanced"],
}


def run(cmd: list[str], cwd: Path) -> str:
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=None)
    if done.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
    return done.stdout


def sweep(name: str, overrides: list[str], seeds: int, epochs: int, work: Path) -> tuple[Path, float]:
    folder = work / name
    start = time.perf_counter()
    run([sys.executable, "-m", "src.train", "-m", "experiment=long_tailed_fashion_mnist",
         f"seed={','.join(map(str, range(seeds)))}", f"trainer.max_epochs={epochs}", "logger=none",
         "callbacks.progress_bar=null", "callbacks.model_summary=null", f"paths.root_dir={work}",
         f"hydra.sweep.dir={folder}", *overrides], ROOT)
    return folder, time.perf_counter() - start


def job_metrics(folder: Path) -> list[dict[str, float]]:
    return [json.loads(p.read_text())["metrics"] for p in sorted(folder.glob("*/metrics.json"))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()
    command = f"python -m benchmarks.imbalance --seeds {args.seeds} --epochs {args.epochs}"
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="imbalance-") as tmp:
        work = Path(tmp)
        folders = {}
        for name, overrides in SETTINGS.items():
            folders[name], seconds = sweep(name, overrides, args.seeds, args.epochs, work)
            runs = job_metrics(folders[name])
            results[name] = {"overrides": overrides, "test_balanced_acc": [m["test/balanced_acc"] for m in runs],
                             "test_acc": [m["test/acc"] for m in runs],
                             "test_recall_ankle_boot": [m["test/recall/Ankle_boot"] for m in runs],  # 54 images
                             "seconds": round(seconds, 1)}
            print(f"{name}: {len(runs)} runs in {seconds:.0f} s", flush=True)
            if name != "cross_entropy":  # src.compare against plain cross-entropy, paired by seed
                out = work / f"compare_{name}"
                text = run([sys.executable, "-m", "src.compare", str(folders[name]), str(folders["cross_entropy"]),
                            "--metric", "test/balanced_acc", "--out", str(out)], ROOT)
                compared = json.loads((out / "compare.json").read_text())
                results[name]["compare"] = {k: compared[k] for k in ("pairs", "mean_difference", "std_difference",
                                                                      "t_test_p", "wilcoxon_p", "note")}
                results[name]["compare_output"] = text.strip().splitlines()
                print(text, flush=True)
            write(command, args, results)  # after every setting: a cut-short benchmark keeps what it measured
    print(f"\nFashion-MNIST long-tailed (R = 100), LeNet-5, {args.epochs} epochs, seeds 0-{args.seeds - 1}; "
          "test balanced accuracy mean ± std (sample std); A - B against cross_entropy, paired by seed\n")
    print(f"{'setting':<18} {'balanced acc':>16} {'acc':>8} {'recall ankle boot':>18} {'A - B':>8} "
          f"{'t-test p':>9} {'Wilcoxon p':>10} {'time (s)':>9}")
    for name, r in results.items():
        ba, c = r["test_balanced_acc"], r.get("compare")
        std = statistics.stdev(ba) if len(ba) > 1 else 0.0
        cells = [f"{statistics.mean(ba):.4f} ± {std:.4f}", f"{statistics.mean(r['test_acc']):.4f}",
                 f"{statistics.mean(r['test_recall_ankle_boot']):.4f}"]
        fmt = (lambda v: "-" if v is None else f"{v:.3g}")  # noqa: E731
        cells += [f"{c['mean_difference']:+.4f}", fmt(c["t_test_p"]), fmt(c["wilcoxon_p"])] if c else ["", "", ""]
        print(f"{name:<18} {cells[0]:>16} {cells[1]:>8} {cells[2]:>18} {cells[3]:>8} {cells[4]:>9} {cells[5]:>10} "
              f"{r['seconds']:>9}")
    print(f"\nwrote {write(command, args, results).relative_to(ROOT)}")


def write(command: str, args: argparse.Namespace, results: dict[str, dict]) -> Path:
    from benchmarks.cpu import machine
    path = ROOT / "benchmarks" / "results" / "imbalance.json"
    path.write_text(json.dumps({"command": command, "date": date.today().isoformat(), "machine": machine(),
                                "epochs": args.epochs, "seeds": list(range(args.seeds)), "results": results},
                               indent=2) + "\n")
    return path


if __name__ == "__main__":
    main()
