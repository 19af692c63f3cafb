"""`python -m src.serve` through real processes and real HTTP on free 127.0.0.1 ports: a digits MLP and a penguins
table model trained once, served from their checkpoints and from the digits model's ONNX file, and compared
with `src.predict`; bad requests, 50 concurrent requests, the model process killed (SIGKILL) and SIGTERM in the
middle of a request; the int8 export and its evaluation."""

from __future__ import annotations

import base64
import csv
import io
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import ROOT, CliResult, assert_one_sentence, run_module
from tests.own_data import penguins_csv

QUIET = ["callbacks.progress_bar=null", "callbacks.model_summary=null", "logger=none"]
ENV = dict(os.environ, PYTHONPATH=str(ROOT), HYDRA_FULL_ERROR="0", COLUMNS="160")


def run_cli(cwd: Path, module: str, *args: str) -> CliResult:
    result = CliResult(run_module(module, args, cwd, ENV), cwd)
    assert result.returncode == 0, result.output[-3000:]
    return result


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def request(port: int, path: str, body: bytes | None = None, content_type: str | None = None,
            timeout: float = 30) -> tuple[int, dict]:
    """(status, JSON answer) of GET (no body) or POST `path`."""
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=body, method="GET" if body is None else "POST")
    if content_type:
        req.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as answer:
            status, text = answer.status, answer.read()
    except urllib.error.HTTPError as error:
        status, text = error.code, error.read()
    return status, json.loads(text) if text.strip().startswith((b"{", b"[")) else {"text": text.decode()}


def multipart(files: list[bytes], fields: dict[str, str] | None = None) -> tuple[bytes, str]:
    boundary = "serve-test-boundary"
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
             for k, v in (fields or {}).items()]
    for i, data in enumerate(files):
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{i}.png"\r\n'
                     "Content-Type: image/png\r\n\r\n".encode() + data + b"\r\n")
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


class Server:
    """`python -m src.serve ckpt_path=... port=<free>` as its own process, its output in a file."""

    def __init__(self, cwd: Path, name: str, *args: str) -> None:
        self.port, self.log, self.stopping = free_port(), cwd / f"{name}.log", False
        self.proc = subprocess.Popen([sys.executable, "-m", "src.serve", f"port={self.port}", *args], cwd=cwd,
                                     env=ENV, stdout=open(self.log, "w"), stderr=subprocess.STDOUT)

    def wait_ready(self, timeout: float = 180) -> Server:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log.read_text()[-3000:]
            try:
                if request(self.port, "/health", timeout=2)[1].get("text") == "ok":
                    return self
            except OSError:
                pass
            time.sleep(0.3)
        raise AssertionError(f"the server did not start: {self.log.read_text()[-3000:]}")

    def stop(self, wait: bool = True) -> None:
        if self.proc.poll() is None and self.proc.returncode is None:
            if not self.stopping:
                self.proc.send_signal(signal.SIGTERM)
            self.stopping = True
            if not wait:
                return
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def png(pixels: np.ndarray, fmt: str = "PNG") -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(pixels).save(out, fmt)
    return out.getvalue()


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """Two trained runs, src.predict's answers on 20 images and 20 rows, an ONNX export with its int8 copy, and
    three servers: the digits checkpoint, the table checkpoint, the digits ONNX file (batch_timeout=1 s)."""
    import pandas as pd

    cwd = tmp_path_factory.mktemp("serve")
    penguins = pd.read_csv(penguins_csv())
    penguins.to_csv(cwd / "penguins.csv", index=False)
    digits, table = cwd / "digits/checkpoints/last.ckpt", cwd / "table/checkpoints/last.ckpt"
    run_cli(cwd, "src.train", "trainer.max_epochs=2", "hydra.run.dir=digits", *QUIET)
    servers = {"digits": Server(cwd, "digits", f"ckpt_path={digits}", "max_image_bytes=3000")}  # starts meanwhile
    run_cli(cwd, "src.train", "data=csv", "data.path=penguins.csv", "data.target=species", "data.missing=mean",
            "trainer.max_epochs=5", "hydra.run.dir=table", *QUIET)
    servers["table"] = Server(cwd, "table", f"ckpt_path={table}")

    # 20 images: 8x8 grey like the digits, larger ones (resized), RGB ones (converted to grey), two JPEGs
    rng = np.random.default_rng(0)
    (cwd / "images").mkdir()
    images = {}
    for i in range(20):
        size = 8 if i < 8 else 8 + i
        pixels = (rng.random((size, size, 3) if i % 3 == 0 else (size, size)) * 255).astype(np.uint8)
        name = f"{i:02d}.{'jpg' if i in (5, 13) else 'png'}"
        images[name] = png(pixels, "JPEG" if name.endswith("jpg") else "PNG")
        (cwd / "images" / name).write_bytes(images[name])
    rows = penguins.drop(columns=["species"]).iloc[list(range(0, 340, 17))]  # row 340 // 17 = 20 rows, a few missing
    rows.to_csv(cwd / "rows.csv", index=False)
    run_cli(cwd, "src.predict", f"ckpt_path={digits}", "inputs=images", "output=images.csv")
    run_cli(cwd, "src.predict", f"ckpt_path={table}", "inputs=rows.csv", "output=rows.csv.out")
    exported = run_cli(cwd, "src.export", f"ckpt_path={digits}", "quantize=int8", "calibration_samples=256")
    servers["onnx"] = Server(cwd, "onnx", f"ckpt_path={digits.with_suffix('.onnx')}", "batch_timeout=1.0", "timeout=4")
    try:
        yield {"cwd": cwd, "servers": {k: s.wait_ready() for k, s in servers.items()}, "images": images,
               "rows": rows, "exported": exported, "digits": digits,
               "predicted_images": {Path(r["file"]).name: r for r in csv.DictReader(open(cwd / "images.csv"))},
               "predicted_rows": list(csv.DictReader(open(cwd / "rows.csv.out")))}
    finally:
        for server in servers.values():
            server.stop(wait=False)
        for server in servers.values():
            server.stop()


