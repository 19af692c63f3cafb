"""Reading a checkpoint: each way a file can be unreadable gets its own sentence, the cause chained."""

from __future__ import annotations

import pytest
import torch

from src.errors import UserError
from src.runs.checkpoint import load_checkpoint


class Opaque:
    """A Python object that torch's safe loader does not know."""


@pytest.fixture
def saved(tmp_path):
    path = tmp_path / "whole.ckpt"
    torch.save({"state_dict": {"w": torch.zeros(64)}, "run_config": {}}, path)
    return path


def test_a_truncated_checkpoint_says_so_with_the_readers_reason(saved, tmp_path):
    cut = tmp_path / "cut.ckpt"
    cut.write_bytes(saved.read_bytes()[: saved.stat().st_size // 2])
    with pytest.raises(UserError, match=r"cut.ckpt is not a readable PyTorch checkpoint \(RuntimeError: "
                                        r"PytorchStreamReader failed .*\); it may be truncated or corrupt") as caught:
        load_checkpoint(str(cut))
    assert isinstance(caught.value.__cause__, RuntimeError)
    empty = tmp_path / "empty.ckpt"
    empty.write_bytes(b"")
    with pytest.raises(UserError, match=r"\(EOFError: the file ends early\)"):
        load_checkpoint(str(empty))


@pytest.mark.parametrize("protocol", [2, 4], ids=["torch_default_pickle", "pickle_protocol_4"])
def test_a_checkpoint_holding_python_objects_is_called_unsafe_not_corrupt(tmp_path, protocol):
    path = tmp_path / "objects.ckpt"
    torch.save({"state_dict": {}, "run_config": {}, "extra": Opaque()}, path, pickle_protocol=protocol)
    with pytest.raises(UserError, match=r"holds Python objects .*besides tensors and plain values, so it is unsafe "
                                        r"to load \(unpickling it could run code\)") as caught:
        load_checkpoint(str(path))
    assert "corrupt" not in str(caught.value) and caught.value.__cause__ is not None
    if protocol == 2:  # torch's scan names the objects where its scanner reads the pickle
        assert "(tests.runs.test_checkpoint.Opaque)" in str(caught.value)


def test_eval_of_an_unsafe_checkpoint_is_one_sentence_exit_2(cli_in_process, tmp_path):
    path = tmp_path / "objects.ckpt"
    torch.save({"state_dict": {}, "run_config": {}, "extra": Opaque()}, path)
    result = cli_in_process("src.eval", f"ckpt_path={path}")
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2 and len(errors) == 1, result.output
    assert errors[0].startswith(f"error: {path} holds Python objects") and "unsafe to load" in errors[0], errors


def test_a_whole_checkpoint_loads(saved):
    path, ckpt = load_checkpoint(str(saved))
    assert path == saved and torch.equal(ckpt["state_dict"]["w"], torch.zeros(64))
