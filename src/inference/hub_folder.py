"""`python -m src.export ckpt_path=... format=hub output=DIR [push_to=owner/name]`: a model folder for the Hub.

It writes `model.safetensors` (the net's weights under its own names), `config.json` and a `README.md`
model card made from the run's own records (`src/inference/model_card.py`). `config.json` holds the
architecture, the project's model config, class names, input shape, normalisation, the calibration
temperature (one per label after src.calibrate of a multi-label model) and, for several labels per sample,
`task: multilabel` and each label's threshold, the exact training command, and for timm
models the keys timm's own loader reads (`architecture`, `num_classes`, `model_args`, `pretrained_cfg`:
`timm.create_model("local-dir:DIR")`, or `hf-hub:owner/name` once pushed). `src.eval` and `src.predict`
take the folder as `ckpt_path` (src/runs/model_folder.py) and give the checkpoint's logits.

`push_to=owner/name` uploads the folder with `huggingface_hub` (a token from `hf auth login` or HF_TOKEN);
without network (or with HF_HUB_OFFLINE=1) the folder stays written and the command says so in one
sentence.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from src.errors import UserError, require
from src.runs.model_folder import CONFIG, MODULE_BUFFERS, NET_PREFIX, PROJECT_KEY, WEIGHTS

TIMM_NET = "src.models.nets.timm_net.timm_net"


def training_command(ckpt: dict[str, Any]) -> str:
    overrides = (ckpt.get("run_composition") or {}).get("overrides") or []
    return " ".join(["python -m src.train", *(str(o) for o in overrides)])


def folder_config(ckpt: dict[str, Any], prep, net_state: dict[str, Any],
                  buffers: dict[str, Any] | None = None) -> dict[str, Any]:
    """config.json: what a reader needs to know, then timm's keys, then the project's own records; `buffers`:
    the module's own state besides its net (a multi-label model's per-label `thresholds`)."""
    buffers = buffers or {}
    run_config = ckpt["run_config"]
    hparams = ckpt.get("hyper_parameters") or {}
    net_cfg = dict(hparams.get("net") or run_config.get("model", {}).get("net") or {})
    target = str(net_cfg.get("_target_", ""))
    timm_name = str(net_cfg.get("name")) if target == TIMM_NET else None
    transform = prep.transform or {}
    data_class = str(run_config["data"].get("_target_", "")).rsplit(".", 1)[-1]
    config: dict[str, Any] = {
        "architecture": timm_name or target.rsplit(".", 1)[-1],
        "num_classes": len(prep.class_names),
        "label_names": list(prep.class_names),
        "input_shape": list(prep.input_shape),
        "normalisation": {k: transform[k] for k in ("mean", "std", "max_value") if k in transform} or None,
        "temperature": ckpt.get("temperature"),
        "task": "multilabel" if "thresholds" in buffers else "multiclass",
        "thresholds": dict(zip(prep.class_names, buffers["thresholds"])) if "thresholds" in buffers else None,
        "model_config": run_config.get("model"),
        "training_command": training_command(ckpt),
    }
    if timm_name:
        channels = int(prep.input_shape[0])
        config["model_args"] = {"in_chans": channels, **dict(net_cfg.get("model_kwargs") or {})}
        config["pretrained_cfg"] = {
            "input_size": list(prep.input_shape), "num_classes": len(prep.class_names),
            "mean": list(transform.get("mean") or []), "std": list(transform.get("std") or []),
            "crop_pct": 1.0, "interpolation": "bilinear", "fixed_input_size": False,
            "label_names": list(prep.class_names),
        }
    config[PROJECT_KEY] = {
        "run_config": run_config,
        "run_composition": ckpt.get("run_composition") or {},
        "hyper_parameters": hparams,
        "data_state": {k: ckpt[k] for k in (data_class,) if k in ckpt},
        "temperature": ckpt.get("temperature"),
        "module_buffers": buffers,
    }
    return config


def export_hub(cfg) -> Path:
    from safetensors.torch import save_file

    from src.inference.model import rebuild_module
    from src.inference.model_card import write_card
    from src.inference.preprocessing import preprocessing_of
    from src.runs.checkpoint import load_checkpoint

    require(bool(cfg.get("output")), "format=hub writes a folder: pass output=DIR (e.g. output=model_folder).")
    path, ckpt = load_checkpoint(cfg.ckpt_path)
    out = Path(str(cfg.output)).expanduser()
    require(not out.is_file(), f"output={out} is a file; format=hub writes a folder, give a folder path.")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot write output={out} ({exc.strerror or exc}); choose a writable folder.") from None
    module = rebuild_module(path, ckpt, calibrated=False)
    state = module.state_dict()
    kept = {k: state.pop(k).tolist() for k in MODULE_BUFFERS if k in state}  # in config.json, not with the weights
    others = [k for k in state if not k.startswith(NET_PREFIX)]
    require(not others, f"the module of {path} holds weights outside its net ({', '.join(others[:3])}), which a "
                        "model folder does not keep; export it with format=onnx or format=torchscript instead.")
    weights = {k[len(NET_PREFIX):]: v.detach().clone().contiguous() for k, v in state.items()}
    save_file(weights, str(out / WEIGHTS), metadata={"format": "pt"})
    prep = preprocessing_of(ckpt, path)
    config = folder_config(ckpt, prep, weights, kept)
    (out / CONFIG).write_text(json.dumps(config, indent=2, default=str) + "\n")
    write_card(out, path, ckpt, prep, config)
    print(f"exported hub: {out} ({WEIGHTS}, {CONFIG}, README.md)", flush=True)
    if cfg.get("push_to"):
        push(out, str(cfg.push_to))
    return out


def push(folder: Path, repo_id: str) -> None:
    """Upload `folder` to the model repository `repo_id` (created if needed, private by default)."""
    import os

    require(repo_id.count("/") == 1 and all(repo_id.split("/")),
            f"push_to={repo_id} is not a Hub repository id; pass push_to=owner/name.")
    offline = os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")
    if not offline:
        from huggingface_hub import HfApi
        from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

        try:
            api = HfApi()
            api.create_repo(repo_id, repo_type="model", private=True, exist_ok=True)
            commit = api.upload_folder(repo_id=repo_id, folder_path=str(folder), repo_type="model",
                                       commit_message="Upload model folder from src.export format=hub")
            print(f"pushed {folder} to {commit.commit_url}", flush=True)
            return
        except OfflineModeIsEnabled:
            offline = True
        except HfHubHTTPError as exc:
            reason = f"{type(exc).__name__}: {str(exc).splitlines()[0][:160]}"
            raise UserError(f"the folder {folder} is written but the Hub refused push_to={repo_id} ({reason}); "
                            "log in with `hf auth login` or set "
                            "HF_TOKEN to a token that may write there, then push again.") from None
        except Exception as exc:  # no route to the Hub: connection errors of the HTTP client
            if "connect" not in f"{type(exc).__name__} {exc}".lower() and "resolve" not in str(exc).lower():
                raise
            offline = True
    if offline:
        raise UserError(f"the folder {folder} is written but the Hub cannot be reached (offline"
                        f"{': HF_HUB_OFFLINE is set' if os.environ.get('HF_HUB_OFFLINE') else ''}), so push_to="
                        f"{repo_id} uploaded nothing; push it later with: hf upload {repo_id} {folder}.")
