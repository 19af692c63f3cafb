"""GPU benchmark: training throughput of the template's data paths against a plain PyTorch loop, and
the speed-run recipe's time, in ONE process on one GPU (docs/speed.md).

    python -m benchmarks.throughput                   # throughput: ResNet-18 and LeNet-5 (a, b, c)
    python -m benchmarks.throughput --compile         # + (d): the GPU path with torch.compile
    python -m benchmarks.throughput --speedrun        # the speed-run timings instead
    python -m benchmarks.throughput --only resnet18   # resnet18 lenet | speedrun_cifar10 speedrun_fashion_mnist
    python -m benchmarks.throughput --cpu-smoke       # everything tiny on the CPU: proves the script runs

Throughput, images per second of the training passes (median of `--epochs` epochs after `--warmup`
epochs, each timed between `torch.cuda.synchronize()` calls; validation is not timed):
  (a) a plain hand-written PyTorch loop: the same net, batch size and precision (bf16 autocast where
      the GPU supports it, as the template's `precision: auto`), the uint8 data already on the GPU,
      channels-last, cudnn.benchmark; shuffled index batches normalised on the GPU, SGD;
  (b) the template (`src.train`'s builders, default callbacks and logger) with the classic
      per-sample path: `data.loader=dataloader` (CPU workers, pinned memory), batches copied per step;
  (c) the template with the GPU path: `data.loader=tensor`, the whole split as uint8 on the GPU;
  (d) with --compile: (c) plus `callbacks.gpu_speedups.compile=true`.
Workloads: ResNet-18 (CIFAR variant, `model=resnet18`) on RANDOM uint8 CIFAR-shaped data
(`data=random_images`: pixel values do not change the speed of a conv net), and LeNet-5
(`model=lenet`) on the real Fashion-MNIST files from `--fmnist-dir`.

Speed run (--speedrun): wall time of `experiment=speedrun_cifar10` on random CIFAR-shaped data (its
accuracy is meaningless there: random labels), and 3 seeds of `experiment=speedrun_fashion_mnist`
(time and test accuracy with TTA, final weights), each after one untimed warm-up run.

It refuses to run without CUDA, except with --cpu-smoke, whose numbers are not results and are
not written. On a GPU it writes benchmarks/results/throughput-<gpu>-<date>.json (or speedrun-...).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import platform
import re
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F

from benchmarks.cpu import machine
from src.config.compose import compose_run_config

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
# Debian's dataset-fashion-mnist package, then where `data=fashion_mnist` downloads (torchvision keeps the .gz files)
FMNIST_DIRS = ("/usr/share/datasets/fashion-mnist", str(ROOT / "data" / "FashionMNIST" / "raw"))
RANDOM_NOTE = "random uint8 CIFAR-shaped data (pixel values do not change the speed of a conv net)"
NO_CUDA = ("benchmarks.throughput measures GPU throughput and needs CUDA, which this machine does not have; "
           "run it on a machine with a CUDA GPU (docs/speed.md) or pass --cpu-smoke to check that the script runs.")


# --- timing ---------------------------------------------------------------------------------------------------
def synchronize() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


class SyncedEpochTimer(L.Callback):
    """Seconds of each training pass (epoch start to the end of its last batch), between CUDA syncs."""

    def __init__(self) -> None:
        self.epoch_seconds: list[float] = []
        self._start = 0.0

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        synchronize()
        self._start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if batch_idx == trainer.num_training_batches - 1:
            synchronize()
            self.epoch_seconds.append(time.perf_counter() - self._start)


def summary(epoch_seconds: list[float], images: int, measured: int) -> dict[str, Any]:
    """Median of the last `measured` epochs (the ones after warm-up) as images per second."""
    timed = epoch_seconds[-measured:]
    median = statistics.median(timed)
    return {"images_per_s": images / median, "median_epoch_s": median, "epoch_s": [round(s, 4) for s in epoch_seconds],
            "timed_epochs": len(timed)}


# --- the template, built as src.train builds it -----------------------------------------------------------------
def run_template(overrides: list[str], test: bool = False) -> dict[str, Any]:
    """Fit with the template's own builders; synced train-pass times, fit wall time, optional test metrics."""
    from src import builders

    with tempfile.TemporaryDirectory() as out_dir:
        # Not timed, but noisy in a benchmark's output: the progress bar and the model summary.
        quiet = ["callbacks.progress_bar=null", "callbacks.model_summary=null", "+trainer.enable_progress_bar=false"]
        cfg = compose_run_config(overrides + quiet, out_dir)
        L.seed_everything(cfg.seed, workers=True, verbose=False)
        datamodule = builders.build_datamodule(cfg.data, cfg.get("augment"))
        module = builders.build_module(cfg.model, cfg.optimizer, cfg.scheduler)
        timer = SyncedEpochTimer()
        callbacks = builders.build_all(cfg.callbacks) + [timer]
        trainer = builders.build_trainer(cfg.trainer, callbacks, builders.build_all(cfg.logger))
        synchronize()
        start = time.perf_counter()
        trainer.fit(module, datamodule=datamodule)
        synchronize()
        fit_s = time.perf_counter() - start
        result = {"fit_s": fit_s, "epoch_seconds": timer.epoch_seconds, "steps": trainer.global_step,
                  "train_images": len(datamodule.train_split), "data_device": str(datamodule.train_split.inputs.device),
                  "loader": datamodule.loader, "num_workers": datamodule.num_workers,
                  "precision": str(trainer.precision), "device": str(trainer.strategy.root_device)}
        if test:
            synchronize()
            start = time.perf_counter()
            metrics = trainer.test(module, datamodule=datamodule, verbose=False)[0]
            synchronize()
            result["test_s"] = time.perf_counter() - start
            result["test_acc"] = float(metrics["test/acc"])
    del module, datamodule, trainer
    release()
    return result


