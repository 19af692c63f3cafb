"""Hyper-parameter searches on Optuna: the search space, the study and its storage, the ask/tell loop
that launches one Hydra job per trial, and what `src.report` shows of a study."""
