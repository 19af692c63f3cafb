"""The speed-run recipe (Jordan 2024, arXiv 2404.00498) on the CPU: the net's shapes, the frozen
whitening layer that whitens patches, the alternating flip, the decoupled SGD and schedule, TTA,
lookahead, a short fit through Lightning, and a fast dev run of the Fashion-MNIST experiment."""

from __future__ import annotations

import math
from pathlib import Path

import lightning as L
import pytest
import torch
import torch.nn.functional as F

from src.data.batch_augment import AlternatingFlip, RandomCrop
from src.data.batch_transforms import Compose
from src.data.random_images import RandomImagesDataModule
from src.models.nets.speedrun import PatchWhitening, patch_covariance, speedrun_net
from src.models.speedrun_module import SpeedrunModule
from src.models.speedrun_schedule import decoupled_sgd, set_augmentation_epoch, speedrun_lr_factor, tta_logits

FMNIST = Path("/usr/share/datasets/fashion-mnist")
SGD = {"_target_": "torch.optim.SGD", "_partial_": True, "lr": 11.5, "momentum": 0.85, "nesterov": True,
       "weight_decay": 0.0153}


def small_module(shape=(3, 16, 16), **kwargs) -> SpeedrunModule:
    net = {"_target_": "src.models.nets.speedrun.speedrun_net", "input_shape": list(shape), "num_classes": 4,
           "widths": [8, 16, 16]}
    args = dict(net=net, num_classes=4, optimizer=SGD, batch_size=16, whiten_images=32)
    return SpeedrunModule(**{**args, **kwargs})