def release() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


# --- (a) the plain loop ---------------------------------------------------------------------------------------
def plain_loop(overrides: list[str], epochs: int, max_batches: int | None) -> dict[str, Any]:
    """The same net (built from the same config and seed), batch size and precision as the template,
    trained by a hand-written loop over the uint8 training split held on the device."""
    from src import builders
    from src.builders import resolve_precision

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    with tempfile.TemporaryDirectory() as out_dir:
        cfg = compose_run_config(overrides, out_dir)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    datamodule = builders.build_datamodule(cfg.data)
    datamodule.prepare_data()  # unzips or downloads what setup() reads
    datamodule.setup()  # no trainer: the splits stay on the CPU until moved below
    net = builders.build_module(cfg.model, cfg.optimizer, cfg.scheduler).net.to(device)
    precision = resolve_precision("gpu" if device.type == "cuda" else "cpu", cfg.trainer.precision)
    autocast_dtype = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}.get(str(precision))
    x = datamodule.train_split.inputs.to(device)
    y = datamodule.train_split.targets.to(device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        net = net.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    mean = torch.tensor(datamodule.transform.state()["mean"], device=device).view(1, -1, 1, 1)
    std = torch.tensor(datamodule.transform.state()["std"], device=device).view(1, -1, 1, 1)
    scale, shift = 1.0 / (255.0 * std), -mean / std
    opt = cfg.optimizer
    optimizer = torch.optim.SGD(net.parameters(), lr=opt.lr, momentum=opt.get("momentum", 0.0),
                                nesterov=opt.get("nesterov", False), weight_decay=opt.get("weight_decay", 0.0))
    scaler = torch.amp.GradScaler(device.type, enabled=autocast_dtype is torch.float16)
    batch = int(cfg.data.batch_size)
    n = len(x) if max_batches is None else min(len(x), max_batches * batch)
    generator = torch.Generator(device=device).manual_seed(0)
    seconds = []
    net.train()
    for _ in range(epochs):
        synchronize()
        start = time.perf_counter()
        order = torch.randperm(len(x), device=device, generator=generator)[:n]
        for i in range(0, n, batch):
            idx = order[i : i + batch]
            xb = torch.addcmul(shift, x[idx].float(), scale)
            with torch.autocast(device.type, dtype=autocast_dtype) if autocast_dtype else contextlib.nullcontext():
                loss = F.cross_entropy(net(xb), y[idx])
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        synchronize()
        seconds.append(time.perf_counter() - start)
    del net, optimizer, x, y, datamodule
    release()
    return {"epoch_seconds": seconds, "train_images": n, "precision": str(precision), "data_device": str(device)}


# --- workloads ------------------------------------------------------------------------------------------------
def fmnist_dir(given: str | None) -> str | None:
    for folder in ([given] if given else FMNIST_DIRS):
        if folder and (Path(folder) / "train-images-idx3-ubyte.gz").is_file():
            return folder
    return None


def throughput_workload(name: str, args: argparse.Namespace, data_dir: str) -> dict[str, Any]:
    smoke = args.cpu_smoke
    warmup, measured = (1, 1) if smoke else (args.warmup, args.epochs)
    epochs = warmup + measured
    batch = 16 if smoke else args.batch_size
    if name == "resnet18":
        data = ["data=random_images"]
        data += ["data.input_shape=[3,16,16]", "data.num_train=96", "data.num_test=16", "data.val_fraction=0.17"] \
            if smoke else []
        common = [*data, "model=resnet18"]
        what, data_note = "ResNet-18 (CIFAR variant)", RANDOM_NOTE + (" (3x16x16, 80 images: smoke)" if smoke else "")
    else:
        folder = fmnist_dir(args.fmnist_dir)
        if folder is None:
            return {"name": name, "skipped": f"no Fashion-MNIST files in {args.fmnist_dir or ' or '.join(FMNIST_DIRS)}"}
        common = ["data=fashion_mnist", f"data.system_dir={folder}", f"data.data_dir={data_dir}", "data.download=false",
                  "model=lenet"]
        what, data_note = "LeNet-5", f"Fashion-MNIST (real, {folder})"
    limit = 3 if smoke and name != "resnet18" else None
    common += [f"data.batch_size={batch}", "optimizer=sgd", "optimizer.lr=0.01", "optimizer.momentum=0.9",
               f"trainer.max_epochs={epochs}", "callbacks.early_stopping=null"]
    if limit:
        common += [f"trainer.limit_train_batches={limit}", "trainer.limit_val_batches=1"]
    row: dict[str, Any] = {"name": name, "workload": f"{what}, batch {batch}", "data": data_note}
    a = plain_loop(common, epochs, limit)
    row["a_plain"] = {**summary(a["epoch_seconds"], a["train_images"], measured), "precision": a["precision"]}
    images = a["train_images"]
    workers = ["data.num_workers=1"] if smoke else []
    variants = {"b_template_dataloader": ["data.loader=dataloader", *workers],
                "c_template_gpu_path": ["data.loader=tensor"]}
    if args.compile:
        variants["d_template_gpu_path_compiled"] = ["data.loader=tensor", "callbacks.gpu_speedups.compile=true"]
    for key, extra in variants.items():
        r = run_template(common + extra)
        row[key] = {**summary(r["epoch_seconds"], images, measured),
                    **{k: r[k] for k in ("data_device", "loader", "num_workers", "precision", "steps")}}
    row["c_over_a"] = row["c_template_gpu_path"]["images_per_s"] / row["a_plain"]["images_per_s"]
    row["c_over_b"] = row["c_template_gpu_path"]["images_per_s"] / row["b_template_dataloader"]["images_per_s"]
    if args.compile:
        row["d_over_a"] = row["d_template_gpu_path_compiled"]["images_per_s"] / row["a_plain"]["images_per_s"]
    return row


def speedrun_workload(name: str, args: argparse.Namespace, data_dir: str) -> dict[str, Any]:
    smoke = args.cpu_smoke
    compile_flag = ["callbacks.gpu_speedups.compile=true"] if args.compile else []
    if name == "speedrun_cifar10":
        common = ["experiment=speedrun_cifar10", "data=random_images", *compile_flag]
        if smoke:
            common += ["data.input_shape=[3,16,16]", "data.num_train=128", "data.num_test=32", "data.batch_size=32",
                       "data.val_fraction=0.1",
                       "trainer.max_epochs=1", "model.train_epochs=1", "model.whiten_images=64"]
        runs = [run_template(common, test=True) for _ in range(1 if smoke else 1 + args.runs)]
        timed = runs[-1:] if smoke else runs[1:]
        return {"name": name, "workload": "experiment=speedrun_cifar10 (time only: accuracy is meaningless on random "
                "labels)", "data": RANDOM_NOTE, "warmup_runs": 0 if smoke else 1,
                "runs": [speedrun_row(r) for r in timed],
                "median_fit_s": statistics.median(r["fit_s"] for r in timed),
                "median_train_s": statistics.median(sum(r["epoch_seconds"]) for r in timed)}
    folder = fmnist_dir(args.fmnist_dir)
    if folder is None:
        return {"name": name, "skipped": f"no Fashion-MNIST files in {args.fmnist_dir or ' or '.join(FMNIST_DIRS)}"}
    common = ["experiment=speedrun_fashion_mnist", f"data.system_dir={folder}", f"data.data_dir={data_dir}",
              "data.download=false", *compile_flag]
    if smoke:
        common += ["data.batch_size=64", "trainer.max_epochs=1", "model.train_epochs=1", "model.whiten_images=200",
                   "trainer.limit_train_batches=2", "trainer.limit_val_batches=1", "trainer.limit_test_batches=1"]
    seeds = [0] if smoke else list(range(args.seeds))
    if not smoke:
        run_template(common + ["seed=0"], test=True)  # warm-up, not reported
    runs = [{"seed": s, **speedrun_row(run_template(common + [f"seed={s}"], test=True))} for s in seeds]
    return {"name": name, "workload": "experiment=speedrun_fashion_mnist: time and test accuracy (TTA, final weights)",
            "data": f"Fashion-MNIST (real, {folder})", "warmup_runs": 0 if smoke else 1, "runs": runs,
            "median_fit_s": statistics.median(r["fit_s"] for r in runs),
            "mean_test_acc": statistics.mean(r["test_acc"] for r in runs)}


def speedrun_row(r: dict[str, Any]) -> dict[str, Any]:
    return {"fit_s": r["fit_s"], "train_s": sum(r["epoch_seconds"]), "test_tta_s": r["test_s"],
            "test_acc": r["test_acc"], "steps": r["steps"], "train_images": r["train_images"],
            "data_device": r["data_device"], "precision": r["precision"]}


# --- report -------------------------------------------------------------------------------------------------
def gpu_info() -> dict[str, Any]:
    import torchvision

    info: dict[str, Any] = {"torch": torch.__version__, "torchvision": torchvision.__version__,
                            "lightning": L.__version__, "python": platform.python_version()}
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info.update(gpu=torch.cuda.get_device_name(0), gpu_memory_gib=round(props.total_memory / 2**30, 1),
                    cuda=torch.version.cuda, cudnn=torch.backends.cudnn.version(),
                    bf16=torch.cuda.is_bf16_supported())
    return info


def print_table(rows: list[dict[str, Any]], smoke: bool) -> None:
    unit = "images/s" + (" (CPU SMOKE TEST: NOT RESULTS)" if smoke else "")
    print(f"\n{unit}")
    print(f"{'workload':<40} {'a plain':>10} {'b tmpl+DL':>10} {'c tmpl GPU':>10} {'c/a':>6} {'c/b':>6}"
          f"{'  d compiled   d/a' if any('d_over_a' in r for r in rows) else ''}")
    for r in rows:
        if "skipped" in r:
            print(f"{r['name']:<40} skipped: {r['skipped']}")
        elif "c_over_a" in r:
            line = (f"{r['workload'][:40]:<40} {r['a_plain']['images_per_s']:>10.0f} "
                    f"{r['b_template_dataloader']['images_per_s']:>10.0f} "
                    f"{r['c_template_gpu_path']['images_per_s']:>10.0f} "
                    f"{r['c_over_a']:>6.2f} {r['c_over_b']:>6.2f}")
            if "d_over_a" in r:
                line += f" {r['d_template_gpu_path_compiled']['images_per_s']:>11.0f} {r['d_over_a']:>5.2f}"
            print(line)
            print(f"{'':<4}data: {r['data']}; precision {r['a_plain']['precision']}")
        else:
            accs = [f"{x['test_acc']:.4f}" for x in r["runs"]]
            print(f"{r['workload']}\n{'':<4}data: {r['data']}\n{'':<4}fit s: "
                  f"{[round(x['fit_s'], 2) for x in r['runs']]} (median {r['median_fit_s']:.2f}); train passes s: "
                  f"{[round(x['train_s'], 2) for x in r['runs']]}; steps {r['runs'][0]['steps']}; test acc: {accs}")


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cpu-smoke", action="store_true", help="tiny, on the CPU: the script works (no results)")
    parser.add_argument("--speedrun", action="store_true", help="speed-run timings instead of the throughput table")
    parser.add_argument("--compile", action="store_true", help="add callbacks.gpu_speedups.compile=true runs")
    parser.add_argument("--only", nargs="*", default=None,
                        help="resnet18 lenet (throughput) | speedrun_cifar10 speedrun_fashion_mnist (--speedrun)")
    parser.add_argument("--fmnist-dir", default=None,
                        help=f"Fashion-MNIST .gz files (default: {' or '.join(FMNIST_DIRS)})")
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--warmup", type=int, default=2, help="untimed epochs first")
    parser.add_argument("--epochs", type=int, default=5, help="timed epochs (median reported)")
    parser.add_argument("--runs", type=int, default=3, help="timed speed runs on random CIFAR-shaped data")
    parser.add_argument("--seeds", type=int, default=3, help="Fashion-MNIST speed runs (seeds 0..N-1)")
    args = parser.parse_args()
    if not args.cpu_smoke and not torch.cuda.is_available():
        print(NO_CUDA, file=sys.stderr)
        sys.exit(2)
    import logging
    import warnings

    warnings.filterwarnings("ignore")
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    if args.cpu_smoke:
        names = ["resnet18", "lenet", "speedrun_cifar10", "speedrun_fashion_mnist"]
    else:
        names = ["speedrun_cifar10", "speedrun_fashion_mnist"] if args.speedrun else ["resnet18", "lenet"]
    names = [n for n in names if args.only is None or n in args.only]
    rows = []
    with tempfile.TemporaryDirectory() as data_dir:
        for name in names:
            print(f"running {name} ...", flush=True)
            job = speedrun_workload if name.startswith("speedrun") else throughput_workload
            rows.append({**job(name, args, data_dir)})
    print_table(rows, args.cpu_smoke)
    if args.cpu_smoke:
        print("\n--cpu-smoke: the script works; these numbers are not results and were not written.")
        return
    info = gpu_info()
    RESULTS.mkdir(parents=True, exist_ok=True)
    kind = "speedrun" if args.speedrun else "throughput"
    path = RESULTS / f"{kind}-{slug(info['gpu'])}-{date.today().isoformat()}.json"
    command = " ".join(["python -m benchmarks.throughput", *sys.argv[1:]])
    record = {"command": command, "gpu": info, "machine": machine(), "rows": rows,
              "method": "one process; torch.cuda.synchronize() around each timed region; median of the timed epochs "
                        "after warm-up; ratios against the plain loop of the same call"}
    path.write_text(json.dumps(record, indent=2) + "\n")
    print(f"\nwrote {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