def test_served_images_get_src_predicts_classes_and_probabilities(served):
    port, expected = served["servers"]["digits"].port, served["predicted_images"]
    names = sorted(served["images"])
    answers = {}
    for name in names[:10]:  # one raw image per request
        status, answer = request(port, "/predict", served["images"][name], "image/png")
        assert status == 200, answer
        answers[name] = answer["predictions"][0]
    body, content_type = multipart([served["images"][n] for n in names[10:15]], {"top_k": "3"})
    status, answer = request(port, "/predict", body, content_type)
    assert status == 200 and all(len(p["classes"]) == 3 for p in answer["predictions"]), answer
    answers |= dict(zip(names[10:15], answer["predictions"]))
    encoded = [base64.b64encode(served["images"][n]).decode() for n in names[15:]]
    status, answer = request(port, "/predict", json.dumps({"images": encoded}).encode(), "application/json")
    assert status == 200, answer
    answers |= dict(zip(names[15:], answer["predictions"]))
    for name in names:
        assert answers[name]["class"] == expected[name]["class"], name
        assert abs(answers[name]["probability"] - float(expected[name]["probability"])) < 1e-5, name
        assert answers[name]["probabilities"] == sorted(answers[name]["probabilities"], reverse=True)


def test_served_table_rows_get_src_predicts_probabilities(served):
    port, expected = served["servers"]["table"].port, served["predicted_rows"]
    rows = json.loads(served["rows"].to_json(orient="records"))  # missing values as null (filled: data.missing=mean)
    status, answer = request(port, "/predict?top_k=3", json.dumps({"rows": rows}).encode(), "application/json")
    assert status == 200, answer
    assert len(answer["predictions"]) == len(expected) == 20
    for got, want in zip(answer["predictions"], expected):
        assert got["class"] == want["class"]
        for name, p in zip(got["classes"], got["probabilities"]):
            assert abs(p - float(want[f"p_{name}"])) < 1e-5, (name, p, want)
    status, info = request(port, "/info")
    assert info["input"] == "table rows" and info["classes"] == ["Adelie", "Chinstrap", "Gentoo"]
    assert "island" in info["table_columns"] and "test/acc" in info["metrics"]


