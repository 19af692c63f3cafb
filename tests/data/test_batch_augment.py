"""Batched training augmentations: what each one does to a batch, reproducibility, and that only the
training loader applies them."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from src.data.batch_augment import GaussianNoise, RandomCrop, RandomErasing, RandomHorizontalFlip, RandomRotation
from src.data.digits import DigitsDataModule
from src.errors import UserError

ALL = [
    RandomHorizontalFlip(), RandomCrop(padding=4), RandomCrop(padding=2, padding_mode="reflect"),
    RandomRotation(degrees=15), GaussianNoise(std=0.1), RandomErasing(p=0.5),
]


def batch(n: int = 16, c: int = 3, h: int = 12, w: int = 10, seed: int = 0) -> torch.Tensor:
    """Random positive values: no accidental zeros, no accidental symmetry."""
    return torch.rand(n, c, h, w, generator=torch.Generator().manual_seed(seed)) + 0.5


@pytest.mark.parametrize("augment", ALL, ids=repr)
def test_shape_dtype_and_device_are_kept(augment):
    x = batch()
    out = augment(x)
    assert out.shape == x.shape and out.dtype == x.dtype and out.device == x.device
    assert torch.equal(x, batch())  # the input is not modified in place


@pytest.mark.parametrize("augment", ALL, ids=repr)
def test_same_seed_same_result(augment):
    x = batch()
    torch.manual_seed(123)
    a = augment(x)
    torch.manual_seed(123)
    b = augment(x)
    torch.manual_seed(124)
    c = augment(x)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_flip_mirrors_the_images_it_flips_about_p_of_them():
    x = batch(n=1000, c=1, h=4, w=5)
    torch.manual_seed(0)
    out = RandomHorizontalFlip(p=0.3)(x)
    same = (out == x).flatten(1).all(1)
    mirrored = (out == x.flip(-1)).flatten(1).all(1)
    assert torch.all(same ^ mirrored)  # every image is either untouched or exactly mirrored
    assert abs(mirrored.float().mean().item() - 0.3) < 0.06
    assert torch.equal(RandomHorizontalFlip(p=1.0)(x), x.flip(-1))


@pytest.mark.parametrize("mode", ["zeros", "reflect", "replicate"])
def test_crop_is_a_shifted_window_of_the_padded_image(mode):
    x, p = batch(n=24, h=9, w=7), 3
    torch.manual_seed(1)
    out = RandomCrop(padding=p, padding_mode=mode)(x)
    padded = F.pad(x, (p, p, p, p), mode="constant" if mode == "zeros" else mode)
    offsets = set()
    for i in range(len(x)):
        matches = [(t, left) for t in range(2 * p + 1) for left in range(2 * p + 1)
                   if torch.equal(out[i], padded[i, :, t : t + 9, left : left + 7])]
        assert matches, f"image {i} is not a window of its padded copy"
        offsets.update(matches)
    assert len(offsets) > 5  # offsets really vary between images


@pytest.mark.parametrize("h,w", [(33, 33), (25, 45)])  # pixel distances are kept on non-square images too
def test_rotation_turns_a_blob_about_the_centre_by_at_most_degrees(h, w):
    n = 64
    yy, xx = torch.meshgrid(torch.arange(h) - (h - 1) / 2, torch.arange(w) - (w - 1) / 2, indexing="ij")
    blob = torch.exp(-((xx - 10) ** 2 + yy**2) / 4.0)  # a blob 10 px right of the centre
    x = blob.expand(n, 1, h, w).contiguous()
    torch.manual_seed(2)
    out = RandomRotation(degrees=15)(x)
    mass = out.sum(dim=(1, 2, 3))
    cx, cy = (out * xx).sum(dim=(1, 2, 3)) / mass, (out * yy).sum(dim=(1, 2, 3)) / mass
    radius, angle = torch.sqrt(cx**2 + cy**2), torch.rad2deg(torch.atan2(cy, cx))
    assert torch.allclose(radius, torch.full_like(radius, 10.0), atol=0.3)
    assert angle.abs().max() <= 15.5 and angle.abs().max() > 10 and angle.std() > 4
    assert torch.allclose(RandomRotation(degrees=0)(x), x, atol=1e-5)


def test_noise_has_the_requested_std():
    x = batch(n=64, h=32, w=32)
    torch.manual_seed(3)
    noise = GaussianNoise(std=0.1)(x) - x
    assert abs(noise.mean().item()) < 0.005 and abs(noise.std().item() - 0.1) < 0.005


def test_erasing_zeroes_one_rectangle_per_image():
    x = batch(n=200, h=20, w=16)
    torch.manual_seed(4)
    out = RandomErasing(p=1.0, scale=(0.02, 0.2))(x)
    zero = out == 0
    assert torch.equal(zero, zero[:, :1].expand_as(zero))  # the same pixels in every channel
    assert torch.equal(out[~zero], x[~zero])  # everything else untouched
    for mask in zero[:, 0]:
        rows, cols = mask.any(1).nonzero().flatten(), mask.any(0).nonzero().flatten()
        assert len(rows) and len(cols)
        assert rows[-1] - rows[0] + 1 == len(rows) and cols[-1] - cols[0] + 1 == len(cols)  # contiguous
        assert mask.sum() == len(rows) * len(cols)  # a full rectangle (rows x columns, nothing missing)
        assert 0.005 <= mask.float().mean() <= 0.3  # about 2-20 % of the image (rounded, clamped)
    assert torch.equal(RandomErasing(p=0.0)(x), x)
    torch.manual_seed(5)
    erased = (RandomErasing(p=0.5)(x) == 0).flatten(1).any(1).float().mean()
    assert abs(erased.item() - 0.5) < 0.12


def test_bad_settings_are_user_errors():
    with pytest.raises(UserError, match="padding_mode"):
        RandomCrop(padding_mode="circle")
    with pytest.raises(UserError, match="p must be in"):
        RandomHorizontalFlip(p=2)


def test_only_the_training_loader_augments():
    augment = {"flip": {"_target_": "src.data.batch_augment.RandomHorizontalFlip", "p": 1.0}, "off": None}
    dm = DigitsDataModule(name="digits", num_classes=10, input_shape=[1, 8, 8], batch_size=None, augment=augment)
    dm.setup()
    (train_x, _), = list(dm.train_dataloader())  # one full batch: not shuffled
    (val_x, _), = list(dm.val_dataloader())
    (test_x, _), = list(dm.test_dataloader())
    normalised = dm.transform(dm.train_split.inputs)
    assert not torch.equal(train_x, normalised) and torch.equal(train_x, normalised.flip(-1))
    assert torch.equal(val_x, dm.transform(dm.val_split.inputs))
    assert torch.equal(test_x, dm.transform(dm.test_split.inputs))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("augment", ALL, ids=repr)
def test_augmentations_run_on_the_gpu(augment):
    x = batch().cuda()
    torch.cuda.manual_seed(0)
    out = augment(x)
    assert out.is_cuda and out.shape == x.shape and math.isfinite(out.sum().item())
