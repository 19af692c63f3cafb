"""The math of the training tricks and schedules (src/models/tricks.py, schedulers.py, src/callbacks/ema.py, the
module's options)."""

import math

import pytest
import torch
import torch.nn.functional as F

from src.callbacks.ema import EMA
from src.errors import UserError
from src.models.classifier import ClassificationModule
from src.models.losses import MULTICLASS_LOSSES
from src.models.schedulers import build_scheduler, scheduler_interval
from src.models.tricks import BatchMixer

SGD = {"_target_": "torch.optim.SGD", "_partial_": True, "lr": 0.1}


def mlp(input_shape=(1, 8, 8), num_classes=10, **kw):
    net = {"_target_": "src.models.nets.mlp.MLP", "input_shape": list(input_shape), "num_classes": num_classes,
           "hidden_sizes": [16], **kw.pop("net", {})}
    return ClassificationModule(net=net, num_classes=num_classes, optimizer=kw.pop("optimizer", dict(SGD)), **kw)


# --- label smoothing -------------------------------------------------------------------------------
@pytest.mark.parametrize("loss", sorted(MULTICLASS_LOSSES))
@pytest.mark.parametrize("soft", [False, True])
def test_label_smoothing_equals_torch_cross_entropy_in_every_formulation(loss, soft):
    torch.manual_seed(0)
    logits = torch.randn(16, 7)
    target = torch.softmax(torch.randn(16, 7), 1) if soft else torch.randint(0, 7, (16,))
    for eps in (0.0, 0.1, 0.3):
        ours = MULTICLASS_LOSSES[loss](logits, target, label_smoothing=eps)
        assert ours.item() == pytest.approx(F.cross_entropy(logits, target, label_smoothing=eps).item(), rel=1e-5)


def test_label_smoothing_applies_to_the_training_loss_only():
    torch.manual_seed(0)
    module = mlp(label_smoothing=0.1)
    x, y = torch.randn(8, 1, 8, 8), torch.randint(0, 10, (8,))
    logits = module(x)
    assert module.compute_loss(logits, y).item() == pytest.approx(
        F.cross_entropy(logits, y, label_smoothing=0.1).item(), rel=1e-6)
    module.eval()
    assert module.compute_loss(logits, y).item() == pytest.approx(F.cross_entropy(logits, y).item(), rel=1e-6)


# --- mixup / cutmix --------------------------------------------------------------------------------
def test_mixup_blends_images_and_targets_with_one_weight():
    torch.manual_seed(0)
    x, y = torch.randn(8, 1, 8, 8), torch.arange(8)
    mixed, soft = BatchMixer(10, mixup_alpha=0.4)(x, y)
    assert soft.shape == (8, 10) and torch.allclose(soft.sum(1), torch.ones(8))
    lam = soft[0, 0]  # image 0 keeps weight lam, the next one (roll by 1) gets 1 - lam
    assert torch.allclose(soft[:, y].diagonal(), lam.expand(8)) and torch.allclose(soft[1, 0], 1 - lam)
    assert torch.allclose(mixed, lam * x + (1 - lam) * x.roll(1, 0), atol=1e-6)


def test_cutmix_targets_are_the_pasted_area():
    torch.manual_seed(1)
    x = torch.arange(8.0).view(8, 1, 1, 1).expand(8, 3, 16, 16).clone()  # image i is all i
    y = torch.arange(8)
    for _ in range(5):
        mixed, soft = BatchMixer(10, cutmix_alpha=1.0)(x, y)
        assert torch.allclose(soft.sum(1), torch.ones(8))
        from_next = (mixed[1] == 0).float().mean()  # pixels of image 1 that came from image 0
        assert soft[1, 0].item() == pytest.approx(from_next.item(), abs=1e-6)


def test_mixup_and_cutmix_together_still_give_distributions():
    torch.manual_seed(2)
    mixer = BatchMixer(5, mixup_alpha=0.2, cutmix_alpha=1.0)
    for _ in range(4):
        _, soft = mixer(torch.randn(6, 3, 8, 8), torch.randint(0, 5, (6,)))
        assert soft.shape == (6, 5) and torch.allclose(soft.sum(1), torch.ones(6)) and (soft >= 0).all()


