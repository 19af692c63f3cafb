"""GPU speed-ups that change how a run computes, not what it computes: cuDNN autotuning, TF32
matmuls, channels-last memory format, and (on request) `torch.compile`.

Part of `callbacks=default`; on the CPU it does nothing unless asked (`compile=true` works there
too). Settings are `null` = automatic (on when the run trains on CUDA), `true` / `false` to force:

- `cudnn_benchmark`: `torch.backends.cudnn.benchmark = True`, cuDNN times its algorithms for each
  new input shape once and keeps the fastest (fixed image sizes: a one-off cost per shape).
- `float32_matmul_precision`: "high" lets float32 matmuls use TF32 tensor cores (CUDA only; bf16
  mixed precision, the GPU default, is not affected).
- `channels_last`: nets with 2-D convolutions get their 4-D weights in channels-last (NHWC) memory
  format, which tensor-core convolutions use natively; the data module's resident uint8 image
  splits are converted once, so batches cut from them are channels-last already (normalisation
  keeps the format; an augmentation that does not, e.g. RandomCrop's gather, costs one layout copy,
  which the convolution would otherwise make itself).
- `compile`: `torch.compile` of the forward pass of the module's net (`pl_module.net`), in place:
  the module is not wrapped, so parameter names and checkpoints are unchanged (a compiled run's
  checkpoint loads into an uncompiled module; `_orig_mod.` prefixes, from nets compiled some
  other way, are stripped from saved checkpoints anyway). The net runs compiled from the start to
  the end of training (with its validation), of testing and of predicting, and plain in between:
  the model summary and TensorBoard's graph trace (which Lightning takes before each of these,
  with torch.jit, which cannot trace a compiled function) see the plain net. The compiled forward
  is kept, so testing after training reuses what training compiled. `compile_backend`,
  `compile_mode` (null, "reduce-overhead", "max-autotune", ...), `compile_dynamic` and
  `compile_fullgraph` are passed to `torch.compile`.

Global flags are restored when the run ends (`teardown`).
"""

from __future__ import annotations

import logging
from typing import Any

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_info
from torch import nn

from src.errors import require

log = logging.getLogger(__name__)

__all__ = ["GPUSpeedups", "has_conv2d", "is_compiled", "to_channels_last_images", "strip_compile_prefix"]

_PRECISIONS = ("highest", "high", "medium")


def has_conv2d(module: nn.Module) -> bool:
    """Whether the module has a 2-D convolution (channels-last helps only those)."""
    return any(isinstance(m, nn.Conv2d) for m in module.modules())


def to_channels_last_images(datamodule: Any) -> int:
    """Convert the in-memory data module's 4-D image splits to channels-last (once, where they live);
    returns how many splits were converted. Data modules without resident splits are left alone."""
    if getattr(datamodule, "loader", "tensor") != "tensor":
        return 0  # per-sample DataLoader: batches are collated anew each step
    converted = 0
    for name in ("train_split", "val_split", "test_split"):
        split = getattr(datamodule, name, None)
        inputs = getattr(split, "inputs", None)
        if isinstance(inputs, torch.Tensor) and inputs.ndim == 4:
            if not inputs.is_contiguous(memory_format=torch.channels_last):
                split.inputs = inputs.contiguous(memory_format=torch.channels_last)
                converted += 1
    return converted


def is_compiled(net: nn.Module) -> bool:
    """Whether `GPUSpeedups` has put a compiled forward pass into `net` (it does only while a stage runs)."""
    return "forward" in vars(net)


def strip_compile_prefix(state_dict: dict[str, Any]) -> dict[str, Any]:
    """The state dict with `torch.compile`'s `_orig_mod.` removed from every key."""
    return {key.replace("_orig_mod.", ""): value for key, value in state_dict.items()}


