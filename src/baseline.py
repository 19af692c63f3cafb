"""`python -m src.baseline data=...`: the classical baselines a reviewer asks for first, on the nets' own split.

scikit-learn's `HistGradientBoostingClassifier` and `LogisticRegression` (conf/baseline.yaml) are fitted on
the training split of the data config a net trains on (same `data.split_seed`, validation fraction or fold,
same test split), on the same inputs flattened after the data set's own normalisation. Each writes a run
folder `<output_dir>/<name>/` holding `metrics.json` (val/test accuracy, loss, macro precision/recall/F1,
calibration, and the run record), `test_predictions.csv` and `.hydra/` (config, overrides with
`model=<name>`), so `src.report` lists them beside the nets and `src.compare` pairs them with a net's run.

    python -m src.baseline data=digits
    python -m src.baseline data=csv data.path=penguins.csv data.target=species
    python -m src.baseline data=iris -m seed=1,2,3
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import hydra
from omegaconf import DictConfig

import src.config.resolvers  # noqa: F401
from src.config.choices import check_command_line
from src.errors import exits_on_user_error


def baseline(cfg: DictConfig) -> dict[str, dict[str, float]]:
    from src import builders
    from src.data.baseline_splits import in_memory_splits
    from src.models.baselines import fit_and_score
    from src.runs.baseline_runs import write_baseline_run

    started = time.perf_counter()
    datamodule = builders.build_datamodule(cfg.data)
    splits = in_memory_splits(datamodule)  # one sentence for data that cannot be held in memory
    results = {}
    for name, spec in (cfg.get("classifiers") or {}).items():
        if not spec:
            continue
        began = time.perf_counter()
        estimator = hydra.utils.instantiate(spec)
        metrics, probabilities = fit_and_score(estimator, splits)
        write_baseline_run(Path(cfg.paths.output_dir) / name, cfg, name, metrics, probabilities, splits,
                           wall_time_s=time.perf_counter() - began)
        results[name] = metrics
        print(f"{name}: test acc={metrics['test/acc']:.4f} loss={metrics['test/loss']:.4f} "
              f"f1={metrics['test/f1']:.4f} (val acc={metrics['val/acc']:.4f})   (run: {cfg.paths.output_dir}/{name})",
              flush=True)
    print(f"{len(results)} baseline(s) in {time.perf_counter() - started:.1f} s", flush=True)
    return results


@hydra.main(version_base="1.3", config_path="../conf", config_name="baseline")
@exits_on_user_error
def main(cfg: DictConfig) -> float | None:
    """The best classifier's optimised metric, for a Hydra sweeper."""
    values = [r[cfg.optimized_metric] for r in baseline(cfg).values() if cfg.optimized_metric in r]
    if not values:
        return None
    return min(values) if cfg.optimized_mode == "min" else max(values)


if __name__ == "__main__":
    exits_on_user_error(check_command_line)(sys.argv[1:])
    main()