def test_training_loss_is_soft_target_cross_entropy_on_the_mixed_batch():
    torch.manual_seed(0)
    module = mlp(mixup_alpha=0.4, label_smoothing=0.1)
    x, y = torch.randn(16, 1, 8, 8), torch.randint(0, 10, (16,))
    torch.manual_seed(5)
    mixed, soft = BatchMixer(10, mixup_alpha=0.4)(x, y)
    expected = F.cross_entropy(module.net(mixed), soft, label_smoothing=0.1)
    torch.manual_seed(5)
    loss = module.training_step((x, y), 0)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    correct = (module.net(mixed).argmax(1) == soft.argmax(1)).sum()
    batch = module.train_sums.last  # what the module reports to per-step callbacks (StepHistory)
    assert batch.correct.item() == correct.item() and batch.size == 16
    assert batch.loss.item() == pytest.approx(expected.item(), rel=1e-6)


@pytest.mark.parametrize("key,value", [("mixup_alpha", 0.2), ("cutmix_alpha", 1.0), ("tta_flip", True)])
def test_image_recipes_refuse_non_image_input(key, value):
    with pytest.raises(UserError, match=f"model.{key} works on images"):
        mlp(input_shape=(4,), num_classes=3, **{key: value})
    with pytest.raises(UserError, match="need image batches"):
        BatchMixer(3, mixup_alpha=0.2)(torch.randn(4, 4), torch.tensor([0, 1, 2, 0]))


def test_bad_recipe_values_are_user_errors():
    with pytest.raises(UserError, match="model.label_smoothing must be in"):
        mlp(label_smoothing=1.0)
    with pytest.raises(UserError, match="model.mixup_alpha must be >= 0"):
        mlp(mixup_alpha=-1)


# --- test-time augmentation ------------------------------------------------------------------------
def test_tta_flip_averages_the_softmax_of_x_and_its_mirror_image():
    torch.manual_seed(0)
    module = mlp(tta_flip=True).eval()
    x = torch.randn(5, 1, 8, 8)
    with torch.no_grad():
        expected = (torch.softmax(module.net(x), 1) + torch.softmax(module.net(x.flip(-1)), 1)) / 2
        assert torch.allclose(module.eval_outputs(x).exp(), expected, atol=1e-6)
        assert torch.allclose(module.predict_proba(x), expected, atol=1e-6)
        plain = mlp().eval()
        plain.load_state_dict(module.state_dict())
        assert not torch.allclose(plain.predict_proba(x), expected)
    y = torch.randint(0, 10, (5,))
    import lightning as L

    trainer = L.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=5)
    (logged,) = trainer.validate(module, dataloaders=loader, verbose=False)
    assert logged["val/loss"] == pytest.approx(F.nll_loss(expected.log(), y).item(), rel=1e-5)  # scored flip-averaged


# --- EMA -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("warmup", [True, False])
def test_ema_weights_follow_the_formula_after_k_steps(warmup):
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3))
    optimizer = torch.optim.SGD(net.parameters(), lr=0.5)
    ema = EMA(decay=0.8, warmup=warmup)
    ema.attach(net, [optimizer])
    expected = {k: v.detach().clone().float() for k, v in net.state_dict().items()}
    for n in range(7):
        optimizer.zero_grad()
        net(torch.randn(8, 4)).pow(2).mean().backward()
        optimizer.step()
        d = min(0.8, (1 + n) / (10 + n)) if warmup else 0.8
        for k, v in net.state_dict().items():
            if v.is_floating_point():
                expected[k] = d * expected[k] + (1 - d) * v
            else:
                expected[k] = v.clone()
    assert ema.num_updates == 7
    ema.swap_in()  # the net now holds the average
    for name, value in net.state_dict().items():
        assert torch.allclose(value.float(), expected[name].float(), atol=1e-6), name
    ema.detach()


def test_ema_swaps_and_checkpoints_the_average_keeping_the_training_weights():
    torch.manual_seed(0)
    net = torch.nn.Linear(4, 3)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.5)
    ema = EMA(decay=0.5, warmup=False)
    ema.attach(net, [optimizer])
    for _ in range(3):
        optimizer.zero_grad()
        net(torch.randn(8, 4)).sum().backward()
        optimizer.step()
    training = {k: v.clone() for k, v in net.state_dict().items()}
    saved = {"state_dict": {k: v.clone() for k, v in net.state_dict().items()}}
    ema.on_save_checkpoint(None, net, saved)
    average = saved["state_dict"]
    assert all(not torch.equal(average[k], training[k]) for k in training)
    for swapped in (False, True):
        if swapped:
            ema.swap_in()
            assert all(torch.equal(net.state_dict()[k], average[k]) for k in average)
        checkpoint = {"state_dict": {k: v.clone() for k, v in net.state_dict().items()}}
        ema.on_save_checkpoint(None, net, checkpoint)
        assert all(torch.equal(checkpoint["state_dict"][k], average[k]) for k in average)
        assert all(torch.equal(ema.state_dict()["training_weights"][k], training[k]) for k in training)
    ema.swap_out()
    assert all(torch.equal(net.state_dict()[k], training[k]) for k in training)
    optimizer.step()  # the hook stays until detached
    assert ema.num_updates == 4
    ema.detach()
    optimizer.step()
    assert ema.num_updates == 4


