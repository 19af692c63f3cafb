"""What `ClassificationModule` adds to a checkpoint beyond its weights, and the check that a checkpoint's
weights fit the module before Lightning loads them."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from src.errors import UserError


def save_rng_states(checkpoint: dict[str, Any]) -> None:
    """The random-number states, so that a resumed run draws the same dropout masks and augmentations."""
    checkpoint["rng_states"] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        checkpoint["rng_states"]["cuda"] = torch.cuda.get_rng_state_all()


def restore_rng_states(checkpoint: dict[str, Any]) -> None:
    """Restore what `save_rng_states` saved (the CUDA states only onto as many GPUs as were saved)."""
    states = checkpoint.get("rng_states") or {}
    if "torch" in states:
        torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available() and len(states["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(states["cuda"])


def check_weights_fit(module: nn.Module, checkpoint: dict[str, Any]) -> None:
    """One sentence when the checkpoint's weights cannot load into `module` (other layers or shapes),
    instead of the long list `load_state_dict` raises."""
    saved = checkpoint.get("state_dict") or {}
    ours = module.state_dict()
    missing = [k for k in ours if k not in saved]
    unexpected = [k for k in saved if k not in ours]
    reshaped = [k for k in ours if k in saved and hasattr(saved[k], "shape") and saved[k].shape != ours[k].shape]
    if not (missing or unexpected or reshaped):
        return
    if reshaped:
        key = reshaped[0]
        example = f"{key} is {list(saved[key].shape)} there, {list(ours[key].shape)} here"
    else:
        example = f"{(missing or unexpected)[0]} is {'missing' if missing else 'extra'} there"
    raise UserError(
        f"the checkpoint's weights do not fit this model ({len(missing) + len(unexpected) + len(reshaped)} tensors "
        f"differ, e.g. {example}); use the run's own model settings, or start a new run without ckpt_path."
    )
