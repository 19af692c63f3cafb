"""The GPU fast path, exercised on CPU tensors: the data-on-device policy (with a fake free-memory
value), the GPU speed-ups callback (off on the CPU by default; channels-last and torch.compile when
forced; a compiled run's checkpoint loads into an uncompiled module), the synthetic image data set,
and the throughput benchmark's refusal without CUDA."""

from __future__ import annotations

import shutil
import sys
from types import SimpleNamespace

import lightning as L
import pytest
import torch

from src.callbacks.gpu_speedups import GPUSpeedups, is_compiled, strip_compile_prefix, to_channels_last_images
from src.config.names import CONF
from src.data.random_images import UNIFORM_UINT8_STD, RandomImagesDataModule
from src.data.splits import Split, fits_on_device
from src.models.classifier import ClassificationModule

CL = torch.channels_last


def tiny_data(**kwargs) -> RandomImagesDataModule:
    args = dict(name="random_images", num_classes=4, input_shape=[3, 12, 12], num_train=48, num_test=16,
                batch_size=16, val_fraction=0.25)
    return RandomImagesDataModule(**{**args, **kwargs})


def tiny_module() -> ClassificationModule:
    net = {"_target_": "src.models.nets.lenet.lenet5", "input_shape": [3, 12, 12], "num_classes": 4}
    optimizer = {"_target_": "torch.optim.SGD", "_partial_": True, "lr": 0.05}
    return ClassificationModule(net=net, num_classes=4, optimizer=optimizer)


def fit(module, datamodule, callbacks, tmp_path, epochs: int = 1) -> L.Trainer:
    from lightning.pytorch.callbacks import ModelCheckpoint

    trainer = L.Trainer(accelerator="cpu", devices=1, max_epochs=epochs, logger=False, enable_progress_bar=False,
                        enable_model_summary=False, num_sanity_val_steps=0,
                        callbacks=[*callbacks, ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True)])
    trainer.fit(module, datamodule=datamodule)
    return trainer


# --- data on the device: the policy ----------------------------------------------------------------------
def test_fits_on_device_is_a_share_of_free_memory():
    gib = 2**30
    assert fits_on_device(4 * gib, free_bytes=10 * gib, max_fraction=0.5)
    assert fits_on_device(5 * gib, free_bytes=10 * gib, max_fraction=0.5)
    assert not fits_on_device(6 * gib, free_bytes=10 * gib, max_fraction=0.5)
    assert fits_on_device(60 * gib, free_bytes=10 * gib, max_fraction=None)  # null: always
    assert not fits_on_device(1, free_bytes=0, max_fraction=1.0)


def test_target_device_uses_free_gpu_memory_only_on_cuda(monkeypatch):
    split = Split(torch.zeros(100, 1, 10, 10, dtype=torch.uint8), torch.zeros(100, dtype=torch.long))
    size = 100 * 100 + 100 * 8  # bytes of inputs and targets
    asked = []

    def fake_mem_get_info(device=None):
        asked.append(device)
        return free, 10 * size

    monkeypatch.setattr(torch.cuda, "mem_get_info", fake_mem_get_info)
    dm = tiny_data()
    dm.trainer = SimpleNamespace(strategy=SimpleNamespace(root_device=torch.device("cuda:0")))
    free = 4 * size  # the data take a quarter of the free memory: they go to the GPU
    assert dm._target_device(split) == torch.device("cuda:0")
    free = int(1.5 * size)  # two thirds: they stay on the CPU
    assert dm._target_device(split) == torch.device("cpu")
    dm.max_device_fraction = None  # null: always on the device
    assert dm._target_device(split) == torch.device("cuda:0")
    dm.max_device_fraction, dm.device = 0.5, "cuda:0"  # an explicit data.device is obeyed
    assert dm._target_device(split) == torch.device("cuda:0")
    assert asked == [torch.device("cuda:0")] * 3
    cpu = tiny_data()
    cpu.trainer = SimpleNamespace(strategy=SimpleNamespace(root_device=torch.device("cpu")))
    assert cpu._target_device(split) == torch.device("cpu") and len(asked) == 3  # never asked on the CPU


def test_every_data_config_with_a_device_has_the_policy_key(compose):
    configs = [compose([f"data={p.stem}"]).data for p in sorted((CONF / "data").glob("*.yaml"))]
    with_device = [c for c in configs if "device" in c]
    assert len(with_device) >= 9
    assert all(c.max_device_fraction == 0.5 for c in with_device)
    from src.errors import UserError

    with pytest.raises(UserError, match="max_device_fraction"):
        tiny_data(max_device_fraction=0)


