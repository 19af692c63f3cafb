"""`src.export ... format=onnx quantize=int8`: an int8 copy of the exported ONNX file, by ONNX Runtime's
static quantization (weights and activations in int8, QDQ format, weights per output channel), its
activation ranges calibrated on a sample of the checkpoint's training split (MinMax).

Written beside the float file as `<name>.int8.onnx`, with `<name>.int8.onnx.json` (the float file's
preprocessing plus how it was quantized); `src.eval ckpt_path=<name>.int8.onnx` tests it and
`src.serve ckpt_path=<name>.int8.onnx` serves it.
"""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from src.errors import UserError

log = logging.getLogger(__name__)


def int8_path(float_path: Path) -> Path:
    return float_path.with_name(float_path.name.removesuffix(".onnx") + ".int8.onnx")


def calibration_batches(ckpt: dict[str, Any], samples: int, seed: int = 0) -> list[np.ndarray]:
    """About `samples` inputs of the training split, as the net receives them (normalised / encoded), in
    shuffled batches of the training loader (the run's own augmentations, if any, applied)."""
    from src import builders
    from src.runs.checkpoint import training_paths

    datamodule = builders.build_datamodule({**training_paths(ckpt["run_config"]), "device": "cpu"})
    datamodule.prepare_data()
    datamodule.setup("fit")
    batches, taken = [], 0
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for batch in datamodule.train_dataloader():
            x = (batch[0] if isinstance(batch, (tuple, list)) else batch)[: samples - taken]
            batches.append(x.detach().to("cpu", torch.float32).contiguous().numpy())
            taken += len(x)
            if taken >= samples:
                break
    return batches


def quantize_int8(float_path: Path, ckpt: dict[str, Any], samples: int) -> tuple[Path, list[np.ndarray]]:
    """The int8 file of `float_path` (an ONNX file src.export wrote), calibrated on `samples` training inputs
    (returned with it)."""
    try:
        from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
        from onnxruntime.quantization.shape_inference import quant_pre_process
    except ImportError:
        raise UserError("quantize=int8 needs onnxruntime's quantization tools; install them with: pip install "
                        "onnxruntime onnx.") from None

    batches = calibration_batches(ckpt, samples)

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.feed = iter({"input": b} for b in batches)

        def get_next(self):
            return next(self.feed, None)

    output = int8_path(float_path)
    with tempfile.TemporaryDirectory() as folder:
        prepared = Path(folder) / "prepared.onnx"
        try:  # shape inference and graph folding first, as ONNX Runtime recommends before quantizing
            quant_pre_process(str(float_path), str(prepared))
        except Exception as exc:  # a graph its symbolic shape inference cannot follow: quantize it as exported
            log.warning("ONNX Runtime's pre-processing skipped (%s): quantizing the file as exported.",
                        str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__)
            prepared = float_path
        try:
            quantize_static(str(prepared), str(output), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                            activation_type=QuantType.QInt8, weight_type=QuantType.QInt8)
        except Exception as exc:
            raise UserError(f"ONNX Runtime could not quantize {float_path} ({type(exc).__name__}: "
                            f"{str(exc).splitlines()[0][:200] if str(exc) else ''}); serve the float file.") from None
    meta = json.loads(float_path.with_name(float_path.name + ".json").read_text())
    meta["quantization"] = {"type": "int8", "method": "ONNX Runtime static quantization (QDQ, MinMax)",
                            "weights": "int8 per output channel", "activations": "int8",
                            "calibration": f"{sum(len(b) for b in batches)} inputs of the training split"}
    output.with_name(output.name + ".json").write_text(json.dumps(meta, indent=2) + "\n")
    return output, batches


def compare_int8(float_path: Path, int8_file: Path, batches: list[np.ndarray]) -> str:
    """One line: how often the int8 file's predicted class (several labels per sample: its set of labels above
    their thresholds) is the float file's, on the calibration inputs."""
    from src.inference.onnx_model import metadata_of, onnx_session

    float_session, int8_session = onnx_session(float_path), onnx_session(int8_file)
    thresholds = metadata_of(float_path).get("thresholds")  # a file of per-label probabilities
    agree = total = 0
    worst = 0.0
    for x in batches:
        a = float_session.run(None, {"input": x})[0]
        b = int8_session.run(None, {"input": x})[0]
        worst = max(worst, float(np.abs(a - b).max()))
        if thresholds is not None:
            agree += int(((a > np.array(thresholds)) == (b > np.array(thresholds))).all(1).sum())
        elif a.shape[1] > 1:
            agree += int((a.argmax(1) == b.argmax(1)).sum())
        else:
            agree += int(((a > 0) == (b > 0)).sum())
        total += len(x)
    size = float_path.stat().st_size / max(int8_file.stat().st_size, 1)
    return (f"int8: {int8_file} ({size:.1f}x smaller than the float file); predicted "
            f"{'label set' if thresholds is not None else 'class'} as the float file's for "
            f"{agree}/{total} calibration inputs, largest output difference {worst:.3g}")
