"""Resuming through the Python API (`train(cfg)`), atomic checkpoints, the checkpoint a run folder
resumes from, and the one-sentence errors of the trainer and net settings (in-process, tiny runs)."""

import json
import os
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from src.errors import UserError

QUIET = ["callbacks.progress_bar=null", "callbacks.model_summary=null", "logger=none", "test=false"]


def epochs_in(ckpt: Path) -> int:
    return int(torch.load(ckpt, map_location="cpu", weights_only=True)["epoch"]) + 1


def record(run: Path) -> dict:
    return json.loads((run / "metrics.json").read_text())


def test_train_resumes_with_the_cfg_it_is_given_and_each_call_uses_its_own(compose, tmp_path):
    from src.config.compose import compose_run_config
    from src.train import train

    def composed(name: str, *overrides: str):
        return compose_run_config([*overrides, *QUIET, f"paths.root_dir={tmp_path}"], tmp_path / name, cwd=tmp_path)

    first = composed("first", "trainer.max_epochs=1")
    train(first)
    last = tmp_path / "first" / "checkpoints" / "last.ckpt"
    assert epochs_in(last) == 1

    # Both composed before either trains: the second composition must not leak into the first.
    second, third = composed("second", "seed=5"), composed("third", "seed=6", "optimizer.lr=0.002")
    second.trainer.max_epochs, second.ckpt_path = 2, str(last)  # edits made in Python are honoured
    third.trainer.max_epochs, third.ckpt_path = 3, str(last)
    train(second)
    assert not (tmp_path / "third").exists()
    train(third)
    for name, epochs, seed, lr in (("second", 2, 5, 0.003), ("third", 3, 6, 0.002)):
        run = tmp_path / name
        assert epochs_in(run / "checkpoints" / "last.ckpt") == epochs, name
        config = record(run)["config"]
        assert (config["trainer"]["max_epochs"], config["seed"], config["optimizer"]["lr"]) == (epochs, seed, lr)
        assert config["ckpt_path"] == str(last)
    assert epochs_in(last) == 1  # the resumed checkpoint itself is left as it was


def test_resuming_another_model_is_one_sentence(compose, tmp_path):
    from src.train import train

    cfg = compose(["trainer.max_epochs=1", *QUIET])
    train(cfg)
    other = compose(["model=softmax_regression", *QUIET])
    other.ckpt_path = str(tmp_path / "run" / "checkpoints" / "last.ckpt")
    with pytest.raises(UserError, match=r"was trained with model src\.models\.nets\.mlp\.MLP on digits, but this "
                                        r"configuration has model .* on digits: resume with the run's own"):
        train(other)


