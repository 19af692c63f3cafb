"""`python -m src.serve ckpt_path=... [port=8000 host=127.0.0.1 workers=1 max_batch_size=32 ...]`: an HTTP
prediction server of a checkpoint, or of an ONNX file that `src.export` wrote (`ckpt_path=model.onnx`), on
LitServe.

- `POST /predict`: an image (raw body or multipart), several images (multipart files or JSON base64),
  or JSON rows for a table model; `top_k` in the query, form or JSON. Answers
  `{"predictions": [{"class", "probability", "classes", "probabilities"}, ...]}`: the probabilities
  `src.predict` gives (same preprocessing, the checkpoint's calibration temperature). A model with several
  labels per sample answers `{"predictions": [{"labels", "scores": [{"label", "probability", "threshold",
  "above"}, ...]}, ...]}`: every label, most probable first, and the labels above their thresholds.
- Requests that arrive together are classified in one batch (`max_batch_size`, `batch_timeout`).
- `GET /health` ("ok" once the model is loaded), `GET /info` (classes, input shape, model, the run's
  metrics, the task and per-label thresholds, batching counters).
- A bad request gets a 4xx and `{"error": "<one sentence>"}`; the server goes on serving.
- SIGTERM: the HTTP processes stop accepting connections and finish the requests in flight, then the
  model processes stop, and the command exits with 0.
- A model process that dies (SIGKILL, out of memory) is started again; a request it held gets a 504 after
  `timeout` seconds, and the requests after it are answered once the new process has loaded the model.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import socket
import sys
from typing import Any

import hydra
from omegaconf import DictConfig

import src.config.resolvers  # noqa: F401
from src.config.choices import check_command_line
from src.errors import UserError, exits_on_user_error, require

log = logging.getLogger(__name__)

HOSTS = ("127.0.0.1", "0.0.0.0", "::")  # the hosts LitServe binds


def positive(cfg: DictConfig, key: str, minimum: float = 1, kind: type = int) -> Any:
    value = cfg.get(key)
    try:
        number = kind(value)
        valid = number >= minimum and (kind is not int or float(value) == number)
    except (TypeError, ValueError):
        valid = False
    require(valid and not isinstance(value, bool),
            f"{key} must be {'an integer' if kind is int else 'a number'} of at least {minimum}, got {value!r}.")
    return number


def settings(cfg: DictConfig) -> dict[str, Any]:
    """The command line's settings, checked (one sentence for the first bad one)."""
    port = positive(cfg, "port", 1024)
    require(port <= 65535, f"port must be from 1024 to 65535, got {port}.")
    host = str(cfg.get("host"))
    require(host in HOSTS, f"host must be one of {', '.join(HOSTS)}, got {host!r}.")
    device = str(cfg.get("device") or "cpu")
    require(device in ("cpu", "cuda"), f"device must be cpu or cuda, got {device!r}.")
    values = {"host": host, "port": port, "device": device, "invert": bool(cfg.get("invert"))}
    for key in ("workers", "max_batch_size", "top_k", "max_image_bytes", "max_items"):
        values[key] = positive(cfg, key)
    for key in ("batch_timeout", "timeout", "drain_timeout"):
        values[key] = positive(cfg, key, 0, float)
    require(bool(str(cfg.get("ckpt_path") or "").strip()),
            "ckpt_path is required: pass ckpt_path=logs/train/runs/<run>/checkpoints/last.ckpt (or model.onnx).")
    return values


def check_port_free(host: str, port: int) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise UserError(f"port {port} on {host} cannot be used ({exc.strerror or exc}); pass another port=.") \
                from None


def serve(cfg: DictConfig) -> None:
    s = settings(cfg)
    # Imported here: a command Hydra refuses (a misspelt override, --help) ends before torch and LitServe load.
    import litserve as ls
    from fastapi.responses import JSONResponse

    from src.inference.serve_requests import PredictRequests
    from src.inference.serving import COUNTERS, ClassifierAPI, load_predictor

    described = load_predictor(cfg.ckpt_path, with_model=False)  # the model's description, and its errors, here
    if s["device"] == "cuda":
        import torch

        require(torch.cuda.is_available() and described.kind == "checkpoint",
                "device=cuda needs a visible CUDA GPU and a checkpoint (ONNX files run on the CPU); pass device=cpu.")
    prep = described.prep
    require(prep.is_image or prep.is_table,
            f"src.serve takes images or table rows, but {described.source} was trained on {prep.data_name}, whose "
            f"inputs have shape {list(prep.input_shape)}; use src.eval for such data.")
    check_port_free(s["host"], s["port"])

    counters = multiprocessing.get_context("spawn").Array("q", len(COUNTERS))
    api = ClassifierAPI(described.source, counters, s["max_batch_size"], s["batch_timeout"])
    reading = dict(path="/predict", input_shape=list(prep.input_shape), max_value=prep.max_value, invert=s["invert"],
                   table=prep.table, num_classes=len(prep.class_names), top_k=s["top_k"],
                   max_image_bytes=s["max_image_bytes"], max_items=s["max_items"], counters=counters,
                   answer_timeout=s["timeout"] + s["batch_timeout"] + 1)
    server = ls.LitServer(api, accelerator=s["device"], workers_per_device=s["workers"], timeout=s["timeout"],
                          info_path="/server-info", middlewares=[(PredictRequests, reading)],
                          restart_workers=True)
    server.uvicorn_graceful_timeout = s["drain_timeout"]
    settings_info = {k: s[k] for k in ("workers", "max_batch_size", "batch_timeout", "top_k", "max_image_bytes",
                                       "max_items")}

    async def info() -> JSONResponse:
        with counters.get_lock():
            served = dict(zip(COUNTERS, counters[:]))
        return JSONResponse({**described.info(), "server": settings_info, "served": served})

    server.app.add_api_route("/info", info, methods=["GET"])
    stop_on_sigterm(s["drain_timeout"])
    print(f"serving {described.source} ({described.model_name}, {len(prep.class_names)} "
          f"{'labels' if described.task == 'multilabel' else 'classes'}) on "
          f"http://{s['host']}:{s['port']}: POST /predict, GET /health, GET /info", flush=True)
    try:
        server.run(host=s["host"], port=s["port"], generate_client_file=False, log_level="warning")
    except KeyboardInterrupt:  # stopped before the server had started: stop what it had started
        for child in multiprocessing.active_children():
            child.terminate()
            child.join(10)
    print("server stopped", flush=True)


def stop_on_sigterm(drain_timeout: float) -> None:
    """SIGTERM: stop the HTTP processes first (uvicorn's own graceful shutdown: no new connections, the
    requests in flight answered by the still running model processes), then LitServe's shutdown of the
    rest, as on Ctrl+C. The processes forked from this one inherit the handler; they keep the default."""
    owner = os.getpid()

    def on_sigterm(signum, frame) -> None:
        if os.getpid() != owner:
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        signal.signal(signum, signal.SIG_IGN)  # once
        print("SIGTERM: finishing the requests in flight, then stopping", flush=True)
        fronts = [p for p in multiprocessing.active_children() if p.name.startswith("LitServer")]
        for process in fronts:
            process.terminate()
        for process in fronts:
            process.join(drain_timeout + 5)
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_sigterm)


@hydra.main(version_base="1.3", config_path="../conf", config_name="serve")
@exits_on_user_error
def main(cfg: DictConfig) -> None:
    serve(cfg)


if __name__ == "__main__":
    exits_on_user_error(check_command_line)(sys.argv[1:])
    main()
