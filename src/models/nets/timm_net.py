"""`model=timm`: any of timm's image models (`timm.create_model`), with the data's channels and class count.

Weights, three ways:
- none (default): timm's own initialisation;
- `pretrained=true`: timm's pretrained weights. Found in the local Hugging Face or torch.hub cache they
  load without network; otherwise the hub is asked first with a short timeout, so an offline run ends
  within seconds in one sentence (pointing at `weights_file`) instead of after a minute of retries;
  `HF_HUB_OFFLINE=1` skips the question;
- `weights_file=PATH`: a state dict on disk (src/models/nets/weights.py), e.g. saved from timm with
  `safetensors.torch.save_file(timm.create_model(name).state_dict(), "model.safetensors")`.
A different class count re-initialises the classifier head; grey data adapt the RGB input convolution.

`pretrained_cfg(name)` (src/timm_pretrained.py) is timm's description of a model's pretrained weights
(input size, mean, std), what `data.image_size: model` and `data.mean/std: model` read.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from torch import nn

from src.errors import UserError, require
from src.timm_pretrained import check_name, pretrained_cfg, timm_module

log = logging.getLogger(__name__)

PROBE_TIMEOUT_S = 5.0  # seconds the hub may take to answer whether it is reachable


def _names(value: str | Sequence[str] | None) -> list[str]:
    return [value] if isinstance(value, str) else [v for v in value or () if v]


def head_names(net: nn.Module) -> list[str]:
    """The module names of a timm model's classifier head (e.g. ["fc"], ["head.fc"])."""
    cfg = getattr(net, "pretrained_cfg", None) or {}
    modules = dict(net.named_modules())
    return [n for n in _names(cfg.get("classifier")) if n in modules]


# --- pretrained weights: cache first, then a quick question to the hub ----------------------------------
def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def _hub_files(cfg: dict[str, Any]) -> list[str]:
    return [cfg["hf_hub_filename"]] if cfg.get("hf_hub_filename") else ["model.safetensors", "pytorch_model.bin"]


def cached_weights(cfg: dict[str, Any]) -> Path | None:
    """The pretrained weights file of `cfg` in the local Hugging Face or torch.hub cache, if there."""
    hub_id = cfg.get("hf_hub_id")
    if hub_id:
        from huggingface_hub import try_to_load_from_cache

        for filename in _hub_files(cfg):
            found = try_to_load_from_cache(hub_id, filename)
            if isinstance(found, str):
                return Path(found)
    url = cfg.get("url")
    if url:
        from urllib.parse import urlparse

        import torch.hub

        path = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(url).path)
        if path.is_file():
            return path
    return None


def unreachable(cfg: dict[str, Any]) -> str | None:
    """Why timm could not download the weights of `cfg` now, or None when their host answers."""
    if cfg.get("hf_hub_id"):
        if _offline():
            return "HF_HUB_OFFLINE is set"
        from huggingface_hub import constants, get_hf_file_metadata, hf_hub_url
        from huggingface_hub.utils import HfHubHTTPError

        endpoint = os.environ.get("HF_ENDPOINT") or constants.ENDPOINT
        url = hf_hub_url(cfg["hf_hub_id"], _hub_files(cfg)[0], endpoint=endpoint)
        try:
            get_hf_file_metadata(url, timeout=PROBE_TIMEOUT_S)
        except HfHubHTTPError:
            return None  # the hub answered (even "not found" is an answer): timm's own download takes over
        except Exception as exc:  # connection refused, DNS failure, timeout: the hub is out of reach
            return f"{type(exc).__name__} from {endpoint}"
        return None
    if cfg.get("url"):
        import urllib.error
        import urllib.request

        try:
            urllib.request.urlopen(urllib.request.Request(cfg["url"], method="HEAD"), timeout=PROBE_TIMEOUT_S).close()
        except urllib.error.HTTPError:
            return None
        except OSError as exc:
            return f"{type(exc).__name__} from {cfg['url']}"
        return None
    return "timm names no download location"