# --- warmup ----------------------------------------------------------------------------------------
def lrs(scheduler_cfg, steps, lr=1.0):
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)
    scheduler = build_scheduler(scheduler_cfg, optimizer)["scheduler"]
    out = []
    for _ in range(steps):
        out.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return out


def test_warmup_only_schedule_rises_linearly_then_stays():
    cfg = {"warmup_steps": 4, "warmup_epochs": 0}
    assert scheduler_interval(cfg) == "step"
    assert lrs(cfg, 7) == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0, 1.0, 1.0])
    assert scheduler_interval({"warmup_steps": 0, "warmup_epochs": 0}) is None
    assert build_scheduler({"warmup_steps": 0, "warmup_epochs": 0}, torch.optim.SGD([torch.zeros(1)], lr=1)) is None
    assert lrs({"warmup_epochs": 1, "warmup_start_factor": 0.25}, 3) == pytest.approx([0.25, 1.0, 1.0])


def test_warmup_then_cosine_ends_at_eta_min_on_time():
    cfg = {"_target_": "torch.optim.lr_scheduler.CosineAnnealingLR", "_partial_": True, "T_max": 10,
           "eta_min": 0.0, "interval": "epoch", "warmup_epochs": 2}
    cosine = [(1 + math.cos(math.pi * t / 8)) / 2 for t in range(9)]
    assert lrs(cfg, 11) == pytest.approx([1 / 3, 2 / 3, *cosine], abs=1e-9)


def test_warmup_then_step_schedule():
    cfg = {"_target_": "torch.optim.lr_scheduler.StepLR", "_partial_": True, "step_size": 2, "gamma": 0.1,
           "interval": "epoch", "warmup_epochs": 1}
    assert lrs(cfg, 6) == pytest.approx([0.5, 1.0, 1.0, 0.1, 0.1, 0.01])


def test_module_builds_the_warmup_schedule_with_its_interval():
    module = mlp(scheduler={"warmup_steps": 3, "warmup_epochs": 0})
    config = module.configure_optimizers()
    assert config["lr_scheduler"]["interval"] == "step"
    assert isinstance(config["lr_scheduler"]["scheduler"], torch.optim.lr_scheduler.LinearLR)
    cosine = {"_target_": "torch.optim.lr_scheduler.CosineAnnealingLR", "_partial_": True, "T_max": 5,
              "interval": "epoch", "warmup_epochs": 1}
    config = mlp(scheduler=cosine).configure_optimizers()
    assert isinstance(config["lr_scheduler"]["scheduler"], torch.optim.lr_scheduler.SequentialLR)
    assert config["lr_scheduler"]["interval"] == "epoch"


@pytest.mark.parametrize("scheduler,match", [
    ({"_target_": "torch.optim.lr_scheduler.ReduceLROnPlateau", "_partial_": True, "warmup_epochs": 2},
     "cannot precede ReduceLROnPlateau"),
    ({"_target_": "torch.optim.lr_scheduler.OneCycleLR", "_partial_": True, "max_lr": 0.1, "total_steps": 10,
      "interval": "step", "warmup_steps": 2}, "already warms up"),
    ({"_target_": "torch.optim.lr_scheduler.StepLR", "_partial_": True, "step_size": 2, "interval": "epoch",
      "warmup_steps": 2}, "use scheduler.warmup_epochs instead"),
    ({"warmup_steps": 2, "warmup_epochs": 1}, "not both"),
    ({"warmup_steps": -1}, "non-negative integer"),
])
def test_impossible_warmups_are_refused_in_one_sentence(scheduler, match):
    with pytest.raises(UserError, match=match):
        mlp(scheduler=scheduler)