def test_fifty_concurrent_requests_are_all_answered_and_batched(served):
    port, images = served["servers"]["digits"].port, served["images"]
    names = sorted(images) * 3
    before = request(port, "/info")[1]["served"]

    def ask(name):
        return name, request(port, "/predict", images[name], "image/png", timeout=60)

    with ThreadPoolExecutor(50) as pool:
        answered = list(pool.map(ask, names[:50]))
    assert all(status == 200 for _, (status, _) in answered), answered
    for name, (_, answer) in answered:
        assert answer["predictions"][0]["class"] == served["predicted_images"][name]["class"]
    after = request(port, "/info")[1]
    assert after["served"]["requests"] - before["requests"] == 50
    assert after["served"]["received"] - before["received"] == 50 and after["served"]["refused"] == before["refused"]
    assert after["served"]["batches"] - before["batches"] < 50  # some requests shared a batch
    assert after["served"]["largest_batch"] > 1
    assert after["classes"] == [str(d) for d in range(10)] and after["input_shape"] == [1, 8, 8]
    assert after["metrics"]["test/acc"] > 0.5 and after["server"]["max_batch_size"] == 32


def one_sentence(answer: dict) -> str:
    sentence = answer["error"]
    assert "\n" not in sentence and len(sentence) <= 300 and sentence.endswith(".") and "Traceback" not in sentence
    return sentence


def test_every_bad_request_gets_a_4xx_and_one_sentence_and_the_server_goes_on(served):
    digits, table = served["servers"]["digits"].port, served["servers"]["table"].port
    good = served["images"]["00.png"]
    big = png((np.random.default_rng(1).random((64, 64, 3)) * 255).astype(np.uint8))  # > max_image_bytes=3000
    rows = json.loads(served["rows"].to_json(orient="records"))
    bad = [
        (digits, b"these bytes are not an image", "image/png", 400, "not a readable image"),
        (digits, b"", "image/png", 400, "body is empty"),
        (digits, good, "text/plain", 415, "Content-Type text/plain"),
        (digits, big, "image/png", 413, "max_image_bytes=3,000"),
        (digits, b"{not json", "application/json", 400, "not valid JSON"),
        (digits, json.dumps({"images": ["%%%"]}).encode(), "application/json", 400, "not base64"),
        (table, json.dumps({"rows": [{k: v for k, v in rows[0].items() if k != "island"}]}).encode(),
         "application/json", 422, "island"),
        (table, json.dumps({"rows": [rows[0] | {"bill_length_mm": "long"}]}).encode(), "application/json", 422,
         "not a number"),
        (table, good, "image/png", 415, "JSON rows"),
    ]
    refused = [request(port, "/info")[1]["served"]["refused"] for port in (digits, table)]
    for port, body, content_type, status, fragment in bad:
        got, answer = request(port, "/predict", body, content_type)
        assert got == status and fragment in one_sentence(answer), (got, answer, fragment)
        assert request(port, "/predict", good if port == digits else json.dumps(rows[:1]).encode(),
                       "image/png" if port == digits else "application/json")[0] == 200
    got, answer = request(digits, "/predict?top_k=zero", good, "image/png")
    assert got == 400 and "top_k must be a positive integer" in one_sentence(answer)
    assert [request(port, "/info")[1]["served"]["refused"] - n for port, n in zip((digits, table), refused)] == [7, 3]
    # a grey model converts an RGB image as src.predict does (test_served_images_...): not refused
    assert served["servers"]["digits"].proc.poll() is None and served["servers"]["table"].proc.poll() is None


def test_the_onnx_file_is_served_with_the_checkpoints_probabilities(served):
    names = sorted(served["images"])
    body, content_type = multipart([served["images"][n] for n in names], {"top_k": "10"})
    answers = [request(served["servers"][which].port, "/predict", body, content_type)[1]["predictions"]
               for which in ("digits", "onnx")]
    for checkpoint, onnx in zip(*answers):
        assert checkpoint["classes"] == onnx["classes"]
        assert np.allclose(checkpoint["probabilities"], onnx["probabilities"], atol=1e-4, rtol=0)
    info = request(served["servers"]["onnx"].port, "/info")[1]
    assert info["format"] == "onnx" and info["metrics"]["test/acc"] > 0.5