class GPUSpeedups(L.Callback):
    """See the module docstring; `None` settings are on when the run trains on CUDA."""

    def __init__(
        self,
        cudnn_benchmark: bool | None = None,
        float32_matmul_precision: str | None = "high",
        channels_last: bool | None = None,
        compile: bool = False,
        compile_backend: str = "inductor",
        compile_mode: str | None = None,
        compile_dynamic: bool | None = None,
        compile_fullgraph: bool = False,
    ) -> None:
        require(
            float32_matmul_precision is None or float32_matmul_precision in _PRECISIONS,
            f"callbacks.gpu_speedups.float32_matmul_precision must be one of {list(_PRECISIONS)} or null, "
            f"got {float32_matmul_precision!r}.",
        )
        self.cudnn_benchmark = cudnn_benchmark
        self.float32_matmul_precision = float32_matmul_precision
        self.channels_last = channels_last
        self.compile = bool(compile)
        self.compile_backend = compile_backend
        self.compile_mode = compile_mode
        self.compile_dynamic = compile_dynamic
        self.compile_fullgraph = bool(compile_fullgraph)
        self._saved_benchmark: bool | None = None
        self._saved_precision: str | None = None
        self._compiled: tuple[nn.Module, Any] | None = None  # (net, its compiled forward), kept across stages
        self.applied: dict[str, bool] = {}

    # --- helpers ---------------------------------------------------------------------------------------
    @staticmethod
    def _on_cuda(trainer: L.Trainer) -> bool:
        return trainer.strategy.root_device.type == "cuda"

    @staticmethod
    def _wanted(setting: bool | None, on_cuda: bool) -> bool:
        return on_cuda if setting is None else bool(setting)

    @staticmethod
    def _net(pl_module: L.LightningModule) -> nn.Module:
        net = getattr(pl_module, "net", None)
        return net if isinstance(net, nn.Module) else pl_module

    def compile_net(self, pl_module: L.LightningModule) -> bool:
        """Run the module's net with a compiled forward pass (compiled once per net); True if it does now."""
        net = self._net(pl_module)
        if is_compiled(net):
            return True
        if self._compiled is None or self._compiled[0] is not net:
            kwargs: dict[str, Any] = {"backend": self.compile_backend, "dynamic": self.compile_dynamic,
                                      "fullgraph": self.compile_fullgraph}
            if self.compile_mode is not None:
                kwargs["mode"] = self.compile_mode
            self._compiled = (net, torch.compile(net.forward, **kwargs))
            rank_zero_info(f"gpu_speedups: torch.compile({type(net).__name__}.forward, {kwargs})")
        net.forward = self._compiled[1]  # an instance attribute: `del net.forward` restores the plain one
        return True

    def uncompile_net(self, pl_module: L.LightningModule) -> None:
        """Give the net back its plain forward pass (the compiled one is kept for the next stage)."""
        net = self._net(pl_module)
        if is_compiled(net):
            del net.forward

    # --- Lightning hooks -----------------------------------------------------------------------------
    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        on_cuda = self._on_cuda(trainer)
        self.applied = {"cudnn_benchmark": False, "tf32": False, "channels_last": False, "compile": False}
        if self._wanted(self.cudnn_benchmark, on_cuda):
            self._saved_benchmark = torch.backends.cudnn.benchmark
            torch.backends.cudnn.benchmark = True
            self.applied["cudnn_benchmark"] = True
        if on_cuda and self.float32_matmul_precision:
            try:
                previous = torch.get_float32_matmul_precision()
                torch.set_float32_matmul_precision(self.float32_matmul_precision)
                self._saved_precision = previous
                self.applied["tf32"] = self.float32_matmul_precision != "highest"
            except RuntimeError:  # PyTorch's newer per-backend fp32_precision settings are in use: keep them
                log.info("gpu_speedups: float32 matmul precision left as set (per-backend fp32_precision in use)")
        net = self._net(pl_module)
        if self._wanted(self.channels_last, on_cuda) and has_conv2d(net):
            net.to(memory_format=torch.channels_last)  # parameters keep their identity: optimizers are unaffected
            to_channels_last_images(getattr(trainer, "datamodule", None))
            self.applied["channels_last"] = True
        if any(self.applied.values()) or self.compile:
            rank_zero_info(f"gpu_speedups: {', '.join(k for k, v in self.applied.items() if v) or 'none'}"
                           f"{'; compile when the loop starts' if self.compile else ''}")

    def _compile_at_start(self, pl_module: L.LightningModule) -> None:
        if self.compile:
            self.applied["compile"] = self.compile_net(pl_module)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._compile_at_start(pl_module)

    def on_test_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._compile_at_start(pl_module)

    def on_predict_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._compile_at_start(pl_module)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.uncompile_net(pl_module)

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.uncompile_net(pl_module)

    def on_predict_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.uncompile_net(pl_module)

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        self.uncompile_net(pl_module)

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        state = checkpoint.get("state_dict")
        if isinstance(state, dict) and any("_orig_mod." in key for key in state):
            checkpoint["state_dict"] = strip_compile_prefix(state)

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if self._saved_benchmark is not None:
            torch.backends.cudnn.benchmark = self._saved_benchmark
            self._saved_benchmark = None
        if self._saved_precision is not None:
            torch.set_float32_matmul_precision(self._saved_precision)
            self._saved_precision = None

    def __repr__(self) -> str:
        return (f"GPUSpeedups(cudnn_benchmark={self.cudnn_benchmark}, channels_last={self.channels_last}, "
                f"compile={self.compile})")