def pretrained_source(name: str) -> Path | None:
    """A local file of `name`'s pretrained weights, or None when timm may download them now; one
    sentence naming `model.net.weights_file` when neither is possible."""
    cfg = pretrained_cfg(name)
    cached = cached_weights(cfg)
    if cached is not None:
        return cached
    reason = unreachable(cfg)
    if reason is None:
        return None
    hub_id = cfg.get("hf_hub_id")
    where = f"{_hub_files(cfg)[0]} of https://huggingface.co/{hub_id}" if hub_id else cfg.get("url")
    raise UserError(
        f"timm's pretrained weights for {name} are not in the local cache and cannot be downloaded ({reason}): "
        f"download them where there is network ({where}) and pass model.net.weights_file=PATH instead of "
        "model.net.pretrained=true."
    )


# --- the net ------------------------------------------------------------------------------------------
def timm_net(
    name: str,
    input_shape: Sequence[int],
    num_classes: int,
    pretrained: bool = False,
    weights_file: str | None = None,
    model_kwargs: dict[str, Any] | None = None,
) -> nn.Module:
    """`timm.create_model(name, num_classes=..., in_chans=C, **model_kwargs)` with weights as above,
    checked on one zero batch of `input_shape` (C, H, W)."""
    from src.models.nets.common import as_chw

    timm = timm_module()
    check_name(name)
    channels, height, width = as_chw(input_shape, name)
    require(not (pretrained and weights_file),
            "model.net.pretrained=true and model.net.weights_file both give weights; choose one.")
    kwargs = dict(model_kwargs or {})
    try:
        if pretrained:
            local = pretrained_source(name)
            overlay = {"pretrained_cfg_overlay": {"file": str(local)}} if local is not None else {}
            net = timm.create_model(name, pretrained=True, num_classes=num_classes, in_chans=channels, **overlay,
                                    **kwargs)
            trained_classes = int(pretrained_cfg(name).get("num_classes") or 0)
            if trained_classes and trained_classes != num_classes:
                log.warning("%s: the classifier head (%s) is re-initialised for %d classes; timm's pretrained weights "
                            "have %d.", name, ", ".join(head_names(net)), num_classes, trained_classes)
            log.info("%s: timm's pretrained weights loaded%s.", name, f" from {local}" if local else "")
        else:
            net = timm.create_model(name, num_classes=num_classes, in_chans=channels, **kwargs)
    except TypeError as exc:  # a keyword of model_kwargs the model does not take
        raise UserError(f"timm could not build {name} with model.net.model_kwargs={kwargs} ({exc}); pass only "
                        "arguments the model takes.") from exc
    if weights_file:
        from src.models.nets.weights import load_weights

        cfg = getattr(net, "pretrained_cfg", None) or {}
        load_weights(net, weights_file, head=head_names(net), first_conv=_names(cfg.get("first_conv")),
                     name=f"timm {name}", hint=f" (timm's {name} with model.net.name={name})")
    _check_input(net, name, channels, height, width)
    return net


def _check_input(net: nn.Module, name: str, channels: int, height: int, width: int) -> None:
    """One zero batch through the net, so an input it cannot take fails now in one sentence."""
    import torch

    was_training = net.training
    net.eval()
    try:
        with torch.no_grad():
            net(torch.zeros(1, channels, height, width))
    except (RuntimeError, AssertionError, ValueError) as exc:
        size = (getattr(net, "pretrained_cfg", None) or {}).get("input_size")
        raise UserError(
            f"timm's {name} cannot take {channels}x{height}x{width} images ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0][:160] if str(exc) else ''}); its pretrained input size is "
            f"{'x'.join(map(str, size)) if size else 'unknown'}: set data.image_size=model, or pass "
            "model.net.model_kwargs with the model's img_size."
        ) from exc
    finally:
        net.train(was_training)