# --- synthetic images -------------------------------------------------------------------------------------
def test_random_images_shape_seed_and_normalisation():
    a, b = tiny_data(seed=3), tiny_data(seed=3)
    a.setup(), b.setup()
    assert a.train_split.inputs.dtype == torch.uint8 and tuple(a.train_split.inputs.shape[1:]) == (3, 12, 12)
    assert torch.equal(a.train_split.inputs, b.train_split.inputs) and len(a.train_split) + len(a.val_split) == 48
    assert not torch.equal(a.test_split.inputs, tiny_data(seed=4).load()[2].inputs)
    x, y = next(iter(a.train_dataloader()))
    assert x.shape == (16, 3, 12, 12) and x.dtype == torch.float32 and int(y.max()) < 4
    assert a.std == [UNIFORM_UINT8_STD] * 3 and abs(a.transform(a.train_split.inputs).mean()) < 0.1


# --- the speed-ups callback -----------------------------------------------------------------------------
def test_speedups_do_nothing_on_the_cpu_by_default(tmp_path):
    before = torch.backends.cudnn.benchmark
    module, dm, speedups = tiny_module(), tiny_data(), GPUSpeedups()
    fit(module, dm, [speedups], tmp_path)
    assert not any(speedups.applied.values())
    assert torch.backends.cudnn.benchmark == before
    conv = module.net.features[3].weight
    assert conv.is_contiguous() and not conv.is_contiguous(memory_format=CL)
    assert dm.train_split.inputs.is_contiguous() and not dm.train_split.inputs.is_contiguous(memory_format=CL)
    assert not is_compiled(module.net)


def test_on_cuda_the_defaults_switch_on_and_teardown_restores_the_flags():
    """The CUDA branch, run on CPU tensors with a trainer that says its device is cuda:0."""
    benchmark, precision = torch.backends.cudnn.benchmark, torch.get_float32_matmul_precision()
    module, dm = tiny_module(), tiny_data()
    dm.setup()  # no trainer: CPU tensors
    trainer = SimpleNamespace(strategy=SimpleNamespace(root_device=torch.device("cuda:0")), datamodule=dm)
    speedups = GPUSpeedups()
    try:
        speedups.setup(trainer, module, "fit")
        assert speedups.applied == {"cudnn_benchmark": True, "tf32": True, "channels_last": True, "compile": False}
        assert torch.backends.cudnn.benchmark and torch.get_float32_matmul_precision() == "high"
        assert module.net.features[3].weight.is_contiguous(memory_format=CL)
        assert dm.train_split.inputs.is_contiguous(memory_format=CL)
    finally:
        speedups.teardown(trainer, module, "fit")
    assert torch.backends.cudnn.benchmark == benchmark and torch.get_float32_matmul_precision() == precision
    off = GPUSpeedups(cudnn_benchmark=False, channels_last=False, float32_matmul_precision=None)
    off.setup(trainer, tiny_module(), "fit")
    assert not any(off.applied.values())


def test_channels_last_converts_the_net_and_the_resident_images_once(tmp_path):
    module, dm = tiny_module(), tiny_data()
    speedups = GPUSpeedups(channels_last=True, cudnn_benchmark=False)
    fit(module, dm, [speedups], tmp_path)
    assert speedups.applied["channels_last"]
    assert module.net.features[3].weight.is_contiguous(memory_format=CL)
    for split in (dm.train_split, dm.val_split, dm.test_split):
        assert split.inputs.is_contiguous(memory_format=CL)
    x, _ = next(iter(dm.val_dataloader()))  # cut and normalised batches keep the format: no copy per step
    assert x.is_contiguous(memory_format=CL)
    assert to_channels_last_images(dm) == 0  # already converted
    assert to_channels_last_images(SimpleNamespace(loader="dataloader")) == 0


# torch.compile's default backend (inductor) generates C++ on the CPU: about 12 s here the first time
# (the cache in /tmp makes later runs ~2 s). Without a C++ compiler, aot_eager (same capture, no codegen).
BACKEND = "inductor" if shutil.which("g++") or shutil.which("c++") else "aot_eager"


class CompiledWhen(L.Callback):
    """Records whether the net runs compiled in each stage's batches."""

    def __init__(self) -> None:
        self.seen: dict[str, set[bool]] = {}

    def _record(self, stage: str, pl_module) -> None:
        self.seen.setdefault(stage, set()).add(is_compiled(pl_module.net))

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._record("train", pl_module)

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        self._record("validate", pl_module)

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        self._record("test", pl_module)


