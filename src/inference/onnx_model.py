"""An ONNX file that `src.export` wrote, used as a classifier: its ONNX Runtime session, the preprocessing
and class names of the `<file>.json` beside it, and the module of its checkpoint with the ONNX file as the
net (what `src.eval ckpt_path=model.onnx` tests: the file's outputs, with the checkpoint's data).

The exported net already divides its logits by the checkpoint's calibration temperature (the loader
wraps the net before export), so the file's logits are the calibrated ones.
A file of a model with several labels per sample gives sigmoid probabilities (src.export wraps the net
in `SigmoidOutputs`); as the net of its module it is read back as logits (`LogitsOfProbabilities`), so the
module's sigmoid gives the file's probabilities again and src.eval scores them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from src.errors import UserError, require
from src.inference.preprocessing import Preprocessing


def metadata_of(path: str | Path) -> dict[str, Any]:
    """The `<file>.json` that src.export writes beside an ONNX file."""
    path = Path(path)
    require(path.is_file(), f"there is no ONNX file at {path}; export one with python -m src.export ckpt_path=... "
                            "format=onnx.")
    meta_path = path.with_name(path.name + ".json")
    require(meta_path.is_file(), f"{meta_path} is missing: the ONNX file needs the preprocessing file src.export "
                                 "writes beside it; export the model again.")
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError) as exc:
        raise UserError(f"{meta_path} cannot be read as JSON ({exc}); export the model again.") from None
    require(isinstance(meta, dict) and "class_names" in meta and "input" in meta,
            f"{meta_path} is not the preprocessing file src.export writes; export the model again.")
    return meta


def preprocessing_from_metadata(meta: dict[str, Any]) -> Preprocessing:
    """The `Preprocessing` src.predict would take from the checkpoint, rebuilt from the export's JSON."""
    prep = meta.get("preprocessing") or {}
    transform = {k: prep[k] for k in ("mean", "std", "max_value")} if "mean" in prep else None
    shape = tuple(int(d) for d in meta["input"]["shape"][1:])
    return Preprocessing(str(meta.get("data", "data")), shape, [str(n) for n in meta["class_names"]], transform,
                         prep.get("table"))


def onnx_session(path: str | Path, threads: int | None = None):
    """An ONNX Runtime CPU session of the file; one sentence if it cannot be read."""
    try:
        import onnxruntime
    except ImportError:
        raise UserError("serving or evaluating an ONNX file needs onnxruntime; install it with: pip install "
                        "onnxruntime.") from None
    options = onnxruntime.SessionOptions()
    if threads:
        options.intra_op_num_threads = int(threads)
    try:
        return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph/... types
        reason = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise UserError(f"{path} is not a model ONNX Runtime can run ({reason}); export it again with "
                        "python -m src.export.") from None


def probabilities_from_logits(logits: torch.Tensor) -> torch.Tensor:
    """The exported net's outputs as class probabilities, as the modules compute them: softmax over the
    classes, or for one output (the binary module's logit) [1 - sigmoid, sigmoid]."""
    if logits.ndim == 1 or logits.shape[1] == 1:
        p = torch.sigmoid(logits.float().reshape(-1, 1))
        return torch.cat([1 - p, p], dim=1)
    return torch.softmax(logits.float(), dim=1)


class OnnxNet(nn.Module):
    """An ONNX Runtime session as a net: a float32 batch in, the file's outputs out (no gradients)."""

    def __init__(self, path: str | Path, threads: int | None = None) -> None:
        super().__init__()
        self.path = str(path)
        self.session = onnx_session(path, threads)
        self.input_name = self.session.get_inputs()[0].name

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch = x.detach().to("cpu", torch.float32).contiguous().numpy()
        return torch.from_numpy(self.session.run(None, {self.input_name: batch})[0]).to(x.device)


class LogitsOfProbabilities(nn.Module):
    """A net that outputs probabilities, as one that outputs logits: log(p / (1 - p)), in float64 so that the
    module's sigmoid gives p back to float32 rounding. A probability that rounded to exactly 1 or 0 gives the
    logit 40 or -200 (whose float32 sigmoid is that 1 or 0 again), so the loss stays finite."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = torch.logit(self.net(x).double())
        return torch.nan_to_num(logits, posinf=40.0, neginf=-200.0).float()


def onnx_module(path: str | Path) -> tuple[Path, dict[str, Any], Any]:
    """(the ONNX file's path, its checkpoint, that checkpoint's module with the ONNX file as its net): the
    checkpoint (named in `<file>.json`) gives the data and the metrics' setup, the file every output."""
    from src.inference.model import rebuild_module
    from src.runs.checkpoint import load_checkpoint

    path = Path(str(path)).expanduser()
    meta = metadata_of(path)
    require(bool(meta.get("checkpoint")), f"{path}.json names no checkpoint; export the model again.")
    ckpt_path, ckpt = load_checkpoint(meta["checkpoint"])
    module = rebuild_module(ckpt_path, ckpt, calibrated=False)  # the file holds the temperature already
    module.net = OnnxNet(path)
    if getattr(module, "task", None) == "multilabel":  # the file gives probabilities, the module expects logits
        require((meta.get("output") or {}).get("name") == "probabilities",
                f"{path} gives {(meta.get('output') or {}).get('name')!r} outputs, not the per-label probabilities "
                "src.export writes for a model with several labels per sample; export the checkpoint again.")
        module.net = LogitsOfProbabilities(module.net)
    return path, ckpt, module
