"""Hydra-level mistakes on the command line, typed as a user types them, in every entry point: a misspelt key
(with or without `+`, `~`, in a sweep), a `hydra.sweeper.*` setting the Optuna sweeper does not take, a search
expression for `hydra.sweeper.params.*`, and conflicting modes each end in one sentence (exit code 2) naming
the nearest key, before any data or torch is loaded (docs/configuration.md#command-line-mistakes)."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
import yaml

from src.config.choices import check_command_line
from src.config.names import CONF
from tests.conftest import ROOT, assert_one_sentence

SEARCH = ["hparams_search=digits_optuna", "logger=none", "trainer.max_epochs=1", "callbacks.progress_bar=null",
          "callbacks.model_summary=null", "trainer.limit_train_batches=4", "test=false"]


@pytest.mark.parametrize("args,said", [
    (["optimizer.lrr=0.1"], "optimizer.lrr is not a setting of optimizer=adam; did you mean optimizer.lr?"),
    (["trainer.max_epoch=3"],
     "trainer.max_epoch is not a setting of trainer=default; did you mean trainer.max_epochs?"),
    (["data.batchsize=64"], "data.batchsize is not a setting of data=digits; did you mean data.batch_size?"),
    (["model=lenet", "model.net.activaton=tanh"],
     "model.net.activaton is not a setting of model=lenet; did you mean model.net.activation?"),
    (["model.dropout_rate=[1,2]"], "model.dropout_rate is not a setting of model=mlp; model holds loss, "),
    (["optimzer.lr=0.1"],
     "optimzer.lr is not a setting of the train config (conf/train.yaml); did you mean optimizer.lr?"),
    (["lr=0.1"], "lr is not a setting of the train config (conf/train.yaml); did you mean optimizer.lr?"),
    (["~optimizer.lrr"], "~optimizer.lrr removes nothing: optimizer.lrr is not a setting of optimizer=adam; did you "
                         "mean optimizer.lr?"),
    (["~optimizer.lr=0.5"], "~optimizer.lr=0.5 removes nothing: optimizer.lr is 0.003; write ~optimizer.lr to remove"),
    (["+optimizer.lr=0.1"], "optimizer.lr is a setting already; set it without the +: optimizer.lr=0.1."),
    (["-m", "optimizer.lrr=0.1,0.01"], "optimizer.lrr is not a setting of optimizer=adam; did you mean optimizer.lr?"),
    (["hydra/launcher=joblb"], "hydra/launcher=joblb names no config; did you mean joblib? the choices are basic,"),
    (["-m", "--cfg", "job"], "-m and --cfg cannot be combined"),
    (["optimizer.lr=0.1,0.01"],
     "optimizer.lr=0.1,0.01 is a sweep: add -m to run one job per value, or give one value."),
    (["hparams_search=digits_optuna", "optimizer.lr=interval(0.1,0.2)", "--cfg", "job"],
     "optimizer.lr=interval(0.1,0.2) is a sweep, and --cfg / --info show the config of one job: give it one value."),
])
def test_a_misspelt_key_of_train_names_the_nearest_key(cli_in_process, args, said):
    line = assert_one_sentence(cli_in_process("src.train", *args), said)
    assert len(line) <= 300, line


@pytest.mark.parametrize("module,args,said", [
    ("src.eval", ["ckpt_pth=last.ckpt"], "ckpt_pth is not a setting of the eval config (conf/eval.yaml); did you mean "
                                         "ckpt_path?"),
    ("src.eval", ["ckpt_path=last.ckpt", "data.batch_size=8"],  # eval's data node is empty: it takes new keys
     "data.batch_size is not a setting of the eval config (conf/eval.yaml); data holds nothing (+data.batch_size"),
    ("src.eval", ["ckpt_path=last.ckpt", "data=digits"],  # eval chooses no data: the checkpoint's is used
     "data=... chooses nothing here: the eval config chooses only logger, paths, trainer (conf/eval.yaml); it "
     "rebuilds data and model from the checkpoint's own config."),
    ("src.shard", ["model=mlp"], "model=... chooses nothing here: the shard config chooses only data, paths"),
    ("src.predict", ["ckpt_path=last.ckpt", "inputs=a.png", "batchsize=8"], "did you mean batch_size?"),
    ("src.export", ["ckpt_path=last.ckpt", "formt=onnx"], "formt is not a setting of the export config"),
    ("src.visualize", ["cam", "ckpt_path=last.ckpt", "topp=3"], "topp is not a setting of the visualize config"),
    ("src.calibrate", ["ckpt_pth=last.ckpt"], "did you mean ckpt_path?"),
    ("src.baseline", ["~classifiers.svm"], "~classifiers.svm removes nothing: classifiers.svm is not a setting of the "
                                           "baseline config (conf/baseline.yaml); classifiers holds "
                                           "hist_gradient_boosting, logistic_regression"),
    ("src.baseline", ["~classifiers.logistic_regresion"], "did you mean classifiers.logistic_regression?"),
    ("src.audit", ["duplicates", "duplicate_distanse=3"], "did you mean duplicate_distance?"),
    ("src.audit", ["--run", "optimizer.lrr=0.1", "folds=2"],  # src.train's key, checked before its sweep starts
     "optimizer.lrr is not a setting of optimizer=adam; did you mean optimizer.lr?"),
    ("src.shard", ["data.batchsize=64"],
     "data.batchsize is not a setting of data=digits; did you mean data.batch_size?"),
])
def test_a_misspelt_key_in_every_entry_point_names_the_nearest_key(cli_in_process, module, args, said):
    line = assert_one_sentence(cli_in_process(module, *args), said)
    assert len(line) <= 300, line


@pytest.mark.parametrize("args,said", [
    (["hydra.sweeper.n_trial=2"],
     "hydra.sweeper.n_trial is not a setting of the Optuna sweeper; did you mean hydra.sweeper.n_trials?"),
    (["+hydra.sweeper.n_trial=2"],  # Hydra's own advice: once added, the search would run its 20 trials
     "hydra.sweeper.n_trial is not a setting of the Optuna sweeper; did you mean hydra.sweeper.n_trials?"),
    (["hydra.sweeper.pruner_args.n_warmup=2"], "hydra.sweeper.pruner_args.n_warmup is not an argument of the median "
                                               "pruner (optuna.pruners.MedianPruner); did you mean "
                                               "hydra.sweeper.pruner_args.n_warmup_steps?"),
    (["+hydra.sweeper.pruner_args.n_warmup=2"], "did you mean hydra.sweeper.pruner_args.n_warmup_steps?"),
    (["hydra.sweeper.pruner_args.interval_steps=2"],  # the median pruner's, not set by the config
     "add it with +hydra.sweeper.pruner_args.interval_steps=VALUE."),
    (["hydra.sweeper.pruner=hyperband"],  # the config's median arguments do not fit
     "hydra.sweeper.pruner_args.n_startup_trials is not an argument of the hyperband pruner"),
    (["hydra.sweeper.params.optimizer.lr=interval(0.001,0.1)"],
     "search optimizer.lr with optimizer.lr=interval(0.001,0.1)"),
    (["hydra.sweeper.params.optimizer.lr=intervl(0.001,0.1)"], "write optimizer.lr=interval(0.001,0.1)."),
    (["hydra.sweeper.params.optimizer.lr='interval(0.001,0.1)'"],  # quoted: not a sweep, but the path has no end
     "give it on the command line as optimizer.lr=interval(0.001,0.1), which also replaces a config's entry"),
    (["~hydra.sweeper.pruner_arg"], "~hydra.sweeper.pruner_arg removes nothing: hydra.sweeper.pruner_arg is not a "
                                    "setting of hydra/sweeper=optuna; did you mean hydra.sweeper.pruner_args?"),
])
def test_a_setting_the_optuna_sweeper_does_not_take_ends_in_one_sentence(cli_in_process, args, said):
    line = assert_one_sentence(cli_in_process("src.train", *SEARCH, *args), said)
    assert len(line) <= 300, line


def test_a_sweeper_setting_without_the_optuna_sweeper_says_how_to_choose_it(cli_in_process):
    assert_one_sentence(cli_in_process("src.train", "hydra.sweeper.n_trials=2"),
                        "hydra.sweeper.n_trials is a setting of the Optuna sweeper, not of hydra/sweeper=basic; "
                        "choose that sweeper with hparams_search=NAME or hydra/sweeper=optuna.")


def test_the_form_a_refused_search_expression_suggests_runs(cli, cli_in_process, tmp_path):
    refused = cli_in_process("src.train", *SEARCH, "hydra.sweeper.params.optimizer.lr=intervl(0.001,0.1)")
    suggested = re.search(r"write (\S+)\.$", assert_one_sentence(refused)).group(1)
    assert suggested == "optimizer.lr=interval(0.001,0.1)"
    sweep = tmp_path / "sweep"
    result = cli("src.train", *SEARCH, "hydra.sweeper.n_trials=1", suggested, f"hydra.sweep.dir={sweep}")
    assert result.returncode == 0, result.output[-3000:]
    (trial,) = yaml.safe_load((sweep / "optimization_results.yaml").read_text())["best_trials"]
    assert 0.001 <= float(trial["params"]["optimizer.lr"]) <= 0.1


def test_the_sweeper_schema_lists_every_key_of_its_config():
    from src.sweeps.settings import HYDRA_KEYS, SETTINGS

    keys = set(yaml.safe_load((CONF / "hydra" / "sweeper" / "optuna.yaml").read_text()))
    assert keys - set(HYDRA_KEYS) == set(SETTINGS)


@pytest.mark.parametrize("args", [
    ["optimizer.lr=0.01", "+optimizer.foreach=true", "~callbacks.early_stopping", "trainer.max_epochs=2"],
    ["-m", "optimizer.lr=0.1,0.01", "model=mlp,lenet", "seed=range(1,4)", "data.fold=range(0,5)", "data.num_folds=5"],
    ["-m", *SEARCH, "optimizer.lr=tag(log,interval(0.001,0.1))", "hydra.sweeper.n_trials=3",
     "hydra.sweeper.pruner=hyperband", "~hydra.sweeper.pruner_args", "+hydra.sweeper.pruner_args.max_resource=3",
     "+hydra.sweeper.params.model.net.dropout='interval(0.0,0.5)'"],
    ["experiment=notes3_xor_mlp", "trainer.max_steps=2000", "hydra.run.dir=somewhere", "hydra/launcher=joblib"],
    ["--cfg", "job", "data=iris", "model=softmax_regression"],
    ["-m", "model=glob(ml*)", "optimizer=glob(*)"],
])
def test_commands_hydra_accepts_pass_the_check(args):
    check_command_line(args, "train")


@pytest.mark.parametrize("module,args", [
    ("src.train", ["optimizer.lrr=0.1"]),
    ("src.train", [*SEARCH, "+hydra.sweeper.n_trial=2"]),
    ("src.eval", ["ckpt_pth=last.ckpt"]),
])
def test_a_refused_command_ends_before_torch_loads(tmp_path, module, args):
    probe = ("import runpy, sys\n"
             f"sys.argv = [{module!r}, *{args!r}]\n"
             "try:\n"
             f"    runpy.run_module({module!r}, run_name='__main__', alter_sys=True)\n"
             "except SystemExit as exc:\n"
             "    print('exit', exc.code, 'torch' in sys.modules, 'optuna' in sys.modules)\n")
    result = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True,
                            env=dict(os.environ, PYTHONPATH=str(ROOT), HYDRA_FULL_ERROR="0"), timeout=120)
    assert result.stdout.strip() == "exit 2 False False", result.stdout + result.stderr[-2000:]
    assert result.stderr.startswith("error: "), result.stderr[-2000:]