# --- weight decay groups ---------------------------------------------------------------------------
def test_no_decay_on_biases_and_normalisation_layers():
    adamw = {"_target_": "torch.optim.AdamW", "_partial_": True, "lr": 0.01, "weight_decay": 0.05}
    module = mlp(net={"batch_norm": True}, optimizer={**adamw, "decay_bias_and_norm": False})
    optimizer = module.configure_optimizers()
    decay, no_decay = optimizer.param_groups
    assert decay["weight_decay"] == 0.05 and no_decay["weight_decay"] == 0.0
    names = {id(p): n for n, p in module.named_parameters()}
    assert {names[id(p)] for p in decay["params"]} == {n for n, p in module.named_parameters() if p.ndim > 1}
    no_decay_names = {names[id(p)] for p in no_decay["params"]}
    assert any("bias" in n for n in no_decay_names) and all(p.ndim == 1 for p in no_decay["params"])
    bn = [n for n, m in module.named_modules() if isinstance(m, torch.nn.BatchNorm1d)][0]
    assert {f"{bn}.weight", f"{bn}.bias"} <= no_decay_names
    # the default keeps PyTorch's behaviour: one group, decay on everything
    (group,) = mlp(net={"batch_norm": True}, optimizer=adamw).configure_optimizers().param_groups
    assert len(group["params"]) == len(list(module.parameters())) and group["weight_decay"] == 0.05


# --- top-5 accuracy --------------------------------------------------------------------------------
def top5_reference(scores, y):
    return (scores.topk(5, dim=1).indices == y[:, None]).any(1).float().mean().item()


def test_top5_accuracy_is_tracked_only_beyond_ten_classes_and_equals_torchmetrics():
    from torchmetrics.functional.classification import multiclass_accuracy

    assert mlp().val_metrics.top5 is None
    torch.manual_seed(0)
    module = mlp(input_shape=(6,), num_classes=20).eval()
    x, y = torch.randn(60, 6), torch.randint(0, 20, (60,))
    with torch.no_grad():
        for chunk in range(3):
            module.validation_step((x[chunk * 20:(chunk + 1) * 20], y[chunk * 20:(chunk + 1) * 20]), chunk)
        scores = module(x)
    ours = module.val_metrics.top5.compute().item()
    assert ours == pytest.approx(top5_reference(scores, y), abs=1e-6)
    assert ours == pytest.approx(multiclass_accuracy(scores, y, 20, top_k=5, average="micro").item(), abs=1e-6)


def test_top5_is_logged_for_validation_and_test():
    import lightning as L

    from src.data.tensor_loader import TensorBatchLoader

    torch.manual_seed(0)
    x, y = torch.randn(200, 6), torch.randint(0, 20, (200,))
    module = mlp(input_shape=(6,), num_classes=20)
    trainer = L.Trainer(max_epochs=1, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(module, TensorBatchLoader(x, y, 50, shuffle=True), TensorBatchLoader(x, y, 64))
    assert "val/acc_top5" in trainer.callback_metrics
    trainer.test(module, TensorBatchLoader(x, y, 64), verbose=False)
    with torch.no_grad():
        expected = top5_reference(module.eval()(x), y)
    assert trainer.callback_metrics["test/acc_top5"].item() == pytest.approx(expected, abs=1e-6)


def test_every_module_class_rebuilds_from_its_stored_hyperparameters():
    """src.eval / src.predict rebuild with cls(**checkpoint["hyper_parameters"]): a subclass passes the base
    class's arguments on (**kwargs), so the arguments of both constructors rebuild it."""
    from src.models.binary import BinaryClassificationModule
    from src.models.googlenet_module import GoogLeNetModule

    modules = [
        mlp(label_smoothing=0.1, mixup_alpha=0.2, tta_flip=True),
        BinaryClassificationModule(net={"_target_": "src.models.nets.linear.perceptron", "input_shape": [2]},
                                   optimizer=dict(SGD)),
        GoogLeNetModule(net={"_target_": "src.models.nets.googlenet.googlenet", "input_shape": [3, 32, 32],
                             "num_classes": 10}, num_classes=10, optimizer=dict(SGD)),
    ]
    for module in modules:
        rebuilt = type(module)(**module.hparams)
        assert dict(rebuilt.hparams) == dict(module.hparams)
    assert modules[0].hparams.label_smoothing == 0.1 and modules[1].hparams.label_smoothing == 0.0
    with pytest.raises(UserError, match=r"^a binary model \(one output unit\) trains without model.label_smoothing"):
        BinaryClassificationModule(**{**modules[1].hparams, "label_smoothing": 0.1})
