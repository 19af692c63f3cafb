"""`python -m src.export ckpt_path=... format=onnx|torchscript|hub`: write the trained net as an ONNX or
TorchScript file and check that it computes what PyTorch computes.

The exported model is the net in eval mode: input the normalised batch (N, *input_shape), output
the logits (N, num_classes) (one logit for the binary models); the batch size is free. It is
written next to the checkpoint (`<checkpoint name>.onnx` / `.torchscript.pt`) or to `output=FILE`,
with `<file>.json` beside it: input shape, class names and the preprocessing (pixel range,
mean/std; for a table model the fitted encoding of its columns) that inputs need. The check runs
the file (onnxruntime for ONNX, `torch.jit.load` for TorchScript) on sample batches of two sizes and
compares with the PyTorch net: the largest absolute difference is printed, and above `atol`
(relative to the outputs' scale) the command fails. timm models export the same way.
With `quantize=int8` (ONNX) an int8 copy `<name>.int8.onnx` is written beside the float file
(src/inference/int8.py).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import warnings
from pathlib import Path

import hydra
from omegaconf import DictConfig

import src.config.resolvers  # noqa: F401
from src.config.choices import check_command_line
from src.config.hydra_callbacks import unwritable_reason
from src.errors import UserError, exits_on_user_error, require

log = logging.getLogger(__name__)

FORMATS = {"onnx": ".onnx", "torchscript": ".torchscript.pt"}


def export(cfg: DictConfig) -> Path:
    # Imported here and in the exporters below: a command Hydra refuses (a misspelt override, --help) ends
    # before torch loads.
    import torch

    from src.inference.model import rebuild_module
    from src.inference.preprocessing import preprocessing_of
    from src.runs.checkpoint import load_checkpoint

    fmt = str(cfg.format).lower()
    quantize = str(cfg.get("quantize") or "").lower() or None
    require(quantize in (None, "int8") and (quantize is None or fmt == "onnx"),
            f"quantize={cfg.get('quantize')!r} is not offered for format={fmt}; pass quantize=int8 with format=onnx.")
    if fmt == "hub":  # a model folder with its model card (src/inference/hub_folder.py)
        from src.inference.hub_folder import export_hub
        return export_hub(cfg)
    require(fmt in FORMATS, f"format={cfg.format!r} is unknown; choose one of {sorted([*FORMATS, 'hub'])}.")
    path, ckpt = load_checkpoint(cfg.ckpt_path)
    module = rebuild_module(path, ckpt)
    net, extra = module.net.eval(), {}
    if getattr(module, "task", None) == "multilabel":  # several labels per sample: probabilities and thresholds
        from src.models.multilabel import SigmoidOutputs
        net = SigmoidOutputs(net).eval()
        extra = {"output": {"name": "probabilities", "meaning": "one sigmoid probability per label; a label is "
                            "predicted above its threshold"}, "thresholds": module.thresholds.tolist()}
    prep = preprocessing_of(ckpt, path)
    output = Path(str(cfg.output)) if cfg.get("output") else path.with_suffix(FORMATS[fmt])
    check_writable(output)

    batch = int(cfg.get("batch_size") or 4)
    require(batch > 0, f"batch_size must be a positive integer, got {batch}.")
    generator = torch.Generator().manual_seed(0)
    samples = [torch.randn(n, *prep.input_shape, generator=generator) for n in (batch, batch + 3)]
    if fmt == "onnx":
        export_onnx(net, samples[0], output, bool(cfg.get("dynamo", True)), cfg.get("opset"),
                    extra.get("output", {}).get("name", "logits"))
        run = onnx_runner(output)
    else:
        export_torchscript(net, samples[0], output)
        run = torchscript_runner(output)

    worst, scale = 0.0, 1.0
    with torch.no_grad():
        for x in samples:
            expected = net(x).float()
            got = torch.as_tensor(run(x)).float()
            require(
                got.shape == expected.shape,
                f"the exported model returns shape {list(got.shape)} where PyTorch returns {list(expected.shape)}.",
            )
            worst = max(worst, float((got - expected).abs().max()))
            scale = max(scale, float(expected.abs().max()))
    tolerance = float(cfg.get("atol", 1e-4)) * scale
    write_metadata(output, fmt, prep, ckpt_path=path, extra=extra)
    print(f"max abs diff vs PyTorch: {worst:.3e} (tolerance {tolerance:.1e}, batches of {batch} and {batch + 3})",
          flush=True)
    if not worst <= tolerance:
        raise UserError(
            f"the {fmt} model at {output} differs from PyTorch by up to {worst:.3e}, more than the tolerance "
            f"{tolerance:.1e}: do not use it (raise atol= only if that difference is acceptable)."
        )
    print(f"exported {fmt}: {output} (outputs match PyTorch; preprocessing in {metadata_path(output)})", flush=True)
    if quantize:  # an int8 copy beside the float file (src/inference/int8.py)
        from src.inference.int8 import compare_int8, quantize_int8

        samples = int(cfg.get("calibration_samples") or 512)
        require(samples > 0, f"calibration_samples must be a positive integer, got {samples}.")
        int8_file, batches = quantize_int8(output, ckpt, samples)
        print(compare_int8(output, int8_file, batches), flush=True)
    return output


def check_writable(output: Path) -> None:
    """Blame the path, not the exporter, when the output file cannot be written (its folder is created)."""
    require(not output.is_dir(), f"output={output} is a folder; give a file path, e.g. output={output / 'model.onnx'}.")
    reason = unwritable_reason(output.parent)
    if reason is None and output.exists() and not os.access(output, os.W_OK):
        reason = "the file is read-only"
    require(reason is None, f"cannot write output={output} ({reason}); choose a writable path with output=PATH.")


# --- ONNX -----------------------------------------------------------------------------------------
def export_onnx(net, sample, output: Path, dynamo: bool, opset: int | None, output_name: str = "logits") -> None:
    """torch.onnx.export with a free batch size: the torch.export-based exporter (needs onnxscript),
    or with dynamo=false the older TorchScript-based one, as long as PyTorch still has it."""
    import torch

    names = {"input_names": ["input"], "output_names": [output_name]}
    if opset:
        names["opset_version"] = int(opset)
    for noisy in ("onnx_ir", "onnxscript", "torch.onnx", "torch.export", "torch._dynamo"):  # INFO per graph pass
        logging.getLogger(noisy).setLevel(logging.WARNING)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            if dynamo:
                batch = torch.export.Dim("batch")
                torch.onnx.export(net, (sample,), str(output), dynamo=True, external_data=False, verbose=False,
                                  dynamic_shapes=({0: batch},), **names)
            else:
                torch.onnx.export(net, (sample,), str(output), dynamo=False,
                                  dynamic_axes={"input": {0: "batch"}, output_name: {0: "batch"}}, **names)
        except ImportError as exc:
            raise UserError(f"ONNX export needs the onnx and onnxscript packages ({exc}); "
                            "install them with: pip install onnx onnxscript onnxruntime.") from None
        except Exception as exc:
            raise UserError(f"torch.onnx.export could not export the {type(net).__name__} net "
                            f"({type(exc).__name__}: {str(exc).splitlines()[0][:300]}); try dynamo=false "
                            "or format=torchscript.") from None


def onnx_runner(path: Path):
    try:
        import onnxruntime
    except ImportError:
        raise UserError("checking the ONNX file needs onnxruntime; install it with: pip install onnxruntime.") \
            from None
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda x: session.run(None, {name: x.numpy()})[0]


# --- TorchScript ----------------------------------------------------------------------------------
def export_torchscript(net, sample, output: Path) -> None:
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit is deprecated in recent PyTorch, still the TorchScript format
        with torch.no_grad():
            traced = torch.jit.trace(net, (sample,))
        torch.jit.save(traced, str(output))


def torchscript_runner(path: Path):
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loaded = torch.jit.load(str(path), map_location="cpu").eval()

    def run(x):
        with torch.no_grad():
            return loaded(x)

    return run


# --- what a deployment needs besides the file ------------------------------------------------------
def metadata_path(output: Path) -> Path:
    return output.with_name(output.name + ".json")


def write_metadata(output: Path, fmt: str, prep, ckpt_path: Path, extra: dict | None = None) -> None:
    meta = {
        "format": fmt,
        "checkpoint": str(ckpt_path.resolve()),
        "data": prep.data_name,
        "input": {"name": "input", "shape": ["batch", *prep.input_shape]},
        "output": {"name": "logits", "meaning": "class scores before softmax (one sigmoid logit: binary)"},
        "class_names": prep.class_names,
        "preprocessing": {
            "pixel_range": [0, prep.max_value],
            "normalize": "(x / max_value - mean) / std, per channel" if prep.transform else None,
            **({k: prep.transform[k] for k in ("mean", "std", "max_value")} if prep.transform else {}),
        } if prep.is_image else {
            "note": "table rows encoded in this order of columns: numeric ones as (x - mean) / std, each category "
                    "of a text column as one 0/1 column (unseen categories: all zeros)",
            "table": prep.table,
        } if prep.is_table else {
            "note": f"{prep.data_name} features, transformed as its data module does (see data in the checkpoint)",
        },
    } | (extra or {})
    metadata_path(output).write_text(json.dumps(meta, indent=2) + "\n")


@hydra.main(version_base="1.3", config_path="../conf", config_name="export")
@exits_on_user_error
def main(cfg: DictConfig) -> None:
    export(cfg)


if __name__ == "__main__":
    exits_on_user_error(check_command_line)(sys.argv[1:])
    main()
