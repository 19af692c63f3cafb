"""CPU benchmark: the template against a plain PyTorch loop, in one process on this machine.

    .venv/bin/python -m benchmarks.cpu            # everything (a few minutes on 2 cores)
    .venv/bin/python -m benchmarks.cpu --quick    # fewer steps, for a smoke test

For each workload: (a) a plain, hand-written PyTorch loop over tensors in memory; (b) the template
(`src.train`'s own builders and configs, default callbacks and TensorBoard logger); (c) the template
without its fast path (one optimiser step per Lightning step, or the per-sample DataLoader path).
Prints a table with the ratios b/a and c/a, and writes benchmarks/results/cpu-<date>.json.
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

import torch
import torch.nn.functional as F
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


# --- the template, built exactly as src.train builds it ---------------------------------------------
def compose(overrides: list[str], out_dir: str):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    import src.utils.resolvers  # noqa: F401

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = hydra_compose("train", overrides=[*overrides, f"hydra.run.dir={out_dir}"], return_hydra_config=True)
    cfg.hydra.runtime.output_dir = out_dir
    cfg.hydra.runtime.cwd = str(ROOT)
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        del cfg["hydra"]
    return cfg


def run_template(overrides: list[str]) -> dict:
    """Fit with the template; return fit seconds, train-epoch seconds and the trained module."""
    import lightning as L

    from benchmarks.timing import TrainEpochTimer
    from src.utils import instantiate as build

    with tempfile.TemporaryDirectory() as out_dir:
        cfg = compose(overrides + ["callbacks.progress_bar=null"], out_dir)
        L.seed_everything(cfg.seed, workers=True, verbose=False)
        datamodule = build.build_datamodule(cfg.data, cfg.get("augment"))
        module = build.build_module(cfg.model, cfg.optimizer, cfg.scheduler)
        timer = TrainEpochTimer()
        callbacks = build.build_all(cfg.callbacks) + [timer]
        trainer = build.build_trainer(cfg.trainer, callbacks, build.build_all(cfg.logger))
        start = time.perf_counter()
        trainer.fit(module, datamodule=datamodule)
        seconds = time.perf_counter() - start
    return {"seconds": seconds, "epoch_seconds": timer.epoch_seconds, "module": module, "datamodule": datamodule}


# --- plain loops ---------------------------------------------------------------------------------
def plain_full_batch(net: nn.Module, loss_fn, x, y, x_val, y_val, lr: float, steps: int, every: int) -> float:
    """The seeds' loop: one full-batch SGD step per epoch, validation forward each epoch, history every N."""
    optimizer = torch.optim.SGD(net.parameters(), lr=lr)
    history = []
    start = time.perf_counter()
    for step in range(steps):
        optimizer.zero_grad()
        out = net(x)
        loss = loss_fn(out, y)
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            val_loss = loss_fn(net(x_val), y_val)
        if step % every == 0:
            history.append((loss.item(), val_loss.item()))
    return time.perf_counter() - start


