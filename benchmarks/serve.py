"""HTTP serving and int8 benchmark: `python -m benchmarks.serve [--epochs-lenet 3] [--requests 200]`.

Trains an MLP on the 8x8 digits and LeNet-5 on Fashion-MNIST (`src.train`), exports each to ONNX with an
int8 copy (`src.export format=onnx quantize=int8`), evaluates both files on the test split (`src.eval`),
then serves the checkpoint, the float ONNX file and the int8 file one after the other (`src.serve` on a free
127.0.0.1 port) and sends each
- `--requests` requests one at a time (batch 1, concurrency 1), and
- `2 x --requests` requests from 8 client threads (concurrency 8, the server batches them),
one test image per request (a PNG, decoded and resized by the server). Reports requests/s and p50/p95
latency per setting, the int8 file's size ratio and test-accuracy loss, and the model-only batch-1 latency
of the float and int8 files in ONNX Runtime (one thread, the same inputs, in this process). Prints a
table and writes benchmarks/results/serve.json. docs/deployment.md shows the figures.
"""

from __future__ import annotations

import argparse
import datetime
import io
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
ENV = dict(os.environ, PYTHONPATH=str(ROOT), HYDRA_FULL_ERROR="0")
QUIET = ["callbacks.progress_bar=null", "callbacks.model_summary=null", "logger=none"]