def correlated_images(n: int, channels: int = 3, size: int = 12, seed: int = 0) -> torch.Tensor:
    """Images whose neighbouring pixels and channels are correlated (a blurred, channel-mixed noise
    field), plus independent noise so that no patch direction has a tiny variance."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, channels, size + 2, size + 2, generator=g)
    x = F.avg_pool2d(x, 3, stride=1)
    mix = torch.eye(channels) + 0.5 * torch.ones(channels, channels)
    x = torch.einsum("dc,nchw->ndhw", mix, x)
    return x + 0.3 * torch.randn(x.shape, generator=g) + 0.2


# --- the net ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(3, 32, 32), (1, 28, 28)])
def test_net_output_shape_and_layers(shape):
    net = speedrun_net(shape, 10).eval()
    with torch.no_grad():
        assert net(torch.randn(2, *shape)).shape == (2, 10)
    assert net.whiten.out_channels == 2 * shape[0] * 4 and net.whiten.kernel_size == (2, 2)
    assert [b.conv2.out_channels for b in net.blocks] == [64, 256, 256] and net.head.bias is None
    assert math.isclose(net.scaling_factor, 1 / 9)
    norms = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert norms and all(not m.weight.requires_grad and math.isclose(m.momentum, 0.4) for m in norms)
    first = net.blocks[1].conv1.weight  # identity (Dirac) start for the first in_channels filters
    assert torch.equal(first[:64, :, 1, 1], torch.eye(64)) and first[:64, :, 0].abs().sum() == 0


def test_whitening_layer_is_frozen_and_whitens_patches():
    images = correlated_images(200)
    layer = PatchWhitening(3, 2)
    assert not layer.weight.requires_grad and layer.bias.requires_grad
    eigenvalues = layer.fit(images, eps=1e-6)
    assert eigenvalues.min() > 1e-3  # so the eps barely matters below
    _, cov_before = patch_covariance(images, 2)
    assert (cov_before - torch.diag(cov_before.diagonal())).abs().max() > 0.1  # correlated patches
    with torch.no_grad():
        out = layer(images)  # (N, 24, 11, 11)
    d = 12
    flat = out[:, :d].permute(0, 2, 3, 1).reshape(-1, d).double()
    cov = torch.cov(flat.T, correction=0)
    expected = torch.diag((eigenvalues / (eigenvalues + 1e-6)).double())
    assert torch.allclose(cov, expected, atol=1e-4)  # identity, up to eps
    assert torch.allclose(cov, torch.eye(d, dtype=torch.float64), atol=1e-3)
    assert flat.mean(0).abs().max() < 1e-4  # the bias centres the outputs
    assert torch.allclose(out[:, d:], -out[:, :d], atol=1e-5)  # the second half: the negatives
    fresh = layer(correlated_images(200, seed=1)).detach()  # new images of the same kind: still about white
    fresh_cov = torch.cov(fresh[:, :d].permute(0, 2, 3, 1).reshape(-1, d).T.double(), correction=0)
    assert torch.allclose(fresh_cov, torch.eye(d, dtype=torch.float64), atol=0.15)


# --- the alternating flip -----------------------------------------------------------------------------------
def test_alternating_flip_is_deterministic_and_flips_each_image_every_other_epoch():
    torch.manual_seed(0)
    images = torch.randn(200, 3, 8, 8)
    flip = AlternatingFlip(seed=7)
    coin = flip.coin(images)
    assert 0.35 < coin.float().mean() < 0.65  # a random half in epoch 0
    order = torch.randperm(200)  # any batch, order, layout: the same coin per image
    assert torch.equal(flip.coin(images[order[:50]]), coin[order[:50]])
    assert torch.equal(flip.coin(images.contiguous(memory_format=torch.channels_last)), coin)
    assert torch.equal(AlternatingFlip(seed=7).coin(images), coin)
    assert not torch.equal(AlternatingFlip(seed=8).coin(images), coin)
    flipped = []
    for epoch in range(6):
        set_augmentation_epoch(Compose(None, flip, RandomCrop(0)), epoch)  # through a composed transform
        assert flip.epoch == epoch
        perm = torch.randperm(200)
        out = torch.cat([flip(images[perm[i : i + 64]]) for i in range(0, 200, 64)])[perm.argsort()]
        mirrored = (out == images.flip(-1)).flatten(1).all(1)
        assert torch.equal(mirrored | (out == images).flatten(1).all(1), torch.ones(200, dtype=torch.bool))
        flipped.append(mirrored)
    flipped = torch.stack(flipped).int()  # (epoch, image)
    assert torch.equal(flipped[0].bool(), coin)
    assert torch.all(flipped[1:] != flipped[:-1])  # every image alternates...
    assert torch.all(flipped.sum(0) == 3)  # ...so it is mirrored in exactly 3 of 6 epochs


# --- optimisation, TTA, lookahead --------------------------------------------------------------------------
def test_decoupled_sgd_and_lr_schedule_match_the_paper():
    lr, decay = decoupled_sgd(11.5, 0.0153, 0.85, 1024)
    scale = 1024 * (1 + 1 / 0.15)
    assert math.isclose(lr, 11.5 * 1024 / scale) and math.isclose(lr, 1.5, rel_tol=1e-3)
    assert math.isclose(decay, 0.0153 * 1024 / scale)
    assert math.isclose(decoupled_sgd(11.5, 0.0153, 0.85, 512)[0], lr / 2)  # linear in the batch size
    total = 476
    assert speedrun_lr_factor(0, total) == pytest.approx(0.2)
    assert speedrun_lr_factor(int(0.23 * total), total) == pytest.approx(1.0)
    assert speedrun_lr_factor(total, total) == pytest.approx(0.07)
    factors = [speedrun_lr_factor(s, total) for s in range(total + 1)]
    peak = factors.index(max(factors))
    assert all(a <= b for a, b in zip(factors[:peak], factors[1:peak + 1]))
    assert all(a >= b for a, b in zip(factors[peak:], factors[peak + 1:]))
    module = small_module()
    groups = module.param_groups(*decoupled_sgd(11.5, 0.0153, 0.85, 16))
    norm_biases = {id(m.bias) for m in module.net.modules() if isinstance(m, torch.nn.BatchNorm2d)}
    assert {id(p) for p in groups[0]["params"]} == norm_biases
    assert math.isclose(groups[0]["lr"], 64 * groups[1]["lr"])
    assert math.isclose(groups[0]["lr"] * groups[0]["weight_decay"], groups[1]["lr"] * groups[1]["weight_decay"])
    assert all(id(p) != id(module.net.whiten.weight) for g in groups for p in g["params"])  # frozen: not optimised


def test_tta_levels_average_the_views():
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.Flatten(), torch.nn.LazyLinear(3))
    x = torch.randn(4, 1, 6, 6)
    with torch.no_grad():
        net(x)
        assert torch.equal(tta_logits(net, x, 0), net(x))
        mirror = lambda v: 0.5 * (net(v) + net(v.flip(-1)))  # noqa: E731
        assert torch.allclose(tta_logits(net, x, 1), mirror(x))
        padded = F.pad(x, (1, 1, 1, 1), mode="reflect")
        expected = 0.5 * mirror(x) + 0.25 * (mirror(padded[..., :6, :6]) + mirror(padded[..., 2:, 2:]))
        assert torch.allclose(tta_logits(net, x, 2), expected)


def test_lookahead_update_moves_slow_weights_and_resets_the_net():
    module = small_module()
    module.on_train_start()  # the slow weights start as the net's
    start = {k: t.clone() for k, t in module.net.state_dict().items() if t.is_floating_point()}

    def move_fast_weights() -> None:  # what the optimizer does between two lookahead updates
        with torch.no_grad():
            for t in module.net.state_dict().values():
                if t.is_floating_point():
                    t.add_(1.0)  # parameters and buffers (batch-norm statistics) alike

    move_fast_weights()
    module.lookahead_update(0.75)  # slow a quarter of the way to the moved weights; the net holds the slow weights
    for name, t in module.net.state_dict().items():
        if name in start:
            assert torch.allclose(t, start[name] + 0.25), name
    move_fast_weights()
    module.lookahead_update(0.75)  # from the slow weights, not from the moved fast ones
    assert torch.allclose(module.net.head.weight, start["head.weight"] + 0.5)
    assert torch.allclose(module.net.blocks[0].norm1.running_var, start["blocks.0.norm1.running_var"] + 0.5)


# --- through Lightning ----------------------------------------------------------------------------------------
def test_fit_whitens_freezes_schedules_and_stops_at_the_step_budget(tmp_path):
    L.seed_everything(0, verbose=False)
    flip = {"_target_": "src.data.batch_augment.AlternatingFlip", "seed": 1}
    dm = RandomImagesDataModule(name="random_images", num_classes=4, input_shape=[3, 16, 16], num_train=72,
                                num_test=16, batch_size=16, val_fraction=0.12, augment={"flip": flip})
    module = small_module(train_epochs=2.5, whiten_bias_epochs=1)
    initial = module.net.whiten.weight.detach().clone()
    trainer = L.Trainer(accelerator="cpu", max_epochs=3, logger=False, enable_progress_bar=False,
                        enable_model_summary=False, enable_checkpointing=False, num_sanity_val_steps=0)
    trainer.fit(module, datamodule=dm)
    per_epoch = math.ceil(len(dm.train_split) / 16)
    assert module.total_steps == math.ceil(2.5 * per_epoch) == trainer.global_step  # stopped inside epoch 3
    whiten = module.net.whiten
    assert not torch.equal(whiten.weight, initial)  # set from the training patches...
    expected = PatchWhitening(3, 2)
    expected.fit(dm.transform(dm.train_split.inputs[:32]), eps=5e-4)
    assert torch.allclose(whiten.weight, expected.weight, atol=1e-5)  # ...and never trained
    assert not whiten.bias.requires_grad  # frozen after whiten_bias_epochs=1
    (augmentation,) = [t for t in dm.train_transform.transforms if isinstance(t, AlternatingFlip)]
    assert augmentation.epoch == 2  # told the epoch by the module
    trainer.save_checkpoint(tmp_path / "end.ckpt")  # after the last step the net holds the lookahead's slow weights
    slow = torch.load(tmp_path / "end.ckpt", weights_only=True)["speedrun_lookahead"]["slow"]
    net_floats = [t for t in module.net.state_dict().values() if t.is_floating_point()]
    assert len(slow) == len(net_floats) and all(torch.equal(s, t) for s, t in zip(slow, net_floats))
    scheduler = trainer.lr_scheduler_configs[0].scheduler
    assert scheduler.get_last_lr()[1] == pytest.approx(decoupled_sgd(11.5, 0.0153, 0.85, 16)[0] * 0.07)

    def loss_with_tta(split, level: int) -> float:
        module.eval()
        with torch.no_grad():
            return F.cross_entropy(tta_logits(module, dm.transform(split.inputs), level), split.targets).item()

    # validation scores without TTA (val_tta_level=0, as while training), testing with the 6 views (tta_level=2)
    validated = trainer.validate(module, datamodule=dm, verbose=False)[0]
    assert validated["val/loss"] == pytest.approx(loss_with_tta(dm.val_split, 0), rel=1e-5)
    assert loss_with_tta(dm.val_split, 0) != pytest.approx(loss_with_tta(dm.val_split, 2), rel=1e-3)
    test = trainer.test(module, datamodule=dm, verbose=False)[0]
    assert test["test/loss"] == pytest.approx(loss_with_tta(dm.test_split, 2), rel=1e-5)
    assert 0 <= test["test/acc"] <= 1


@pytest.mark.skipif(not (FMNIST / "train-images-idx3-ubyte.gz").is_file(),
                    reason=f"Fashion-MNIST is not installed in {FMNIST} (Debian package dataset-fashion-mnist)")
def test_speedrun_fashion_mnist_fast_dev_run_through_the_cli(cli):
    result = cli("src.train", "experiment=speedrun_fashion_mnist", "debug=fdr", "data.batch_size=64",
                 "model.whiten_images=500", "model.tta_level=1")
    assert result.returncode == 0, result.output[-3000:]
    assert "test: acc=" in result.stdout