def test_compile_lasts_for_each_stage_so_tensorboard_traces_the_plain_net(tmp_path):
    """TensorBoard's graph is traced with torch.jit before fit and again before test, which cannot trace a
    compiled function; the eager backend captures graphs like inductor does, without generating code."""
    from lightning.pytorch.loggers import TensorBoardLogger

    module, dm = tiny_module(), tiny_data(num_train=64)
    speedups, probe = GPUSpeedups(compile=True, compile_backend="eager", compile_dynamic=False), CompiledWhen()
    logger = TensorBoardLogger(tmp_path, name="tb", version="", log_graph=True)
    trainer = L.Trainer(accelerator="cpu", devices=1, max_epochs=1, logger=logger, enable_progress_bar=False,
                        enable_model_summary=False, num_sanity_val_steps=0, enable_checkpointing=False,
                        callbacks=[speedups, probe])
    trainer.fit(module, datamodule=dm)
    assert not is_compiled(module.net)  # plain between stages
    trainer.test(module, datamodule=dm, verbose=False)
    assert probe.seen == {"train": {True}, "validate": {True}, "test": {True}} and speedups.applied["compile"]
    assert not is_compiled(module.net)
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    assert EventAccumulator(str(tmp_path / "tb")).Reload().Tags()["graph"]  # the GRAPHS tab has the model


def test_compile_with_the_default_callbacks_and_logger_through_the_cli(cli):
    from src.inference.model import rebuild_module
    from src.runs.checkpoint import load_checkpoint

    result = cli("src.train", "callbacks=gpu", "callbacks.gpu_speedups.compile=true",
                 f"callbacks.gpu_speedups.compile_backend={BACKEND}", "trainer.max_epochs=1",
                 "trainer.limit_train_batches=3", "trainer.limit_val_batches=2", "trainer.limit_test_batches=2",
                 "callbacks.progress_bar=null")
    assert result.returncode == 0, result.output[-3000:]
    (run,) = result.run_dirs()
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))
    # the compiled run's checkpoint holds the plain names and loads into an uncompiled module
    path, ckpt = load_checkpoint(str(run / "checkpoints" / "last.ckpt"))
    assert not any("_orig_mod" in k for k in ckpt["state_dict"])
    module = rebuild_module(path, ckpt)
    from src.builders import build_datamodule

    datamodule = build_datamodule(ckpt["run_config"]["data"])
    datamodule.setup("test")
    batches = list(datamodule.test_dataloader())[:2]  # the two test batches the run scored
    with torch.no_grad():
        losses = [(torch.nn.functional.cross_entropy(module(x), y, reduction="sum"), len(y)) for x, y in batches]
    loss = float(sum(v for v, _ in losses) / sum(n for _, n in losses))
    assert loss == pytest.approx(result.metrics()["test/loss"], rel=1e-4)


def test_compile_prefixes_are_stripped_from_checkpoints():
    net = tiny_module().net
    wrapped = torch.compile(net)  # a wrapper: its state dict says _orig_mod.<name> (nothing is compiled yet)
    state = wrapped.state_dict()
    assert all(k.startswith("_orig_mod.") for k in state)
    fresh = tiny_module().net
    fresh.load_state_dict(strip_compile_prefix(state))
    checkpoint = {"state_dict": {f"net.{k}": v for k, v in state.items()}}
    GPUSpeedups().on_save_checkpoint(None, None, checkpoint)
    assert set(checkpoint["state_dict"]) == {f"net.{k}" for k in net.state_dict()}


def test_gpu_speedups_are_in_callbacks_gpu_beside_the_default_callbacks(compose):
    assert "gpu_speedups" not in compose([]).callbacks  # the default job loads none of their code
    cfg = compose(["callbacks=gpu"])
    assert cfg.callbacks.gpu_speedups._target_ == "src.callbacks.gpu_speedups.GPUSpeedups"
    assert cfg.callbacks.gpu_speedups.compile is False
    assert set(compose(["callbacks=default"]).callbacks) < set(cfg.callbacks)
    cfg = compose(["callbacks=gpu", "callbacks.gpu_speedups.compile=true",
                   "callbacks.gpu_speedups.compile_mode=max-autotune"])
    assert cfg.callbacks.gpu_speedups.compile is True


# --- the benchmark ------------------------------------------------------------------------------------------
def test_throughput_benchmark_refuses_without_cuda(monkeypatch, capsys):
    from benchmarks import throughput

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(sys, "argv", ["throughput.py"])
    with pytest.raises(SystemExit) as info:
        throughput.main()
    assert info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "CUDA" in err and "--cpu-smoke" in err and len(err.splitlines()) == 1
