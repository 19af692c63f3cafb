"""What timm knows about a model by name, without building it: whether the name exists (with the
nearest names when it does not) and its pretrained config (input size, mean, std, where the weights
live). Shared by the net builder (`src/models/nets/timm_net.py`) and the data settings that take the
pretrained weights' values (`data.image_size: model`, `data.mean/std: model`), so that data code
needs no model code."""

from __future__ import annotations

import difflib
from typing import Any

from src.errors import UserError, require


def timm_module():
    """The timm package, or one sentence saying to install it."""
    try:
        import timm  # imported when a timm model is named: it takes seconds, which other runs need not pay
    except ImportError as exc:
        raise UserError("model=timm needs the timm package; install it with: pip install timm.") from exc
    return timm


def check_name(name: str) -> None:
    """One sentence, with the nearest names, for a model name timm does not have."""
    timm = timm_module()
    require(isinstance(name, str) and bool(name), "model.net.name is required: pass e.g. model.net.name=resnet18.")
    if timm.is_model(name):
        return
    close = difflib.get_close_matches(name.split(".")[0], timm.list_models(), n=3)
    hint = f"did you mean {', '.join(close)}?" if close else "see timm.list_models() for the names."
    raise UserError(f"timm has no model named {name!r}; {hint}")


def pretrained_cfg(name: str) -> dict[str, Any]:
    """timm's pretrained config of `name` (`arch` or `arch.tag`): input_size, mean, std, hf_hub_id, url, ..."""
    check_name(name)
    cfg = timm_module().models.get_pretrained_cfg(name)
    require(cfg is not None, f"timm has no pretrained weights for {name}; pass model.net.weights_file=PATH or "
                             "model.net.pretrained=false.")
    return cfg.to_dict() if hasattr(cfg, "to_dict") else dict(cfg)
