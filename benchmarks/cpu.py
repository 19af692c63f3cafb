"""CPU benchmark: the template against a plain PyTorch loop, in one process on this machine.

    .venv/bin/python -m benchmarks.cpu                 # everything (several minutes on 2 cores)
    .venv/bin/python -m benchmarks.cpu --only iris xor # some workloads (writes cpu-iris-xor-<date>.json)
    .venv/bin/python -m benchmarks.cpu --quick         # a tenth of the steps: a smoke test, writes nothing

Columns, for each workload:
(a) a plain, hand-written PyTorch loop over tensors in memory doing the same work: for the tiny
    recipes the course notes' loop with its history row (train and test loss and accuracy) every N steps;
    for the image sets one training pass of Adam over shuffled mini-batches of one float tensor.
(b) the template as a user runs it: `src.train`'s builders on the experiment's or data set's
    configs, default callbacks and the TensorBoard logger (the progress bar off: no progress-bar
    callback, and `trainer.enable_progress_bar=false` so that Lightning adds none), twice: with one
    optimizer step per Lightning step (`steps_per_call=1`, the image sets' default) and with K
    steps per Lightning step (the tiny recipes' configured K = 1,000; K = 20 for the image sets).
(c) the template on the per-sample path: `data.loader=dataloader` (a `Dataset` + `DataLoader`,
    one optimizer step per Lightning step; for the tiny recipes one Lightning epoch per step).
For the image sets also (a)'s work in the smallest LightningModule under a bare `Trainer` (no callbacks,
logger, checkpoints or validation): Lightning's own cost per step, the floor under (b) at K = 1.
The tiny recipes run (a) and both (b) alternately five times and report the medians (this machine's
speed drifts), and check that each (b) reproduces (a): the same history rows and final loss. The
image sets alternate both (b), (a) and the bare Trainer twice, three epochs each, and report the median epoch.
The targets apply to the configuration a user gets: the tiny recipes at their K = 1,000 (b/a <= 2),
the image sets at K = 1 (b/a <= 1.25). `startup`: the default job `python -m src.train` beside
`python -c "import lightning"` in the same run, in CPU seconds (user + system); the target is the job's own
time above that import floor (<= 5 s). Prints a table with both (b) beside (a) and (c), and writes
benchmarks/results/cpu-<date>.json (`--only`: cpu-<workloads>-<date>.json) with the machine, the versions and
the command.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


# --- the template, built exactly as src.train builds it ---------------------------------------------
def run_template(overrides: list[str], time_epochs: bool = False) -> dict:
    """Fit with the template; fit seconds, train-epoch seconds (`time_epochs`: a timing callback, which
    costs a callback's dispatch per step), the module, data and logged history."""
    import lightning as L

    from benchmarks.timing import TrainEpochTimer
    from src import builders
    from src.config.compose import compose_run_config
    from src.config.names import plain
    from src.runs.history import read_history

    with tempfile.TemporaryDirectory() as out_dir:
        cfg = compose_run_config(overrides + ["callbacks.progress_bar=null", "+trainer.enable_progress_bar=false"],
                                 out_dir)
        L.seed_everything(cfg.seed, workers=True, verbose=False)
        k = builders.steps_per_call(plain(cfg))
        datamodule = builders.build_datamodule(cfg.data, cfg.get("augment"), k)
        module = builders.build_module(cfg.model, cfg.optimizer, cfg.scheduler, k)
        timer = TrainEpochTimer()
        callbacks = builders.build_all(cfg.callbacks) + ([timer] if time_epochs else [])
        trainer = builders.build_trainer(cfg.trainer, callbacks, builders.build_all(cfg.logger))
        start = time.perf_counter()
        trainer.fit(module, datamodule=datamodule)
        seconds = time.perf_counter() - start
        history = read_history(out_dir)
    return {"seconds": seconds, "epoch_seconds": timer.epoch_seconds, "module": module, "datamodule": datamodule,
            "history": history, "steps_per_call": int(cfg.steps_per_call)}


# --- plain loops ---------------------------------------------------------------------------------
def accuracy(outputs: torch.Tensor, targets: torch.Tensor) -> float:
    predicted = (outputs.squeeze(1) > 0).long() if outputs.shape[1] == 1 else outputs.argmax(1)
    return float((predicted == targets).float().mean())


def plain_seed_loop(net: nn.Module, loss_fn: Loss, x, y, x_val, y_val, lr: float, steps: int, every: int,
                    evaluate_every_epoch: bool):
    """The course notes' loop: one full-batch SGD step per epoch; every `every` epochs a history row (train loss
    and accuracy of the step's batch, validation loss and accuracy after the update). Notes 0 computes
    the row's values every epoch and keeps every 10th (`evaluate_every_epoch`); notes 3 computes them
    only when it prints. (seconds, rows)."""
    optimizer = torch.optim.SGD(net.parameters(), lr=lr)
    rows: dict[int, tuple[float, float, float, float]] = {}
    start = time.perf_counter()
    for step in range(steps):
        optimizer.zero_grad()
        outputs = net(x)
        loss = loss_fn(outputs, y)
        loss.backward()
        optimizer.step()
        if evaluate_every_epoch or step % every == 0:
            with torch.no_grad():
                val_outputs = net(x_val)
                row = (loss.item(), accuracy(outputs, y), loss_fn(val_outputs, y_val).item(),
                       accuracy(val_outputs, y_val))
            if step % every == 0:
                rows[step] = row
    return time.perf_counter() - start, rows


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


class ShuffledBatches:
    """Shuffled mini-batches of one float tensor, drawn as the plain loop draws them; a new order each pass."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, batch: int, seed: int) -> None:
        self.x, self.y, self.batch = x, y, batch
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return -(-len(self.x) // self.batch)

    def __iter__(self):
        order = torch.randperm(len(self.x), generator=self.generator)
        for i in range(0, len(self.x), self.batch):
            idx = order[i : i + self.batch]
            yield self.x[idx], self.y[idx]


class BareModule(L.LightningModule):
    """The plain loop's step as the smallest LightningModule: its loss, Adam, nothing else."""

    def __init__(self, net: nn.Module, lr: float) -> None:
        super().__init__()
        self.net, self.lr = net, lr

    def training_step(self, batch, batch_idx):
        x, y = batch
        return F.cross_entropy(self.net(x), y)

    def configure_optimizers(self):
        return torch.optim.Adam(self.net.parameters(), lr=self.lr)


def bare_lightning_epochs(net: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int, epochs: int, lr: float,
                          seed: int) -> list[float]:
    """The plain loop's work through a bare Lightning Trainer (no callbacks, logger, checkpoints, validation or
    progress bar): Lightning's own cost per step, the floor under the template's (b)."""
    from benchmarks.timing import TrainEpochTimer

    timer = TrainEpochTimer()
    trainer = L.Trainer(accelerator="cpu", devices=1, max_epochs=epochs, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
                        num_sanity_val_steps=0, callbacks=[timer])
    trainer.fit(BareModule(net, lr), train_dataloaders=ShuffledBatches(x, y, batch, seed))
    return timer.epoch_seconds


# --- the tiny many-step recipes -------------------------------------------------------------------
def final_loss(module, x, y) -> float:
    module.eval()
    with torch.no_grad():
        return float(module.compute_loss(module.net(x), y))


def largest_row_difference(history, rows: dict[int, tuple[float, ...]]) -> float | None:
    """Largest |template - plain| over the history rows both have (None when the steps differ)."""
    from src.callbacks.step_history import CURVES  # the order of a row

    if history is None or any(sorted(int(s) for s, _ in history.curves.get(c, [])) != sorted(rows) for c in CURVES):
        return None
    return max(abs(v - rows[int(s)][i]) for i, c in enumerate(CURVES) for s, v in history.curves[c])


def tiny_recipe(name: str, experiment: str, steps: int, every: int, lr: float, loss_fn: Loss,
                make_net: Callable[[], nn.Module], length: list[str], per_step: list[str], repeats: int,
                seed_evaluates_every_epoch: bool) -> dict:
    """(b) the experiment as configured (K steps per Lightning step) and with `steps_per_call=1`,
    (a) the notes' loop on the template's own split from the same initial weights (seed 42), alternating
    `repeats` times (medians); then (c) once: one full batch per Lightning epoch through a DataLoader.
    Where the notes evaluate every epoch, a leaner loop that evaluates only for its history rows is
    timed too (a_lean)."""
    a_runs, lean_runs = [], []
    b_runs: dict[int, list[float]] = {}
    checks: dict[int, dict] = {}
    for _ in range(repeats):
        for extra in ([], ["steps_per_call=1"]):
            b = run_template([f"experiment={experiment}", *length, *extra])
            b_runs.setdefault(b["steps_per_call"], []).append(b["seconds"])
            checks[b["steps_per_call"]] = b
        dm = b["datamodule"]
        x, y, xv, yv = dm.train_split.inputs, dm.train_split.targets, dm.val_split.inputs, dm.val_split.targets
        loops = [(seed_evaluates_every_epoch, a_runs)] + ([(False, lean_runs)] if seed_evaluates_every_epoch else [])
        for evaluate_every_epoch, runs in loops:
            torch.manual_seed(42)
            net = make_net()
            seconds, rows = plain_seed_loop(net, loss_fn, x, y, xv, yv, lr, steps, every, evaluate_every_epoch)
            runs.append(seconds)
    c = run_template([f"experiment={experiment}", *per_step, "steps_per_call=1", "data.loader=dataloader",
                      "data.steps_per_epoch=null", f"trainer.check_val_every_n_epoch={max(steps // 10, 1)}",
                      f"callbacks.model_checkpoint.every_n_epochs={max(steps // 10, 1)}"])
    with torch.no_grad():
        loss_a = float(loss_fn(net(x), y))
    configured = max(b_runs)  # the experiment's own K
    return {"workload": f"{name}, {steps:,} full-batch SGD steps, history every {every}",
            "a_plain_s": statistics.median(a_runs), **template_columns(b_runs, configured),
            "c_template_per_sample_s": c["seconds"],
            "runs_s": {"a": a_runs, "a_lean": lean_runs, **{f"b_steps_per_call_{k}": v for k, v in b_runs.items()}},
            "a_is": "the notes' loop" + (": its row values computed every epoch (no_grad), every 10th kept"
                                         if seed_evaluates_every_epoch else ": a row every 100 steps"),
            "a_lean_s": statistics.median(lean_runs) if lean_runs else None,
            "c_is": "data.loader=dataloader: per-sample Dataset + DataLoader, one Lightning epoch per step",
            "history_rows": len(rows),
            "history_max_abs_difference_b_vs_a": {
                str(k): largest_row_difference(run["history"], rows) for k, run in sorted(checks.items())},
            "final_loss": {"a": round(loss_a, 4),
                           **{f"b_steps_per_call_{k}": round(final_loss(run["module"], x, y), 4)
                              for k, run in sorted(checks.items())},
                           "c": round(final_loss(c["module"], x, y), 4)},
            "target": f"b/a <= 2 at the configured steps_per_call={configured}, same final loss to 4 decimals"}


def template_columns(b_runs: dict[int, list[float]], configured: int) -> dict:
    """The template's medians by steps_per_call; `b_template_s` is the configured one (the target's)."""
    medians = {k: statistics.median(v) for k, v in sorted(b_runs.items())}
    return {"b_template_s": medians[configured], "b_steps_per_call": configured,
            "b_template_s_by_steps_per_call": {str(k): v for k, v in medians.items()}}


def iris(quick: bool) -> dict:
    from src.models.nets.linear import softmax_regression

    epochs = 1 if quick else 10  # Lightning epochs of 1,000 steps
    return tiny_recipe(
        "iris softmax regression (notes 0)", "notes0_iris_4features", epochs * 1000, 10, 0.01, F.cross_entropy,
        lambda: softmax_regression([4], 3), [f"trainer.max_epochs={epochs}"], [f"trainer.max_epochs={epochs * 1000}"],
        repeats=1 if quick else 5, seed_evaluates_every_epoch=True)


def xor(quick: bool) -> dict:
    from src.models.losses import binary_cross_entropy
    from src.models.nets.mlp import MLP

    steps = 1001 if quick else 10001
    return tiny_recipe(
        "XOR MLP 2-10-10-10-1 (notes 3)", "notes3_xor_mlp", steps, 100, 1.0, binary_cross_entropy,
        lambda: MLP([2], 1, [10, 10, 10], activation="sigmoid"), [f"trainer.max_steps={steps}"],
        [f"trainer.max_steps={steps}"], repeats=1 if quick else 5, seed_evaluates_every_epoch=False)


# --- image data sets held in memory -------------------------------------------------------------
def fashion(model: str, quick: bool, epochs: int = 3, repeats: int = 2, k: int = 20) -> dict:
    """(b) at K = 1 (the data set's default) and K = `k`, and (a), alternately `repeats` times, `epochs`
    epochs each (median epoch), then (c) once."""
    from src.builders import build_module
    from src.config.compose import compose_run_config

    overrides = [f"model={model}", "data=fashion_mnist", f"trainer.max_epochs={epochs}", "data.batch_size=128"]
    if model == "mlp":
        overrides.append("model.net.hidden_sizes=[128]")
    if quick:
        overrides += ["trainer.limit_train_batches=40", "trainer.limit_val_batches=5"]
        repeats = 1
    a: list[float] = []
    bare: list[float] = []
    b_epochs: dict[int, list[float]] = {}
    for _ in range(repeats):
        for extra in ([], [f"steps_per_call={k}"]):
            b = run_template(overrides + extra, time_epochs=True)
            b_epochs.setdefault(b["steps_per_call"], []).extend(b["epoch_seconds"])
        dm = b["datamodule"]
        x = dm.transform(dm.train_split.inputs)  # the plain loop gets the same data as one float tensor
        y = dm.train_split.targets
        if quick:
            x, y = x[: 40 * 128], y[: 40 * 128]
        torch.manual_seed(42)
        net = build_module(compose_run_config(overrides, tempfile.mkdtemp()).model, {"lr": 0.003}, None).net
        a += plain_minibatch_epochs(net, x, y, 128, epochs, 0.003, seed=0)
        torch.manual_seed(42)
        net = build_module(compose_run_config(overrides, tempfile.mkdtemp()).model, {"lr": 0.003}, None).net
        bare += bare_lightning_epochs(net, x, y, 128, epochs, 0.003, seed=0)
    two_epochs = [o.replace(f"max_epochs={epochs}", "max_epochs=2") for o in overrides]
    c = run_template([*two_epochs, "data.loader=dataloader"], time_epochs=True)
    name = "MLP 784-128-10" if model == "mlp" else "LeNet-5"
    return {"workload": f"{name}, Fashion-MNIST, batch 128, Adam: s/epoch (median of {len(b_epochs[1])}; c: of 2)",
            "a_plain_s": statistics.median(a), **template_columns(b_epochs, 1),
            "c_template_per_sample_s": statistics.median(c["epoch_seconds"]),
            "bare_lightning_s": statistics.median(bare), "bare_lightning_is": (
                "(a)'s work in a LightningModule with a bare Trainer: no callbacks, logger, checkpoints, validation"),
            "epoch_seconds": {"a": a, **{f"b_steps_per_call_{s}": v for s, v in b_epochs.items()},
                              "c": c["epoch_seconds"], "bare_lightning": bare},
            "c_is": f"data.loader=dataloader: per-sample Dataset + DataLoader, {c['datamodule'].num_workers} workers "
                    f"(null = one per spare core)", "target": "b/a <= 1.25 at steps_per_call=1 (the default)"}


# --- start-up ------------------------------------------------------------------------------------
def timed_process(command: list[str], cwd: str, env: dict) -> dict:
    """Run `command`: its exit code, wall seconds and output (its CPU time: `children_cpu` before and after)."""
    start = time.perf_counter()
    proc = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = proc.communicate()
    wall = time.perf_counter() - start
    return {"returncode": proc.returncode, "wall_s": wall, "stdout": out, "stderr": err}


def children_cpu() -> float:
    """CPU seconds (user + system) of this process's finished children: what a process cost, however loaded
    the machine was (its wall time grows with the other processes on the cores, its CPU time much less)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def startup(quick: bool, repeats: int = 3) -> dict:
    """`python -m src.train` (the default job) as a user runs it, beside `python -c "import lightning"` (the
    import floor of its libraries) in the same run, alternating, both with one torch thread: CPU seconds
    (user + system) of each process, its wall time, and the job's time to its first training step. The
    job's own time is its CPU time above the floor's (median of each)."""
    runs, floors = [], []
    for _ in range(1 if quick else repeats):
        with tempfile.TemporaryDirectory() as cwd:
            # One torch thread: a second one spin-waits while other processes hold the cores, which counts as CPU
            # time that a machine of its own would not spend.
            env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
            before = children_cpu()
            floor = timed_process([sys.executable, "-c", "import lightning"], cwd, env)
            floors.append({"cpu_s": children_cpu() - before, "wall_s": floor["wall_s"]})
            env["BENCH_T0"] = str(time.time())
            before = children_cpu()
            job = timed_process(
                [sys.executable, "-m", "src.train", "+callbacks.first_step._target_=benchmarks.timing.FirstStepTimer"],
                cwd, env)
            cpu = children_cpu() - before
        if job["returncode"]:
            raise RuntimeError(f"python -m src.train failed:\n{job['stderr'][-2000:]}")
        first = [line.split()[-1] for line in job["stdout"].splitlines() if line.startswith("BENCH first-step-seconds")]
        summary = [line for line in job["stdout"].splitlines() if line.startswith("test: acc=")]
        runs.append({"cpu_s": cpu, "wall_s": job["wall_s"], "first_step_s": float(first[0]),
                     "summary": summary[0].split("   ")[0]})
    job_cpu = statistics.median(r["cpu_s"] for r in runs)
    floor_cpu = statistics.median(f["cpu_s"] for f in floors)
    return {"workload": "python -m src.train (the default digits job) beside python -c 'import lightning', 1 thread",
            "job_cpu_s": job_cpu, "import_lightning_cpu_s": floor_cpu, "own_cpu_s": job_cpu - floor_cpu,
            "job_wall_s": statistics.median(r["wall_s"] for r in runs),
            "import_lightning_wall_s": statistics.median(f["wall_s"] for f in floors),
            "first_step_s": statistics.median(r["first_step_s"] for r in runs), "runs": runs, "floors": floors,
            "cores": os.cpu_count(), "target": "the job's own CPU time above the import floor <= 5 s"}


# --- report --------------------------------------------------------------------------------------
def write_results(name: str, command: str, **payload) -> Path:
    """benchmarks/results/<name>-<date>.json with the command, this machine and `payload`; its path."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}-{date.today().isoformat()}.json"
    path.write_text(json.dumps({"command": command, "machine": machine(), **payload}, indent=2) + "\n")
    print(f"\nwrote {path.relative_to(ROOT)}")
    return path


def machine() -> dict:
    import lightning
    import torchvision

    cpu = platform.processor()
    if Path("/proc/cpuinfo").exists():
        cpu = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")), cpu)
    return {"cpu": cpu, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "python": platform.python_version(), "torch": torch.__version__, "torchvision": torchvision.__version__,
            "lightning": lightning.__version__, "platform": platform.platform()}


def met(row: dict) -> bool:
    if "a_plain_s" not in row:
        return row["own_cpu_s"] <= 5
    if "final_loss" in row:
        same = row["final_loss"]["a"] == row["final_loss"][f"b_steps_per_call_{row['b_steps_per_call']}"]
        return row["b_over_a"] <= 2 and same
    return row["b_over_a"] <= 1.25


def print_table(rows: list[dict]) -> None:
    """One line per workload: (a), (b) with one step per Lightning step and with K > 1, (c), the ratios
    to (a) and the target (which applies to the configured steps_per_call, marked *)."""
    print(f"\n{'workload':<76} {'plain a':>8} {'b K=1':>8} {'b K>1':>12} {'per-sample c':>12} {'K=1/a':>6} "
          f"{'K>1/a':>6} {'c/a':>6}  target")
    for r in rows:
        if "a_plain_s" in r:
            by_k, configured = r["b_template_s_by_steps_per_call"], str(r["b_steps_per_call"])
            (k_many,) = [k for k in by_k if k != "1"]
            one = f"{by_k['1']:.2f}s{'*' if configured == '1' else ' '}"
            many = f"{by_k[k_many]:.2f}s K={k_many}{'*' if configured == k_many else ' '}"
            print(f"{r['workload'][:76]:<76} {r['a_plain_s']:>7.2f}s {one:>8} {many:>12} "
                  f"{r['c_template_per_sample_s']:>11.2f}s {by_k['1'] / r['a_plain_s']:>6.2f} "
                  f"{by_k[k_many] / r['a_plain_s']:>6.2f} {r['c_over_a']:>6.2f}  "
                  f"{r['target']}: {'met' if r['met'] else 'NOT met'}")
            if "final_loss" in r:
                print(f"{'':<4}a: {r['a_is']}; final train loss: {r['final_loss']}; {r['history_rows']} history rows, "
                      f"largest |b - a| by steps_per_call {r['history_max_abs_difference_b_vs_a']}")
            if "bare_lightning_s" in r:
                bare = r["bare_lightning_s"]
                print(f"{'':<4}(a)'s work through a bare Lightning Trainer (no callbacks, logger, checkpoints or "
                      f"validation): {bare:.2f}s, bare / a {bare / r['a_plain_s']:.2f}")
            if r.get("a_lean_s"):
                print(f"{'':<4}a leaner loop computing only the history rows: {r['a_lean_s']:.2f}s, "
                      f"b / a_lean {r['b_template_s'] / r['a_lean_s']:.2f}")
        else:
            print(f"{r['workload']}: the job {r['job_cpu_s']:.2f} s CPU ({r['job_wall_s']:.2f} s wall, first "
                  f"training step at {r['first_step_s']:.2f} s), import lightning {r['import_lightning_cpu_s']:.2f} s "
                  f"CPU ({r['import_lightning_wall_s']:.2f} s wall); the job's own {r['own_cpu_s']:.2f} s CPU "
                  f"({r['runs'][0]['summary']})  {r['target']}: {'met' if r['met'] else 'NOT met'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a tenth of the steps: a smoke test, writes nothing")
    parser.add_argument("--only", nargs="*", default=None, help="iris xor mlp lenet startup")
    args = parser.parse_args()
    import logging
    import warnings

    warnings.filterwarnings("ignore")
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    jobs = {"iris": iris, "xor": xor, "mlp": lambda q: fashion("mlp", q), "lenet": lambda q: fashion("lenet", q),
            "startup": startup}
    unknown = sorted(set(args.only or []) - set(jobs))
    if unknown:
        parser.error(f"unknown workload(s) {' '.join(unknown)}; choose from {' '.join(jobs)}")
    rows = []
    for name in args.only or list(jobs):
        print(f"running {name} ...", flush=True)
        row = {"name": name, **jobs[name](args.quick)}
        if "a_plain_s" in row:
            row["b_over_a"] = row["b_template_s"] / row["a_plain_s"]
            row["b_over_a_by_steps_per_call"] = {
                k: v / row["a_plain_s"] for k, v in row["b_template_s_by_steps_per_call"].items()}
            row["c_over_a"] = row["c_template_per_sample_s"] / row["a_plain_s"]
            if "bare_lightning_s" in row:
                row["bare_lightning_over_a"] = row["bare_lightning_s"] / row["a_plain_s"]
        row["met"] = met(row)
        rows.append(row)
    print_table(rows)
    if not args.quick:
        part = "".join(f"-{name}" for name in args.only or [])  # a partial run keeps the full run's file
        command = "python -m benchmarks.cpu" + (f" --only {' '.join(args.only)}" if args.only else "")
        write_results(f"cpu{part}", command, rows=rows)


if __name__ == "__main__":
    main()
