"""OmegaConf resolvers the configs may use (registered once, on import)."""

from omegaconf import OmegaConf

if not OmegaConf.has_resolver("len"):
    # `input_shape: ['${len:${data.features}}']`: the number of selected features.
    OmegaConf.register_new_resolver("len", lambda seq: len(seq))

if not OmegaConf.has_resolver("cwd"):
    # `root_dir: ${cwd:}`: the folder the command runs from (known before Hydra sets up a sweep).
    import os

    OmegaConf.register_new_resolver("cwd", os.getcwd)

if not OmegaConf.has_resolver("pid"):
    # `${pid:}` in run folder names: two processes never share a folder, even started in the same microsecond.
    import os

    OmegaConf.register_new_resolver("pid", os.getpid)
