"""Shards benchmark: the 70,000 Fashion-MNIST PNGs (Debian's files, as class folders) through `data=shards`
beside `data=image_folder`'s two paths.

    .venv/bin/python -m benchmarks.shards                  # everything (PNG writing included: minutes)
    .venv/bin/python -m benchmarks.shards --quick          # 2,500 images: a smoke test that writes nothing
    .venv/bin/python -m benchmarks.shards --folder DIR     # keep the PNG folder in DIR (written if missing)

Measured, on this machine: the first write of the shards (`python -m src.shard`, PNG, one process per core);
train-epoch time (training pass only; LeNet-5, batch 128, Adam, seed 42; the second of two epochs) of
(a) `data=image_folder` with the tensor cache, (b) `data=image_folder data.loader=dataloader` with 2 workers,
(c) `data=shards` written with `image_format=png` with 0 workers and (d) with 2 workers, (e) shards
written with `image_format=raw` (what the default, `auto`, writes for images this small), 0 workers;
peak resident memory of a training process (`python -m src.train`, 1 epoch, 0 workers; its VmHWM) on
PNG shards of 7,000 and of 70,000 images.
Targets: the best of (c, d, e) <= 1.5 x (a) and <= 0.5 x (b); peak memory on 70,000 within 15 % of that
on 7,000.
Prints a table and writes benchmarks/results/shards-<date>.json with the machine, its load and the command.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.cpu import run_template, write_results
from benchmarks.image_folder import NORMALISE, png_folder_arguments, write_folder

ROOT = Path(__file__).resolve().parents[1]
COMMON = ["model=lenet", "data.batch_size=128", "seed=42", "logger=none", "callbacks.model_summary=null",
          "callbacks.early_stopping=null", "trainer=cpu"]


def folder_data(root: Path, cache: Path) -> list[str]:
    return ["data=image_folder", f"data.root={root}", "data.channels=1", "data.image_size=28",
            f"data.cache_dir={cache}", *NORMALISE]


def peak_kib(pid: int) -> int | None:
    """VmHWM of a running process: the peak resident memory of its own address space. (The child's ru_maxrss
    would not do: Linux keeps in it the memory of the parent it was forked from, this benchmark's.)"""
    try:
        with open(f"/proc/{pid}/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
    except (OSError, StopIteration, ValueError):
        return None


def command(module: str, *args: str, cwd: Path) -> tuple[float, float]:
    """Run `python -m module args` in its own process; (seconds, its peak resident memory in MiB, read every
    0.1 s while it runs)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", module, *args], cwd=cwd, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    peak = 0
    while proc.poll() is None:
        peak = max(peak, peak_kib(proc.pid) or 0)
        time.sleep(0.1)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"python -m {module} {' '.join(args)} failed:\n{proc.stderr.read()[-3000:]}")
    return seconds, peak / 1024


def second_epoch(overrides: list[str]) -> float:
    return run_template([*overrides, *COMMON, "trainer.max_epochs=2"], time_epochs=True)["epoch_seconds"][-1]


def main() -> None:
    args = png_folder_arguments(__doc__, "2,500 images; writes nothing")
    load_before = os.getloadavg()
    sizes = {"small": {"train": 200, "test": 50}, "large": {"train": 2000, "test": 500}} if args.quick else \
        {"small": {"train": 6000, "test": 1000}, "large": {"train": 60000, "test": 10000}}
    work = Path(tempfile.mkdtemp(prefix="shards_bench_"))
    roots = {"small": work / "small_pngs", "large": args.folder or work / "fashion_pngs"}
    for name, root in roots.items():
        if not (root / "train").is_dir():
            print(f"writing {sum(sizes[name].values())} PNGs into {root} ...", flush=True)
            write_folder(root, sizes[name])
    cache = work / "image_cache"
    row: dict = {"images": sum(sizes["large"].values())}
    print("writing the shards ...", flush=True)
    for name, root in roots.items():
        seconds, _ = command("src.shard", *folder_data(root, cache), "image_format=png", f"output={work / name}_shards",
                             cwd=work)
        row[f"shard_write_{name}_s"] = seconds
    row["shards_mib"] = sum(p.stat().st_size for p in (work / "large_shards").rglob("*.bin")) / 2**20
    row["shard_write_large_raw_s"], _ = command("src.shard", *folder_data(roots["large"], cache), "image_format=raw",
                                                f"output={work / 'raw_shards'}", cwd=work)
    print("timing epochs ...", flush=True)
    shards = ["data=shards", f"data.root={work / 'large_shards'}"]
    row["a_tensor_cache_s"] = second_epoch(folder_data(roots["large"], cache))
    row["b_per_sample_2_workers_s"] = second_epoch([*folder_data(roots["large"], cache), "data.loader=dataloader",
                                                    "data.num_workers=2"])
    row["c_shards_0_workers_s"] = second_epoch([*shards, "data.num_workers=0"])
    row["d_shards_2_workers_s"] = second_epoch([*shards, "data.num_workers=2"])
    row["e_raw_shards_0_workers_s"] = second_epoch(["data=shards", f"data.root={work / 'raw_shards'}",
                                                    "data.num_workers=0"])
    print("peak memory ...", flush=True)
    for name in roots:
        _, mib = command("src.train", "data=shards", f"data.root={work / name}_shards", "data.num_workers=0",
                         *COMMON, "trainer.max_epochs=1", "callbacks.progress_bar=null", cwd=work)
        row[f"peak_rss_{name}_mib"] = mib
    best = min(row["c_shards_0_workers_s"], row["d_shards_2_workers_s"], row["e_raw_shards_0_workers_s"])
    row["shards_over_tensor"] = best / row["a_tensor_cache_s"]
    row["shards_over_per_sample"] = best / row["b_per_sample_2_workers_s"]
    row["rss_large_over_small"] = row["peak_rss_large_mib"] / row["peak_rss_small_mib"]
    row["targets"] = {"shards <= 1.5 x tensor": row["shards_over_tensor"] <= 1.5,
                      "shards <= 0.5 x per-sample": row["shards_over_per_sample"] <= 0.5,
                      "peak memory flat within 15 %": row["rss_large_over_small"] <= 1.15}
    row["load_average_before_after"] = [load_before, os.getloadavg()]
    print(f"\n{row['images']} PNG images, LeNet-5, batch 128 (load average {load_before[0]:.1f} before, "
          f"{os.getloadavg()[0]:.1f} after, on {os.cpu_count()} cores)")
    for key, label in (("shard_write_large_s", "first write of the shards, PNG (s)"),
                       ("shard_write_large_raw_s", "first write of the shards, raw (s)"),
                       ("a_tensor_cache_s", "epoch (a) image_folder, tensor cache (s)"),
                       ("b_per_sample_2_workers_s", "epoch (b) image_folder, per sample, 2 workers (s)"),
                       ("c_shards_0_workers_s", "epoch (c) shards, 0 workers (s)"),
                       ("d_shards_2_workers_s", "epoch (d) shards, 2 workers (s)"),
                       ("e_raw_shards_0_workers_s", "epoch (e) raw shards, 0 workers (s)"),
                       ("shards_over_tensor", "best shards / (a)     target <= 1.5"),
                       ("shards_over_per_sample", "best shards / (b)     target <= 0.5"),
                       ("peak_rss_small_mib", f"peak RSS, {sum(sizes['small'].values())} images (MiB)"),
                       ("peak_rss_large_mib", f"peak RSS, {row['images']} images (MiB)"),
                       ("rss_large_over_small", "peak RSS ratio        target <= 1.15")):
        print(f"{label:<52} {row[key]:>9.2f}")
    print("targets:", ", ".join(f"{k}: {'met' if v else 'NOT met'}" for k, v in row["targets"].items()))
    shutil.rmtree(work, ignore_errors=True)
    if not args.quick:
        write_results("shards", "python -m benchmarks.shards" + (f" --folder {args.folder}" if args.folder else ""),
                      row=row)


if __name__ == "__main__":
    main()