def run(cwd: Path, *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", *args], cwd=cwd, env=ENV, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return done.stdout


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def post(port: int, body: bytes) -> float:
    """Seconds one POST /predict of a PNG took (a non-200 answer stops the benchmark)."""
    req = urllib.request.Request(f"http://127.0.0.1:{port}/predict", data=body, method="POST",
                                 headers={"Content-Type": "image/png"})
    start = time.perf_counter()
    with urllib.request.urlopen(req, timeout=60) as answer:
        answer.read()
        if answer.status != 200:
            raise SystemExit(f"the server answered {answer.status}")
    return time.perf_counter() - start


def load(port: int, images: list[bytes], requests: int, concurrency: int) -> dict[str, float]:
    latencies: list[float] = []
    lock, counter = threading.Lock(), iter(range(requests))

    def client() -> None:
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                return
            seconds = post(port, images[i % len(images)])
            with lock:
                latencies.append(seconds)

    for image in images[:5]:
        post(port, image)  # warm-up
    start = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    ms = np.array(latencies) * 1000
    return {"requests": requests, "concurrency": concurrency, "requests_per_s": requests / wall,
            "p50_ms": float(np.percentile(ms, 50)), "p95_ms": float(np.percentile(ms, 95))}


def serve_and_load(cwd: Path, model: Path, images: list[bytes], requests: int) -> dict:
    port = free_port()
    log = open(cwd / f"serve-{model.name}.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "src.serve", f"ckpt_path={model}", f"port={port}"], cwd=cwd,
                            env=ENV, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 300
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as answer:
                    if answer.read() == b"ok":
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"src.serve did not start: {(cwd / f'serve-{model.name}.log').read_text()[-2000:]}")
            time.sleep(0.3)
        single = load(port, images, requests, 1)
        eight = load(port, images, 2 * requests, 8)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/info", timeout=10) as answer:
            served = json.loads(answer.read())["served"]
        return {"batch_1": single, "concurrency_8": eight, "largest_batch": served["largest_batch"]}
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(120)


def model_only_latency(float_file: Path, int8_file: Path, inputs: np.ndarray, repeats: int = 2000) -> dict:
    """Median ms of one batch-1 run of each file in ONNX Runtime (one thread), interleaved."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    sessions = {name: onnxruntime.InferenceSession(str(f), options, providers=["CPUExecutionProvider"])
                for name, f in (("float", float_file), ("int8", int8_file))}
    times: dict[str, list[float]] = {name: [] for name in sessions}
    for i in range(repeats):
        x = inputs[i % len(inputs)][None]
        for name, session in sessions.items():
            start = time.perf_counter()
            session.run(None, {"input": x})
            times[name].append(time.perf_counter() - start)
    return {name: float(np.median(t[repeats // 10:]) * 1000) for name, t in times.items()}


def test_images(datamodule_cfg: list[str], cwd: Path, count: int = 50) -> tuple[list[bytes], np.ndarray]:
    """PNGs of the first test images (pixels as the data set stores them) and their normalised inputs."""
    from PIL import Image

    from src import builders
    from src.config.compose import compose_run_config

    cfg = compose_run_config(datamodule_cfg, cwd / "compose", cwd=cwd)
    dm = builders.build_datamodule({**cfg.data, "device": "cpu"})
    dm.prepare_data()
    dm.setup("test")
    raw = dm.test_split.inputs[:count]
    scale = 255.0 / dm.transform.max_value
    pngs = []
    for x in raw:
        out = io.BytesIO()
        Image.fromarray((x[0].float() * scale).round().clamp(0, 255).byte().numpy(), "L").save(out, "PNG")
        pngs.append(out.getvalue())
    return pngs, dm.transform(raw).numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs-lenet", type=int, default=3)
    parser.add_argument("--epochs-mlp", type=int, default=20)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--note", default="")
    args = parser.parse_args()

    cwd = Path(tempfile.mkdtemp(prefix="serve-bench-"))
    setups = {"mlp-digits": (["data=digits", "model=mlp"], args.epochs_mlp),
              "lenet-fashion_mnist": (["data=fashion_mnist", "model=lenet"], args.epochs_lenet)}
    results: dict = {"date": datetime.date.today().isoformat(), "note": args.note, "cpu_count": os.cpu_count(),
                     "machine": platform.platform(), "load_average_at_start": os.getloadavg(),
                     "command": "python -m benchmarks.serve " + " ".join(sys.argv[1:]), "models": {}}
    for name, (choice, epochs) in setups.items():
        run(cwd, "src.train", *choice, f"trainer.max_epochs={epochs}", f"hydra.run.dir={name}", *QUIET)
        ckpt = cwd / name / "checkpoints" / "last.ckpt"
        run(cwd, "src.export", f"ckpt_path={ckpt}", "format=onnx", "quantize=int8")
        float_file, int8_file = ckpt.with_suffix(".onnx"), ckpt.with_name("last.int8.onnx")
        accuracy = {}
        for label, f in (("float", float_file), ("int8", int8_file)):
            run(cwd, "src.eval", f"ckpt_path={f}", f"hydra.run.dir={name}/eval-{label}", "logger=none")
            accuracy[label] = json.loads((cwd / name / f"eval-{label}" / "metrics.json").read_text())["metrics"][
                "test/acc"]
        images, inputs = test_images(choice, cwd)
        row = {"epochs": epochs, "test_acc": accuracy,
               "accuracy_loss_points": 100 * (accuracy["float"] - accuracy["int8"]),
               "bytes": {"float": float_file.stat().st_size, "int8": int8_file.stat().st_size},
               "model_only_batch_1_ms": model_only_latency(float_file, int8_file, inputs), "http": {}}
        row["size_ratio"] = row["bytes"]["float"] / row["bytes"]["int8"]
        for label, model in (("checkpoint", ckpt), ("onnx float", float_file), ("onnx int8", int8_file)):
            row["http"][label] = serve_and_load(cwd, model, images, args.requests)
        results["models"][name] = row
    results["load_average_at_end"] = os.getloadavg()

    print(f"\nsrc.serve on {os.cpu_count()} cores (load average {results['load_average_at_start'][0]:.1f} at the "
          f"start, {results['load_average_at_end'][0]:.1f} at the end): one PNG per request")
    print(f"{'model':22} {'served file':12} {'b1 req/s':>9} {'b1 p50':>8} {'b1 p95':>8} {'c8 req/s':>9} "
          f"{'c8 p50':>8} {'c8 p95':>8} {'batch':>6}")
    for name, row in results["models"].items():
        for label, h in row["http"].items():
            b, c = h["batch_1"], h["concurrency_8"]
            print(f"{name:22} {label:12} {b['requests_per_s']:9.1f} {b['p50_ms']:6.1f}ms {b['p95_ms']:6.1f}ms "
                  f"{c['requests_per_s']:9.1f} {c['p50_ms']:6.1f}ms {c['p95_ms']:6.1f}ms {h['largest_batch']:6d}")
    print(f"\n{'model':22} {'float acc':>9} {'int8 acc':>9} {'loss (pts)':>10} {'size ratio':>10} "
          f"{'float b1 ms':>11} {'int8 b1 ms':>10}")
    for name, row in results["models"].items():
        m = row["model_only_batch_1_ms"]
        print(f"{name:22} {row['test_acc']['float']:9.4f} {row['test_acc']['int8']:9.4f} "
              f"{row['accuracy_loss_points']:10.2f} {row['size_ratio']:9.2f}x {m['float']:11.4f} {m['int8']:10.4f}")
    out = ROOT / "benchmarks" / "results" / "serve.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwritten: {out.relative_to(ROOT)}")
    shutil.rmtree(cwd, ignore_errors=True)  # the runs, files and server logs of this benchmark


if __name__ == "__main__":
    main()
