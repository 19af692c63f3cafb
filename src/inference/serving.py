"""`src.serve`'s model side: a checkpoint (or an ONNX file that src.export wrote) as a LitServe API that
classifies batches of requests.

The HTTP processes turn each request into the model's input (src/inference/serve_requests.py); here
the requests of a batch are stacked into one tensor, normalised as `src.predict` normalises
(`Preprocessing.normalize`), classified (a checkpoint: `predict_proba` of the module rebuilt with its
calibration temperature, as `src.predict`; an ONNX file: its logits through `probabilities_from_logits`, or
the sigmoid probabilities a multi-label file already gives) and split back into one answer per request
(`ranked`: classes by probability, or for several labels per sample every label with its threshold).
Counters of requests and batches live in shared memory that `GET /info` reads.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import litserve as ls
import numpy as np
import torch

from src.inference.preprocessing import Preprocessing
from src.inference.serve_requests import COUNTERS


@dataclass
class Predictor:
    """A model ready for new inputs: probabilities of a raw batch (training pixel range or encoded rows)."""

    source: str
    kind: str  # "checkpoint" | "onnx"
    prep: Preprocessing
    model_name: str
    run_metrics: dict[str, float] = field(default_factory=dict)
    model: Any = None
    device: str = "cpu"
    task: str = "multiclass"  # "multilabel": one sigmoid probability per label, predicted above its threshold
    thresholds: list[float] | None = None

    def probabilities(self, raw: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            x = self.prep.normalize(raw)
            if self.kind == "onnx":
                from src.inference.onnx_model import probabilities_from_logits

                outputs = self.model(x)  # a multi-label file gives its sigmoid probabilities already
                return outputs.float() if self.task == "multilabel" else probabilities_from_logits(outputs)
            return self.model.predict_proba(x.to(self.device)).cpu()

    def info(self) -> dict[str, Any]:
        return {"source": self.source, "format": self.kind, "model": self.model_name, "data": self.prep.data_name,
                "classes": self.prep.class_names, "input_shape": list(self.prep.input_shape),
                "input": "table rows" if self.prep.is_table else "images",
                "table_columns": list((self.prep.table or {}).get("features") or []) or None,
                "metrics": self.run_metrics, "task": self.task,
                "thresholds": dict(zip(self.prep.class_names, self.thresholds)) if self.thresholds else None}


def run_metrics_of(ckpt_path: Path) -> dict[str, float]:
    """The test/validation metrics of the run record (`metrics.json`) of the run a checkpoint belongs to."""
    from src.runs.checkpoint import run_dir_of

    run_dir = run_dir_of(ckpt_path)
    record = (run_dir / "metrics.json") if run_dir is not None else None
    if record is None or not record.is_file():
        return {}
    metrics = json.loads(record.read_text()).get("metrics") or {}
    return {k: v for k, v in metrics.items() if k.startswith(("test/", "val/"))}


def load_predictor(path: str | Path, device: str = "cpu", with_model: bool = True) -> Predictor:
    """A checkpoint, or an ONNX file (`*.onnx`) with the `<file>.json` src.export writes beside it;
    `with_model=False`: only what describes it (for the HTTP side and /info)."""
    path = Path(str(path)).expanduser()
    if path.suffix.lower() == ".onnx":
        from src.inference.onnx_model import OnnxNet, metadata_of, preprocessing_from_metadata

        meta = metadata_of(path)
        prep = preprocessing_from_metadata(meta)
        ckpt_path = Path(str(meta.get("checkpoint") or ""))
        quantized = (meta.get("quantization") or {}).get("type")
        name = f"ONNX{f' ({quantized})' if quantized else ''} of {ckpt_path.name or 'a checkpoint'}"
        model = OnnxNet(path) if with_model else None
        multilabel = (meta.get("output") or {}).get("name") == "probabilities" and meta.get("thresholds") is not None
        return Predictor(str(path), "onnx", prep, name, run_metrics_of(ckpt_path) if meta.get("checkpoint") else {},
                         model, task="multilabel" if multilabel else "multiclass",
                         thresholds=[float(t) for t in meta["thresholds"]] if multilabel else None)

    from src.inference.model import rebuild_module
    from src.inference.preprocessing import preprocessing_of
    from src.runs.checkpoint import load_checkpoint

    path, ckpt = load_checkpoint(str(path))
    prep = preprocessing_of(ckpt, path)
    net = ((ckpt.get("hyper_parameters") or {}).get("net") or {}).get("_target_", "")
    name = f"{net.rsplit('.', 1)[-1] or 'net'} ({ckpt['run_config']['model'].get('_target_', '').rsplit('.', 1)[-1]})"
    model = rebuild_module(path, ckpt).to(device) if with_model else None
    thresholds = ckpt["state_dict"].get("thresholds")  # the buffer of a model with several labels per sample
    multilabel = str(ckpt["run_config"].get("data", {}).get("task_model", "")).endswith("MultiLabelModule")
    return Predictor(str(path), "checkpoint", prep, name, run_metrics_of(path), model, device,
                     "multilabel" if multilabel else "multiclass",
                     [float(t) for t in thresholds.tolist()] if multilabel and thresholds is not None else None)


def ranked(probabilities: torch.Tensor, class_names: list[str], top_k: int,
           thresholds: list[float] | None = None) -> list[dict[str, Any]]:
    """One answer per row: the predicted class and its probability, then the `top_k` classes by probability.
    The one place that turns probabilities into labels. With `thresholds` (several labels per sample) `top_k`
    does not apply: `labels` are those above their thresholds, and `scores` lists every label (most probable
    first) with its probability, threshold and whether it is above it, as src.predict decides."""
    if thresholds is not None:
        answers = []
        for row in probabilities.tolist():
            scores = sorted(({"label": name, "probability": p, "threshold": t, "above": p > t}
                             for name, p, t in zip(class_names, row, thresholds)), key=lambda s: -s["probability"])
            answers.append({"labels": [s["label"] for s in scores if s["above"]], "scores": scores})
        return answers
    values, index = probabilities.topk(min(top_k, probabilities.shape[1]), dim=1)
    answers = []
    for vals, idx in zip(values.tolist(), index.tolist()):
        names = [class_names[i] for i in idx]
        answers.append({"class": names[0], "probability": vals[0], "classes": names, "probabilities": vals})
    return answers


class ClassifierAPI(ls.LitAPI):
    """LitServe's API of one model: requests from the HTTP side, batched, classified, answered."""

    def __init__(self, model_path: str, counters, max_batch_size: int, batch_timeout: float) -> None:
        super().__init__(max_batch_size=max_batch_size, batch_timeout=batch_timeout)
        self.model_path, self.counters = model_path, counters

    def setup(self, device) -> None:
        self.predictor = load_predictor(self.model_path, str(device))
        self.shape = tuple(self.predictor.prep.input_shape)

    def decode_request(self, request) -> tuple[torch.Tensor, int]:  # unannotated: LitServe reads the JSON body
        raw = np.frombuffer(base64.b64decode(request["inputs"]), dtype=np.float32)
        return torch.from_numpy(raw.reshape(int(request["count"]), *self.shape).copy()), int(request["top_k"])

    def batch(self, inputs: list) -> list:
        return list(inputs)

    def unbatch(self, output: list) -> list:
        return output

    def predict(self, x: Any) -> Any:
        requests = x if isinstance(x, list) else [x]
        sizes = [len(inputs) for inputs, _ in requests]
        probabilities = self.predictor.probabilities(torch.cat([inputs for inputs, _ in requests]))
        with self.counters.get_lock():
            index = {name: i for i, name in enumerate(COUNTERS)}
            self.counters[index["requests"]] += len(requests)
            self.counters[index["items"]] += sum(sizes)
            self.counters[index["batches"]] += 1
            self.counters[index["largest_batch"]] = max(self.counters[index["largest_batch"]], len(requests))
        answers = [(p, k) for p, (_, k) in zip(probabilities.split(sizes), requests)]
        return answers if isinstance(x, list) else answers[0]

    def encode_response(self, output: tuple[torch.Tensor, int]) -> dict[str, Any]:
        probabilities, top_k = output
        return {"predictions": ranked(probabilities, self.predictor.prep.class_names, top_k,
                                      self.predictor.thresholds)}
