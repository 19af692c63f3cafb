"""OmegaConf resolvers the configs may use (registered once, on import).

Every entry point imports this module first, so it imports nothing heavy: the resolvers that read a data
set's files or the trackers' settings import their modules when a config first uses them."""

import os

from omegaconf import OmegaConf

if not OmegaConf.has_resolver("len"):
    # `input_shape: ['${len:${data.features}}']`: the number of selected features.
    OmegaConf.register_new_resolver("len", lambda seq: len(seq))

if not OmegaConf.has_resolver("cwd"):
    # `root_dir: ${cwd:}`: the folder the command runs from (known before Hydra sets up a sweep).
    OmegaConf.register_new_resolver("cwd", os.getcwd)

if not OmegaConf.has_resolver("pid"):
    # `${pid:}` in run folder names: two processes never share a folder, even started in the same microsecond.
    OmegaConf.register_new_resolver("pid", os.getpid)


def as_node(value):
    """A list or dict as a config node: OmegaConf can then also resolve it in place (`--cfg job --resolve`)."""
    return OmegaConf.create(value) if isinstance(value, (list, dict)) else value


if not OmegaConf.has_resolver("image_folder"):
    # `num_classes: ${image_folder:num_classes}`: read off the image folder and the data node's own settings.
    def _image_folder(key: str, *, _parent_):
        from src.data.image_folder_settings import config_value

        return as_node(config_value(key, _parent_))

    OmegaConf.register_new_resolver("image_folder", _image_folder)

if not OmegaConf.has_resolver("table"):
    # `input_shape: ${table:input_shape}`: the encoded width of a CSV/Parquet table with the data node's settings.
    def _table(key: str, *, _parent_):
        from src.data.csv_table import config_value

        return as_node(config_value(key, _parent_))

    OmegaConf.register_new_resolver("table", _table)

if not OmegaConf.has_resolver("shards"):
    # `input_shape: ${shards:input_shape}`: read off the shards' description (shards.json) at data.root.
    def _shards(key: str, *, _parent_):
        from src.data.shard_format import config_value

        return as_node(config_value(key, _parent_))

    OmegaConf.register_new_resolver("shards", _shards)

if not OmegaConf.has_resolver("tracker"):
    # `run_name: ${tracker:name}` (also `group`, `tags`): how MLflow and W&B name this job (src/runs/trackers.py).
    def _tracker(key: str):
        from src.runs.trackers import run_identity

        return as_node(run_identity()[key])

    OmegaConf.register_new_resolver("tracker", _tracker)

if not OmegaConf.has_resolver("wandb_offline"):
    # `offline: ${wandb_offline:}`: true unless a W&B API key is configured (src/runs/trackers.py).
    def _wandb_offline() -> bool:
        from src.runs.trackers import wandb_offline

        return wandb_offline()

    OmegaConf.register_new_resolver("wandb_offline", _wandb_offline)
