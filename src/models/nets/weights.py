"""`model.net.weights_file=PATH`: start a net from a state dict saved elsewhere (timm, torchvision, a
previous run of this project), with one-sentence errors when it does not fit.

- Files: `.safetensors` (safetensors), or `.pth` / `.pt` / `.bin` / `.ckpt` (`torch.load` with
  `weights_only=True`). A dict holding the weights under `state_dict` or `model` (Lightning and
  many training scripts save them so) is unwrapped, as are `module.` (DDP) and, in this project's
  checkpoints, `net.` prefixes.
- The classifier head (`head`: module names) is re-initialised, with a log line, when its shape
  differs (another class count); the input convolution (`first_conv`) is adapted when only its
  channel count differs (grey images on RGB weights: the RGB filters summed, as timm does).
- Anything else that differs (missing keys, unexpected keys, other shapes) ends in one sentence
  that lists the first few.
"""

from __future__ import annotations

import logging
import math
import pickle
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from src.errors import UserError, require

log = logging.getLogger(__name__)

SUFFIXES = (".safetensors", ".pth", ".pt", ".bin", ".ckpt")
SHOWN = 4  # keys listed in a mismatch message


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a weights file, unwrapped from a training checkpoint where needed."""
    path = Path(str(path)).expanduser()
    require(path.is_file(), f"model.net.weights_file={path} does not exist; pass the path of a .safetensors, .pth "
                            "or .bin file of weights.")
    suffix = path.suffix.lower()
    require(suffix in SUFFIXES, f"model.net.weights_file={path} is not a weights file this project reads; use "
                                f"one of {', '.join(SUFFIXES)}.")
    try:
        if suffix == ".safetensors":
            from safetensors.torch import load_file

            state: Any = load_file(str(path), device="cpu")
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # the readers raise their own types for a truncated or foreign file
        unsafe = [] if suffix == ".safetensors" else unsafe_globals(path)
        if unsafe:
            raise UserError(f"model.net.weights_file={path} holds Python objects ({', '.join(unsafe[:SHOWN])}) that "
                            "weights-only loading refuses: it is unsafe to load (unpickling it could run code); save "
                            "the weights alone with torch.save(model.state_dict(), PATH) or safetensors.") from exc
        raise UserError(f"model.net.weights_file={path} cannot be read ({type(exc).__name__}: "
                        f"{str(exc).splitlines()[0][:160] if str(exc) else ''}); it may be truncated or not a "
                        "state dict.") from exc
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(state, Mapping) and isinstance(state.get(key), Mapping):
            state = state[key]
            break
    require(
        isinstance(state, Mapping) and state and all(isinstance(v, torch.Tensor) for v in state.values()),
        f"model.net.weights_file={path} holds no state dict (a mapping of parameter names to tensors); save one with "
        "torch.save(model.state_dict(), PATH) or safetensors.",
    )
    return strip_prefixes(dict(state))


def unsafe_globals(path: Path) -> list[str]:
    """The classes and functions a `torch.save` file would import beyond what weights-only loading allows
    (torch's own scan); empty where torch cannot list them (a truncated or legacy file, or a pickle
    instruction its scanner does not take)."""
    try:
        return torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except (pickle.UnpicklingError, ValueError, RuntimeError):
        return []


def strip_prefixes(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop a `module.` (DDP) or `net.` (this project's checkpoints) prefix that every key shares."""
    for prefix in ("module.", "net."):
        if all(k.startswith(prefix) for k in state):
            state = {k[len(prefix):]: v for k, v in state.items()}
    return state


def adapt_input_conv(weight: torch.Tensor, channels: int) -> torch.Tensor:
    """Input-convolution weights (out, c, kh, kw) for `channels` input channels: summed over the c
    channels for one, repeated and rescaled otherwise (timm's rule), so activations keep their scale."""
    if channels == 1:
        return weight.sum(dim=1, keepdim=True)
    repeat = math.ceil(channels / weight.shape[1])
    return weight.repeat(1, repeat, 1, 1)[:, :channels] * (weight.shape[1] / channels)


def _under(key: str, modules: Sequence[str]) -> bool:
    return any(key == m or key.startswith(m + ".") for m in modules)


def _listing(keys: Sequence[str]) -> str:
    shown = ", ".join(list(keys)[:SHOWN])
    return shown + (f" and {len(keys) - SHOWN} more" if len(keys) > SHOWN else "")


def load_weights(net: nn.Module, path: str | Path, head: Sequence[str], first_conv: Sequence[str] = (),
                 rename: Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]] | None = None,
                 name: str = "the net", hint: str = "") -> None:
    """Load the weights file `path` into `net` (see the module docstring); `rename` translates another
    code base's key names into `net`'s (e.g. torchvision's ResNet stem); `hint` ends a mismatch message."""
    state = read_state_dict(path)
    if rename is not None:
        state = rename(state)
    own = net.state_dict()
    head_keys = [k for k in own if _under(k, head)]
    file_head = {k: v for k, v in state.items() if _under(k, head)}
    if file_head and any(k not in own or own[k].shape != v.shape for k, v in file_head.items()):
        weight = next((v for k, v in file_head.items() if k.endswith("weight")), next(iter(file_head.values())))
        log.warning("%s: the classifier head (%s) is re-initialised for %d classes; the weights in %s have %d.",
                    name, ", ".join(head), own[head_keys[0]].shape[0] if head_keys else 0, path, weight.shape[0])
        state = {k: v for k, v in state.items() if not _under(k, head)}
        state.update({k: own[k] for k in head_keys})
    for conv in first_conv:
        key = f"{conv}.weight"
        if key in state and key in own and state[key].ndim == 4 and state[key].shape[1] != own[key].shape[1] \
                and state[key].shape[2:] == own[key].shape[2:] and state[key].shape[0] == own[key].shape[0]:
            log.info("%s: the input convolution %s of %s is adapted from %d to %d channels.", name, conv, path,
                     state[key].shape[1], own[key].shape[1])
            state[key] = adapt_input_conv(state[key], own[key].shape[1])
    counters = {k for k in own if k.endswith("num_batches_tracked")}  # BatchNorm step counters: no weights
    missing = [k for k in own if k not in state and k not in counters]
    unexpected = [k for k in state if k not in own and not k.endswith("num_batches_tracked")]
    wrong = [f"{k} {list(state[k].shape)} vs the net's {list(own[k].shape)}" for k in own
             if k in state and state[k].shape != own[k].shape]
    if missing or unexpected or wrong:
        parts = [f"{label}: {_listing(keys)}" for label, keys in
                 (("missing", missing), ("unexpected", unexpected), ("other shapes", wrong)) if keys]
        raise UserError(f"the weights in {path} do not fit {name} ({'; '.join(parts)}); pass weights saved from "
                        f"the same architecture{hint}.")
    state = {k: v for k, v in state.items() if k in own}
    state.update({k: own[k] for k in counters if k not in state})
    net.load_state_dict(state, strict=True)
    log.info("%s: weights loaded from %s.", name, path)


def without_weight_loading(hyper_parameters: dict[str, Any]) -> dict[str, Any]:
    """The hyper-parameters of a checkpoint's module with its net built from scratch: the checkpoint
    holds the trained weights, so neither `pretrained` downloads nor a `weights_file` are needed."""
    net = dict(hyper_parameters.get("net") or {})
    if net.get("pretrained"):
        net["pretrained"] = False
    if net.get("weights_file"):
        net["weights_file"] = None
    return {**hyper_parameters, "net": net}