def model_process(server_pid: int) -> int | None:
    """The pid of the server's model process (LitServe starts it with multiprocessing's spawn)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            if ppid == server_pid and b"spawn_main" in (stat.parent / "cmdline").read_bytes():
                return int(stat.parent.name)
        except (OSError, IndexError, ValueError):
            continue
    return None


def wait_for_request(port: int, received: int) -> None:
    deadline = time.monotonic() + 30
    while request(port, "/info")[1]["served"]["received"] == received and time.monotonic() < deadline:
        time.sleep(0.02)  # until the HTTP side has passed the request on: it then waits for its batch


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds the model process through /proc")
def test_a_killed_model_process_is_restarted_and_its_request_gets_a_504(served):
    server = served["servers"]["onnx"]  # timeout=4: a request the model does not answer gets a 504 after ~6 s
    killed, answers = model_process(server.proc.pid), []
    assert killed is not None
    received = request(server.port, "/info")[1]["served"]["received"]
    image = served["images"]["03.png"]
    asking = threading.Thread(target=lambda: answers.append(request(server.port, "/predict", image, "image/png")))
    asking.start()
    wait_for_request(server.port, received)
    os.kill(killed, signal.SIGKILL)  # while it waits for its batch (batch_timeout=1 s), holding the request
    asking.join(30)
    assert answers and answers[0][0] == 504 and "did not answer" in one_sentence(answers[0][1]), answers
    deadline = time.monotonic() + 120
    while model_process(server.proc.pid) in (None, killed) and time.monotonic() < deadline:
        time.sleep(0.2)
    server.wait_ready()
    status, answer = request(server.port, "/predict", image, "image/png")
    assert status == 200 and answer["predictions"][0]["class"] == served["predicted_images"]["03.png"]["class"]


def test_sigterm_during_a_request_answers_it_and_exits_with_0(served):
    server = served["servers"]["onnx"]  # batch_timeout=1 s: a request waits a second for its batch
    image, answers = served["images"]["03.png"], []
    received = request(server.port, "/info")[1]["served"]["received"]
    asking = threading.Thread(target=lambda: answers.append(request(server.port, "/predict", image, "image/png")))
    asking.start()
    wait_for_request(server.port, received)
    server.proc.send_signal(signal.SIGTERM)
    asking.join(30)
    assert answers and answers[0][0] == 200, (answers, server.log.read_text()[-3000:])
    assert answers[0][1]["predictions"][0]["class"] == served["predicted_images"]["03.png"]["class"]
    assert server.proc.wait(60) == 0, server.log.read_text()[-3000:]
    with pytest.raises(OSError):
        request(server.port, "/health", timeout=2)


def test_the_int8_export_is_smaller_and_src_eval_reports_its_test_metrics(served):
    cwd, digits = served["cwd"], served["digits"]
    float_file, int8_file = digits.with_suffix(".onnx"), digits.with_name("last.int8.onnx")
    assert int8_file.stat().st_size < float_file.stat().st_size
    meta = json.loads(int8_file.with_name("last.int8.onnx.json").read_text())
    assert meta["quantization"]["calibration"] == "256 inputs of the training split"
    assert "predicted class as the float file's for" in served["exported"].stdout
    assert "/256 calibration inputs" in served["exported"].stdout
    evaluated = run_cli(cwd, "src.eval", f"ckpt_path={int8_file}", "logger=none")
    (report,) = (cwd / "digits" / "eval").glob("*/metrics.json")
    record = json.loads(report.read_text())
    assert record["ckpt_path"] == str(int8_file.resolve())
    trained = json.loads((cwd / "digits" / "metrics.json").read_text())["metrics"]["test/acc"]
    assert abs(record["metrics"]["test/acc"] - trained) < 0.03, (record["metrics"], trained)
    assert "test: acc=" in evaluated.stdout


@pytest.mark.parametrize("args, fragment", [
    (["port=80"], "port must be an integer of at least 1024"),
    (["max_batch_size=0"], "max_batch_size must be an integer of at least 1"),
    (["host=example.org"], "host must be one of"),
    (["batch_timeout=-1"], "batch_timeout must be a number of at least 0"),
])
def test_bad_settings_end_in_one_sentence(cli_in_process, args, fragment):
    assert_one_sentence(cli_in_process("src.serve", "ckpt_path=model.ckpt", *args), fragment)


def test_a_missing_model_and_a_quantized_torchscript_end_in_one_sentence(cli_in_process):
    assert_one_sentence(cli_in_process("src.serve", "ckpt_path=missing.onnx"), "there is no ONNX file at missing.onnx")
    assert_one_sentence(cli_in_process("src.serve", "ckpt_path=missing.ckpt"), "no checkpoint at missing.ckpt")
    assert_one_sentence(cli_in_process("src.export", "ckpt_path=missing.ckpt", "format=torchscript",
                                       "quantize=int8"), "quantize='int8' is not offered for format=torchscript")
