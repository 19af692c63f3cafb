"""OmegaConf resolvers the configs may use (registered once, on import).

Every entry point imports this module first, so it imports nothing heavy: the resolvers that read a data
set's files or the trackers' settings import their modules when a config first uses them."""

import os
from importlib import import_module

from omegaconf import OmegaConf


def as_node(value):
    """A list or dict as a config node: OmegaConf can then also resolve it in place (`--cfg job --resolve`)."""
    return OmegaConf.create(value) if isinstance(value, (list, dict)) else value


def read_off(module: str):
    """`${image_folder:num_classes}` and the like: `config_value(key, data node)` of `module`, imported on first use."""
    return lambda key, *, _parent_: as_node(import_module(module).config_value(key, _parent_))


RESOLVERS = {
    "len": lambda seq: len(seq),  # `input_shape: ['${len:${data.features}}']`: the number of selected features
    "cwd": os.getcwd,  # `root_dir: ${cwd:}`: the folder the command runs from (known before a sweep is set up)
    "pid": os.getpid,  # `${pid:}` in run folder names: no two processes share a folder
    # read off the data set with the data node's own settings: an image folder, a table, shards (shards.json)
    "image_folder": read_off("src.data.image_folder_settings"),
    "table": read_off("src.data.csv_table"),
    "shards": read_off("src.data.shard_format"), "hf": read_off("src.data.hf_table"),  # and a Hugging Face set
    # how MLflow and W&B name this job (`run_name: ${tracker:name}`, also group and tags), and W&B offline
    # unless an API key is configured (`offline: ${wandb_offline:}`): src/runs/trackers.py
    "tracker": lambda key: as_node(import_module("src.runs.trackers").run_identity()[key]),
    "wandb_offline": lambda: import_module("src.runs.trackers").wandb_offline(),
}
for name, resolver in RESOLVERS.items():
    if not OmegaConf.has_resolver(name):
        OmegaConf.register_new_resolver(name, resolver)
