"""`python -m src.visualize <topic> key=value ...`: teaching figures drawn by the project's own code.

    python -m src.visualize activations             # activations + derivatives; vanishing gradients, measured
    python -m src.visualize filters data=fashion_mnist index=0
    python -m src.visualize pooling
    python -m src.visualize cnn ckpt_path=logs/train/runs/<run>/checkpoints/last.ckpt index=3
    python -m src.visualize iris ckpt_path=...      # or without: trained here with the notes' recipe
    python -m src.visualize xor                     # perceptron_ckpt=... mlp_ckpt=... or trained here
    python -m src.visualize datasets                # notes 3's data-set table from conf/data/*.yaml

PNGs go to `out_dir` (default `logs/visuals/<topic>/`); with `run_dir=<a training run folder>` they
are also added to that run's TensorBoard (IMAGES tab, `visuals/<topic>/<name>`). `topic=<topic>`
is the same as the first word. The drawing code lives in `src/teaching/`, one module per topic.
"""

from __future__ import annotations

import importlib
import sys

import hydra
from omegaconf import DictConfig, OmegaConf

import src.config.resolvers  # noqa: F401
from src.config.choices import check_command_line
from src.errors import exits_on_user_error, require
from src.teaching import TOPICS


def visualize(cfg: DictConfig) -> list:
    from src.teaching.output import Output

    choices = ", ".join(TOPICS)
    require(not OmegaConf.is_missing(cfg, "topic"), f"name a topic: python -m src.visualize <topic>, one of {choices}.")
    topic = str(cfg.topic)
    require(topic in TOPICS, f"topic={topic!r} is unknown; choose one of {choices}.")
    output = Output(cfg.out_dir, topic, cfg.get("run_dir"))
    try:
        importlib.import_module(f"src.teaching.{topic}").render(cfg, output)
    finally:
        output.close()
    for path in output.files:
        print(f"wrote {path}", flush=True)
    if output.writer is not None:
        print(f"added to TensorBoard: {output.writer.log_dir} (tags visuals/{topic}/...)", flush=True)
    return output.files


@hydra.main(version_base="1.3", config_path="../conf", config_name="visualize")
@exits_on_user_error
def main(cfg: DictConfig) -> None:
    visualize(cfg)


def topic_as_override(argv: list[str]) -> list[str]:
    """`python -m src.visualize filters data=x` -> `... topic=filters data=x` (Hydra takes key=value only)."""
    if len(argv) > 1 and not argv[1].startswith("-") and "=" not in argv[1]:
        return [argv[0], f"topic={argv[1]}", *argv[2:]]
    return argv


if __name__ == "__main__":
    sys.argv = topic_as_override(sys.argv)
    exits_on_user_error(check_command_line)(sys.argv[1:])
    main()
