"""OmegaConf resolvers the configs may use (registered once, on import)."""

from omegaconf import OmegaConf

if not OmegaConf.has_resolver("len"):
    # `input_shape: ['${len:${data.features}}']`: the number of selected features.
    OmegaConf.register_new_resolver("len", lambda seq: len(seq))
