"""`python -m src.shard data=<image data set> output=DIR_OR_URL`: write a data set's splits as LitData shards,
which `data=shards data.root=DIR_OR_URL` trains from (src/data/shard_writer.py; docs/data.md).

    python -m src.shard data=image_folder data.root=photos data.image_size=128 output=shards/photos
    python -m src.shard data=fashion_mnist output=s3://bucket/fashion-mnist image_format=raw
"""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

import src.config.resolvers  # noqa: F401  (registers ${image_folder:...})
from src.config.choices import check_command_line
from src.errors import exits_on_user_error

# Settings of the data config that change how batches are served, not which images land in which split.
SERVING_KEYS = ("batch_size", "loader", "num_workers", "pin_memory", "device", "max_device_fraction",
                "steps_per_epoch", "cache_dir", "decode_workers", "max_memory_fraction",
                "random_resized_crop", "horizontal_flip", "auto_augment", "color_jitter", "download")


def shard(cfg: DictConfig) -> dict:
    # Imported here, as in the other entry points: --help and config errors answer without loading torch.
    from src import builders
    from src.config.names import plain
    from src.data.shard_writer import write_shards

    data = plain(cfg.data)
    source = {k: v for k, v in data.items() if k not in SERVING_KEYS}
    datamodule = builders.build_datamodule(cfg.data)
    meta = write_shards(datamodule, str(cfg.output), source, image_format=cfg.image_format,
                        jpeg_quality=cfg.jpeg_quality, workers=cfg.workers, chunk_bytes=cfg.chunk_bytes,
                        staging_dir=cfg.get("staging_dir"))
    counts = ", ".join(f"{n} {k}" for k, n in meta["samples"].items())
    print(f"{cfg.output}: {meta['name']} shards ({counts}; {meta['image_format']}); train with "
          f"python -m src.train data=shards data.root={cfg.output}", flush=True)
    return meta


@hydra.main(version_base="1.3", config_path="../conf", config_name="shard")
@exits_on_user_error
def main(cfg: DictConfig) -> None:
    shard(cfg)


if __name__ == "__main__":
    exits_on_user_error(check_command_line)(sys.argv[1:])
    main()