def test_a_save_that_fails_half_way_leaves_the_previous_last_ckpt_loadable(compose, tmp_path, monkeypatch):
    from src.runs.resume import checkpoint_to_resume
    from src.train import train

    real_save = torch.save
    saves, at_the_kill = [], []

    def fails_after_half_the_bytes(obj, file, *args, **kwargs):
        """Epoch 2's last.ckpt dies after writing half its bytes, as a process killed while saving."""
        saves.append(Path(getattr(file, "name", str(file))).name)
        if sum(".last.ckpt." in name for name in saves) < 2:
            return real_save(obj, file, *args, **kwargs)
        import io

        buffer = io.BytesIO()
        real_save(obj, buffer, *args, **kwargs)
        file.write(buffer.getvalue()[: len(buffer.getvalue()) // 2])
        file.flush()
        at_the_kill.append(epochs_in(tmp_path / "run" / "checkpoints" / "last.ckpt"))  # what a kill now would leave
        raise OSError(28, "No space left on device")

    cfg = compose(["trainer.max_epochs=2", *QUIET])
    monkeypatch.setattr(torch, "save", fails_after_half_the_bytes)
    with pytest.raises(OSError, match="No space left"):
        train(cfg)
    monkeypatch.undo()
    assert at_the_kill == [1]  # while half of the new file was written, last.ckpt was the previous one, whole
    run = tmp_path / "run"
    last = run / "checkpoints" / "last.ckpt"
    assert epochs_in(last) == 1  # the previous one, whole
    assert [p.name for p in (run / "checkpoints").iterdir() if p.name.startswith(".")] == []
    assert checkpoint_to_resume(run) == last

    resumed = compose(["trainer.max_epochs=2", *QUIET])
    resumed.ckpt_path = str(last)
    train(resumed)
    assert epochs_in(tmp_path / "run" / "checkpoints" / "last.ckpt") == 2


def test_the_checkpoint_to_resume_is_the_newest_complete_one(tmp_path):
    from src.runs.checkpoint_writer import AtomicCheckpointIO
    from src.runs.resume import checkpoint_to_resume, find_last_checkpoint

    folder = tmp_path / "logs" / "train" / "runs" / "a" / "checkpoints"
    io = AtomicCheckpointIO()
    io.save_checkpoint({"step": 1}, folder / "last.ckpt")
    io.save_checkpoint({"step": 2}, folder / "interrupted.ckpt")
    (folder / ".last.ckpt.123.partial").write_bytes(b"PK\x03\x04 half")  # a save killed half way
    assert checkpoint_to_resume(folder.parent) == folder / "interrupted.ckpt"
    os.utime(folder / "last.ckpt")  # resumed since, and saved again
    assert checkpoint_to_resume(folder.parent) == folder / "last.ckpt"
    newer = tmp_path / "logs" / "train" / "runs" / "b" / "checkpoints"
    newer.mkdir(parents=True)
    (newer / "last.ckpt").write_bytes(b"cut short")  # e.g. written by a tool that does not save atomically
    assert find_last_checkpoint(tmp_path / "logs") == folder / "last.ckpt"
    assert checkpoint_to_resume(tmp_path / "logs" / "train" / "runs" / "missing") is None


def test_resume_of_a_checkpoint_without_recorded_choices_compares_the_groups(compose, tmp_path):
    from src.config.names import plain
    from src.runs.resume import resumed_run_config

    run_cfg = compose(["model=mlp", "trainer.max_epochs=1"])
    ckpt = tmp_path / "old.ckpt"
    torch.save({"run_config": plain(run_cfg), "state_dict": {}}, ckpt)  # written before choices were recorded
    same = compose(["model=mlp", f"ckpt_path={ckpt}", "trainer.max_epochs=2"])
    resumed, composition = resumed_run_config(same, ["model=mlp", f"ckpt_path={ckpt}", "trainer.max_epochs=2"],
                                              {"model": "mlp"})
    assert resumed.trainer.max_epochs == 2 and resumed.ckpt_path == str(ckpt)
    assert composition["overrides"] == ["model=mlp", "trainer.max_epochs=2"]
    other = compose(["model=softmax_regression", f"ckpt_path={ckpt}"])
    with pytest.raises(UserError, match="'model=softmax_regression' cannot change it"):
        resumed_run_config(other, ["model=softmax_regression", f"ckpt_path={ckpt}"], {"model": "softmax_regression"})
    with_deletion, _ = resumed_run_config(same, ["~callbacks.early_stopping", "hydra.job.name=x"], {})
    assert "early_stopping" not in with_deletion.callbacks and "hydra" not in with_deletion


def test_negative_hidden_sizes_are_one_sentence_naming_the_key(compose):
    from src.train import train

    with pytest.raises(UserError, match=r"hidden_sizes must be positive integers \(layer widths, e\.g\. "
                                        r"model\.net\.hidden_sizes=\[128,64\]\), got \[-5\]"):
        train(compose(["model.net.hidden_sizes=[-5]", *QUIET]))


def test_an_accelerator_the_machine_lacks_is_one_sentence(compose):
    from src.builders import build_trainer

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    cfg = compose(["trainer.accelerator=gpu"])
    with pytest.raises(UserError, match=r"trainer\.accelerator=gpu needs a CUDA GPU, but PyTorch finds none"):
        build_trainer(cfg.trainer, [], [])
    refused = {**OmegaConf.to_container(cfg.trainer, resolve=True), "accelerator": "cpu",
               "strategy": "no_such_strategy"}
    with pytest.raises(UserError, match=r"the Lightning Trainer refused these trainer\.\* settings \(You selected "
                                        r"an invalid strategy name: `strategy='no_such_strategy'`\)"):
        build_trainer(refused, [], [])