def plain_minibatch_epochs(net: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int, epochs: int, lr: float,
                           seed: int) -> list[float]:
    """Adam over shuffled mini-batches of one float tensor; seconds per training pass."""
    optimizer = torch.optim.Adam(net.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    seconds = []
    for _ in range(epochs):
        start = time.perf_counter()
        order = torch.randperm(len(x), generator=generator)
        for i in range(0, len(x), batch):
            idx = order[i : i + batch]
            optimizer.zero_grad()
            F.cross_entropy(net(x[idx]), y[idx]).backward()
            optimizer.step()
        seconds.append(time.perf_counter() - start)
    return seconds


# --- workloads -----------------------------------------------------------------------------------
def final_loss(module, x, y) -> float:
    module.eval()
    with torch.no_grad():
        return float(module.training_loss(module.net(x), y)[1])


def iris(quick: bool, extra: list[str] = (), epochs_divisor: int = 1) -> dict:
    """Seed 000's recipe: validation and history every 10 steps (1,000 epochs of 10 steps)."""
    from src.models.nets.linear import softmax_regression

    epochs = (100 if quick else 1000) // epochs_divisor
    common = ["experiment=seed000_iris_4features", f"trainer.max_epochs={epochs}", *extra]
    b = run_template(common)
    c = run_template(common + ["data.steps_per_call=1"])
    dm = b["datamodule"]  # the plain loop trains on the template's own split (random_state=123)
    x, y, xv, yv = dm.train_split.inputs, dm.train_split.targets, dm.test_split.inputs, dm.test_split.targets
    torch.manual_seed(42)
    net = softmax_regression([4], 3)
    a = plain_full_batch(net, F.cross_entropy, x, y, xv, yv, 0.01, epochs * 10 * epochs_divisor, 10)
    loss_a = float(F.cross_entropy(net(x), y))
    return {"workload": f"iris softmax regression, {epochs * 10 * epochs_divisor:,} full-batch SGD steps (seed 000)",
            "a_plain_s": a, "b_template_s": b["seconds"], "c_template_without_fast_path_s": c["seconds"],
            "c_is": "one optimiser step per Lightning step (data.steps_per_call=1)",
            "final_loss": {"a": round(loss_a, 4), "b": round(final_loss(b["module"], x, y), 4),
                           "c": round(final_loss(c["module"], x, y), 4)}}


def iris_coarse(quick: bool) -> dict:
    """The iris recipe validating and logging every 100 steps instead of every 10 (100 epochs of 100)."""
    row = iris(quick, ["data.steps_per_epoch=100", "data.steps_per_call=100"], 10)
    row["workload"] = row["workload"].replace("(seed 000)", "(seed 000), validation every 100 steps")
    return row


def xor(quick: bool) -> dict:
    from src.models.losses import binary_cross_entropy

    steps = 1001 if quick else 10001
    x = torch.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    y = torch.tensor([0, 1, 1, 0])
    torch.manual_seed(42)
    layers: list[nn.Module] = [nn.Flatten()]
    for i, o in [(2, 10), (10, 10), (10, 10)]:
        layers += [nn.Linear(i, o), nn.Sigmoid()]
    net = nn.Sequential(*layers, nn.Linear(10, 1))
    a = plain_full_batch(net, binary_cross_entropy, x, y, x, y, 1.0, steps, 100)
    loss_a = float(binary_cross_entropy(net(x), y))
    common = ["experiment=seed003_xor_mlp", f"trainer.max_steps={steps}"]
    b = run_template(common)
    c = run_template(common + ["data.steps_per_call=1"])
    return {"workload": f"XOR MLP 2-10-10-10-1, {steps:,} full-batch SGD steps (seed 003)",
            "a_plain_s": a, "b_template_s": b["seconds"], "c_template_without_fast_path_s": c["seconds"],
            "c_is": "one optimiser step per Lightning step (data.steps_per_call=1)",
            "final_loss": {"a": round(loss_a, 4), "b": round(final_loss(b["module"], x, y), 4),
                           "c": round(final_loss(c["module"], x, y), 4)}}


def fashion(model: str, quick: bool) -> dict:
    epochs = 2
    overrides = [f"model={model}", "data=fashion_mnist", f"trainer.max_epochs={epochs}", "data.batch_size=128"]
    if model == "mlp":
        overrides.append("model.net.hidden_sizes=[128]")
    if quick:
        overrides += ["trainer.limit_train_batches=40", "trainer.limit_val_batches=5"]
    b = run_template(overrides)
    dm = b["datamodule"]
    x = dm.transform(dm.train_split.inputs)  # the plain loop gets the same data as one float tensor
    y = dm.train_split.targets
    if quick:
        x, y = x[: 40 * 128], y[: 40 * 128]
    torch.manual_seed(42)
    from src.utils.instantiate import build_module

    net = build_module(compose(overrides, tempfile.mkdtemp()).model, {"lr": 0.003}, None).net
    a = plain_minibatch_epochs(net, x, y, 128, epochs, 0.003, seed=0)
    c = run_template(overrides + ["data.loader=dataloader"])
    name = "MLP 784-128-10" if model == "mlp" else "LeNet-5"
    return {"workload": f"{name} on Fashion-MNIST, batch 128, Adam: seconds per training epoch (median of {epochs})",
            "a_plain_s": statistics.median(a), "b_template_s": statistics.median(b["epoch_seconds"]),
            "c_template_without_fast_path_s": statistics.median(c["epoch_seconds"]),
            "c_is": f"per-sample Dataset + DataLoader, {c['datamodule'].num_workers or 'default'} workers"}


def startup() -> dict:
    """`python -m src.train` (the default job) as a user runs it: total wall and time to the first step."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), BENCH_T0=str(time.time()))
    with tempfile.TemporaryDirectory() as cwd:
        env["BENCH_T0"] = str(time.time())
        start = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "src.train", "+callbacks.first_step._target_=benchmarks.timing.FirstStepTimer"],
            cwd=cwd, env=env, capture_output=True, text=True,
        )
        total = time.perf_counter() - start
    first = [line.split()[-1] for line in proc.stdout.splitlines() if line.startswith("BENCH first-step-seconds")]
    acc = [line for line in proc.stdout.splitlines() if line.startswith("test: acc=")]
    return {"workload": "python -m src.train (default digits job), from command to exit / to first step",
            "total_s": total, "first_step_s": float(first[0]) if first else None, "returncode": proc.returncode,
            "summary": acc[0].split("   ")[0] if acc else None}


def machine() -> dict:
    import lightning
    import torchvision

    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
               platform.processor()) if Path("/proc/cpuinfo").exists() else platform.processor()
    return {"cpu": cpu, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "python": platform.python_version(), "torch": torch.__version__, "torchvision": torchvision.__version__,
            "lightning": lightning.__version__, "platform": platform.platform()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer steps: a smoke test, not a measurement")
    parser.add_argument("--only", nargs="*", default=None, help="iris iris_coarse xor mlp lenet startup")
    args = parser.parse_args()
    import logging
    import warnings

    warnings.filterwarnings("ignore")
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    jobs = {"iris": lambda: iris(args.quick), "iris_coarse": lambda: iris_coarse(args.quick),
            "xor": lambda: xor(args.quick),
            "mlp": lambda: fashion("mlp", args.quick), "lenet": lambda: fashion("lenet", args.quick),
            "startup": startup}
    rows = []
    for name in args.only or list(jobs):
        print(f"running {name} ...", flush=True)
        rows.append({"name": name, **jobs[name]()})
    print()
    print(f"{'workload':<78} {'plain a':>9} {'tmpl b':>9} {'no-fast c':>9} {'b/a':>6} {'c/a':>6}")
    for r in rows:
        if "a_plain_s" in r:
            r["b_over_a"] = r["b_template_s"] / r["a_plain_s"]
            r["c_over_a"] = r["c_template_without_fast_path_s"] / r["a_plain_s"]
            print(f"{r['workload'][:78]:<78} {r['a_plain_s']:>8.2f}s {r['b_template_s']:>8.2f}s "
                  f"{r['c_template_without_fast_path_s']:>8.2f}s {r['b_over_a']:>6.2f} {r['c_over_a']:>6.2f}")
            if "final_loss" in r:
                print(f"{'':<4}final train loss a/b/c: {r['final_loss']}")
        else:
            print(f"{r['workload']}: total {r['total_s']:.2f} s, first training step at {r['first_step_s']} s "
                  f"({r['summary']})")
    if not args.quick:
        RESULTS.mkdir(parents=True, exist_ok=True)
        path = RESULTS / f"cpu-{date.today().isoformat()}.json"
        command = "python -m benchmarks.cpu" + (f" --only {' '.join(args.only)}" if args.only else "")
        path.write_text(json.dumps({"command": command, "machine": machine(), "rows": rows}, indent=2) + "\n")
        print(f"\nwrote {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
