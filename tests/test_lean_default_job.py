"""The default job reads in one sitting: `python -m src.train` loads a lean core of the project's code, and
every other feature loads only when a config chooses it. `callbacks=none` runs with what Lightning needs,
and the run record and checkpoints work whatever the callbacks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import torch

from tests.conftest import ROOT

# Modules of features the default job does not use (the docs list each feature's files: docs/development.md).
OPTIONAL = (
    "src.models.distill", "src.runs.teacher",
    "src.models.multi_step", "src.models.tricks", "src.models.schedulers", "src.models.finetune", "src.models.losses",
    "src.models.nets.timm_net", "src.models.nets.weights", "src.timm_pretrained", "src.callbacks.finetune",
    "src.callbacks.gpu_speedups", "src.callbacks.tensorboard_reports", "src.callbacks.ema", "src.data.duplicates",
    "src.data.sample_loader", "src.runs.resume", "src.runs.sweep_job", "src.runs.trackers", "src.runs.checkpoint",
    "src.tuning.finders", "src.sweeps", "src.config.sweep_folder", "src.inference", "src.inspection", "src.teaching",
    "src.data.hf_source", "src.data.hf_dataset", "src.data.hf_table", "src.data.hf_stream",
    "src.models.multilabel", "src.models.multilabel_predictions", "src.models.multilabel_reports",
    "src.data.multilabel", "src.data.multilabel_table", "src.data.multilabel_images",
    "src.data.fashion_mnist_multilabel", "src.data.multilabel_folds", "src.inspection.multilabel_issues",
    "src.data.imbalance", "src.models.imbalance", "src.models.class_weights", "src.callbacks.class_recall",
    "src.serve", "src.runs.model_folder",
)
MAX_MODULES, MAX_LINES = 30, 2500

# Runs the default job in this interpreter and prints the project's modules it loaded, with their lines.
SURFACE = textwrap.dedent("""
    import atexit, json, os, runpy, sys
    root = os.environ["PROJECT_ROOT"]
    def report():
        rows = {}
        for name, mod in list(sys.modules.items()):
            path = getattr(mod, "__file__", None) or ""
            inside = path.startswith(root + os.sep) and path.endswith(".py")
            if inside and not any(os.sep + d + os.sep in path for d in (".venv", "tests")):
                rows[name] = sum(1 for _ in open(path, encoding="utf-8"))
        print("SURFACE " + json.dumps(rows), flush=True)
    atexit.register(report)
    sys.argv = ["src/train.py", *sys.argv[1:]]
    runpy.run_module("src.train", run_name="__main__", alter_sys=True)
""")


def test_the_default_job_loads_no_optional_feature_and_stays_within_its_reading_budget(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT), PROJECT_ROOT=str(ROOT), HYDRA_FULL_ERROR="0")
    done = subprocess.run([sys.executable, "-c", SURFACE, "trainer.max_epochs=1"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    loaded = json.loads(done.stdout.rsplit("SURFACE ", 1)[1])
    optional = sorted(m for m in loaded if any(m == o or m.startswith(o + ".") for o in OPTIONAL))
    assert not optional, f"the default job loaded optional features' modules: {optional}"
    read = {m: n for m, n in loaded.items() if n}  # an empty package __init__ is nothing to read
    assert len(read) <= MAX_MODULES and sum(read.values()) <= MAX_LINES, (len(read), sum(read.values()), read)


def test_callbacks_none_runs_and_a_checkpoint_callback_alone_writes_whole_checkpoints(cli):
    result = cli("src.train", "callbacks=none", "trainer.max_epochs=1", "logger=none")
    assert result.returncode == 0, result.output[-3000:]
    assert result.metrics()["test/acc"] > 0.5  # the run record is written without any callback
    (run,) = result.run_dirs()
    assert not (run / "checkpoints").exists()

    result = cli("src.train", "callbacks=[model_checkpoint]", "trainer.max_epochs=1", "logger=none",
                 "hydra.run.dir=logs/train/runs/one")
    assert result.returncode == 0, result.output[-3000:]
    ckpt = torch.load(result.cwd / "logs/train/runs/one/checkpoints/last.ckpt", weights_only=True)
    assert ckpt["run_config"]["model"]["_target_"] == "src.models.classifier.ClassificationModule"
    assert ckpt["run_composition"]["overrides"][:2] == ["callbacks=[model_checkpoint]", "trainer.max_epochs=1"]
    evaluated = cli("src.eval", "ckpt_path=logs/train/runs/one/checkpoints/last.ckpt", "logger=none")
    assert evaluated.returncode == 0, evaluated.output[-3000:]
    assert "test: acc=" in evaluated.output
