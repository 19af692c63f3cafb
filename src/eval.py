"""`python -m src.eval ckpt_path=...`: evaluate a checkpoint on its data set's test split.

Model and data are rebuilt from the configuration stored in the checkpoint; results (metrics JSON,
confusion-matrix CSV) go to a new folder under logs/eval/.
"""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

import src.utils.resolvers  # noqa: F401
from src.utils.errors import exits_on_user_error

log = logging.getLogger(__name__)


def evaluate(cfg: DictConfig) -> dict[str, float]:
    import lightning as L
    from hydra.utils import get_class

    from src.callbacks.confusion_matrix import ConfusionMatrixTable
    from src.utils import instantiate as build
    from src.utils.checkpoint import load_checkpoint
    from src.utils.run_summary import one_line, scalar_metrics, write_metrics

    logging.getLogger("lightning.pytorch").propagate = False
    path, ckpt = load_checkpoint(cfg.ckpt_path)
    run_config = ckpt["run_config"]
    out_dir = Path(cfg.paths.output_dir)
    L.seed_everything(cfg.seed, verbose=False)

    data_cfg = OmegaConf.merge(run_config["data"], cfg.get("data") or {})
    datamodule = build.build_datamodule(data_cfg)
    module_cls = get_class(run_config["model"]["_target_"])
    model = module_cls.load_from_checkpoint(path, map_location="cpu", weights_only=True)
    loggers = build.build_all(cfg.get("logger"))
    trainer = build.build_trainer(cfg.trainer, [ConfusionMatrixTable(csv_dir=str(out_dir))], loggers)
    trainer.test(model, datamodule=datamodule)

    metrics = scalar_metrics(trainer.callback_metrics)
    write_metrics(out_dir / "metrics.json", metrics, ckpt_path=str(path.resolve()))
    print(one_line(metrics) + f"   (checkpoint: {path}; report: {out_dir})", flush=True)
    return metrics


@hydra.main(version_base="1.3", config_path="../conf", config_name="eval")
@exits_on_user_error
def main(cfg: DictConfig) -> float | None:
    return evaluate(cfg).get("test/acc")


if __name__ == "__main__":
    main()
