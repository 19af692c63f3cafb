"""`python -m src.audit`: is the data right? Label errors from a k-fold sweep, duplicates and leakage.

    python -m src.audit logs/train/multiruns/<stamp>          # a k-fold sweep's likely label errors
    python -m src.audit --run data=digits model=mlp folds=5   # run that k-fold sweep first, then audit it
    python -m src.audit duplicates data=fashion_mnist         # exact and near duplicates within and across splits

The label audit writes `label_issues.csv` (and, for images, `label_issues.png` and a TensorBoard image) into
the sweep folder; the duplicate check writes `duplicates.csv` into `logs/audit/runs/<stamp>/`
(docs/evaluation.md#finding-label-errors, docs/evaluation.md#duplicates-and-leakage).
"""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

import src.config.resolvers  # noqa: F401
from src.config.choices import check_command_line
from src.errors import exits_on_user_error, require

OWN_KEYS = ("folds=", "top=")  # --run: the audit's own settings; every other override goes to src.train


@hydra.main(version_base="1.3", config_path="../conf", config_name="audit")
@exits_on_user_error
def main(cfg: DictConfig) -> None:
    # Imported here, not at the top: `--help` and a mistyped command answer before torch and cleanlab load.
    from src.inspection.audit_commands import audit_labels, check_duplicates

    if cfg.action == "duplicates":
        check_duplicates(cfg)
        return
    require(bool(cfg.get("sweep")), "name a k-fold sweep's folder: python -m src.audit logs/train/multiruns/<stamp> "
                                    "(or python -m src.audit --run data=... folds=5, or duplicates data=...).")
    audit_labels(cfg.sweep, int(cfg.top))


@exits_on_user_error
def run(argv: list[str]) -> None:
    """`--run OVERRIDES`: the k-fold sweep through src.train (its own command line), then its audit."""
    from src.inspection.audit_commands import run_and_audit  # (see main)

    own = {a.split("=", 1)[0]: a.split("=", 1)[1] for a in argv if a.startswith(OWN_KEYS)}
    require(all(v.isdigit() for v in own.values()), f"folds and top must be positive integers, got {own}.")
    train_args = [a for a in argv if not a.startswith(OWN_KEYS)]
    check_command_line(["-m", *train_args], config_name="train")  # src.train's own check, before its sweep starts
    run_and_audit(train_args, int(own.get("folds", 5)), int(own.get("top", 30)))


def as_overrides(argv: list[str]) -> list[str]:
    """`src.audit DIR` -> `sweep=DIR`; `src.audit duplicates ...` -> `action=duplicates ...`."""
    if len(argv) > 1 and argv[1] == "duplicates":
        return [argv[0], "action=duplicates", *argv[2:]]
    if len(argv) > 1 and not argv[1].startswith("-") and "=" not in argv[1]:
        return [argv[0], f"sweep={argv[1]}", *argv[2:]]
    return argv


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--run":
        run(sys.argv[2:])
    else:
        sys.argv = as_overrides(sys.argv)
        exits_on_user_error(check_command_line)(sys.argv[1:])
        main()
