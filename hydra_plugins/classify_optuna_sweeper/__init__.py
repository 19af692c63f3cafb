"""The project's Optuna sweeper as a Hydra plugin (Hydra finds sweepers in the `hydra_plugins` package)."""
