"""Duplicates and leakage: training images copied into the test folder (exact, and re-encoded as JPEG and
resized) are all found, `drop_from_eval` leaves them out of the test split, `error` stops; repeated table rows
across splits; the check alone on a built-in set (`python -m src.audit duplicates`)."""

from __future__ import annotations

import csv
import logging
import shutil

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from src.builders import build_datamodule
from tests.own_data import needs_fashion_mnist, user_error, write_fashion_classes

CLASSES = [0, 1, 7, 8]  # T-shirt/top, Trouser, Sneaker, Bag


@pytest.fixture(scope="module")
def leaky_folder(tmp_path_factory):
    """train/ (4 x 40 Fashion-MNIST images), val/ (4 x 5) and test/ (4 x 10 others) plus 10 training images
    copied into test/: 5 byte-for-byte, 5 re-encoded as JPEG (quality 85) and resized to 31x31.
    Returns (root, {copy: original})."""
    root = tmp_path_factory.mktemp("leaky")
    train = write_fashion_classes(root / "train", CLASSES, 40)
    write_fashion_classes(root / "val", CLASSES, 5, skip=40)
    write_fashion_classes(root / "test", CLASSES, 10, skip=45)
    copies = {}
    for k, original in enumerate(train[::16][:10]):
        folder = root / "test" / original.parent.name
        if k < 5:
            copy = folder / f"copy_{original.name}"
            shutil.copyfile(original, copy)
        else:
            copy = folder / f"copy_{original.stem}.jpg"
            Image.open(original).resize((31, 31), Image.BICUBIC).save(copy, "JPEG", quality=85)
        copies[copy.relative_to(root).as_posix()] = original.relative_to(root).as_posix()
    return root, copies


def folder_data(root, *extra):
    return ["data=image_folder", f"data.root={root}", "data.image_size=28", "data.channels=1", *extra]


@needs_fashion_mnist
def test_copied_and_reencoded_training_images_in_test_are_all_reported(cli_in_process, leaky_folder):
    root, copies = leaky_folder
    result = cli_in_process("src.audit", "duplicates", *folder_data(root))
    assert result.returncode == 0, result.output
    report = next(result.cwd.glob("logs/audit/runs/*/duplicates.csv"))
    rows = list(csv.DictReader(report.open()))
    found = {(r["sample_b"], r["sample_a"]): r for r in rows if r["split_a"] == "train" and r["split_b"] == "test"}
    for k, (copy, original) in enumerate(copies.items()):
        assert (copy, original) in found, copy
        assert found[copy, original]["kind"] == ("exact" if k < 5 else "near"), found[copy, original]
    assert "10 test sample(s) duplicate a training sample" in result.output


@needs_fashion_mnist
def test_drop_from_eval_leaves_the_copies_out_of_the_test_split_and_error_stops(compose, leaky_folder, caplog):
    root, copies = leaky_folder
    kept = build_datamodule(compose(folder_data(root)).data)
    kept.setup("fit")
    assert set(copies) <= set(kept.test_split.names)
    dropped = build_datamodule(compose(folder_data(root, "data.duplicates=drop_from_eval")).data)
    with caplog.at_level(logging.WARNING):
        dropped.setup("fit")
    assert not set(copies) & set(dropped.test_split.names)
    left_out = len(kept.test_split) - len(dropped.test_split)
    assert left_out >= 10
    assert f"left out 0 of {len(kept.val_split)} validation and {left_out} of {len(kept.test_split)} test" \
        in caplog.text or "data.duplicates=drop_from_eval: left out" in caplog.text
    with user_error(r"test and \d+ validation sample\(s\) duplicate a training sample in .*; remove them from the "
                    r"data, or set data.duplicates=drop_from_eval"):
        build_datamodule(compose(folder_data(root, "data.duplicates=error")).data).setup("fit")


def test_a_duplicates_setting_that_is_not_a_choice_is_one_sentence(compose):
    with user_error(r"data.duplicates must be one of warn, error, drop_from_eval, off, got 'sometimes'"):
        build_datamodule(compose(["data=digits", "+data.duplicates=sometimes"]).data)


def test_repeated_table_rows_across_splits_are_reported(cli_in_process, tmp_path):
    from sklearn.datasets import load_wine

    frame = load_wine(as_frame=True).frame
    frame["target"] = [f"c{t}" for t in frame["target"]]
    repeated = pd.concat([frame, frame.iloc[::6]], ignore_index=True)  # 30 rows twice
    path = tmp_path / "wine.csv"
    repeated.to_csv(path, index=False)
    result = cli_in_process("src.audit", "duplicates", "data=csv", f"data.path={path}", "data.target=target")
    assert result.returncode == 0, result.output
    rows = list(csv.DictReader(next(result.cwd.glob("logs/audit/runs/*/duplicates.csv")).open()))
    assert len(rows) == 30 and {r["kind"] for r in rows} == {"exact"}
    pairs = {tuple(sorted((int(r["sample_a"]), int(r["sample_b"])))) for r in rows}
    assert pairs == {(i, len(frame) + k) for k, i in enumerate(range(0, len(frame), 6))}
    assert any(r["split_a"] != r["split_b"] for r in rows)  # some copies landed in another split


def test_the_check_alone_on_a_built_in_set_and_bad_settings(cli_in_process):
    result = cli_in_process("src.audit", "duplicates", "data=digits")
    assert result.returncode == 0, result.output
    assert "digits (train 1293, val 144, test 360):" in result.output
    assert next(result.cwd.glob("logs/audit/runs/*/duplicates.csv")).is_file()
    bad = cli_in_process("src.audit", "duplicates", "data=digits", "duplicate_distance=300")
    assert bad.returncode == 2
    assert "error: data.duplicate_distance must be an integer from 0 to 255" in bad.stderr


def test_perceptual_hash_is_near_for_a_resized_copy_and_far_for_another_image():
    from src.data.duplicates import perceptual_hashes

    rng = np.random.default_rng(0)
    image = np.kron(rng.integers(0, 256, (8, 8)), np.ones((8, 8))).astype(np.uint8)
    resized = np.asarray(Image.fromarray(image).resize((70, 70), Image.BICUBIC).resize((64, 64)))
    other = np.kron(rng.integers(0, 256, (8, 8)), np.ones((8, 8))).astype(np.uint8)
    hashes = perceptual_hashes(np.stack([image, resized, other])[:, None])
    distance = np.bitwise_count(hashes[0] ^ hashes[1:]).sum(1)
    assert distance[0] <= 28 < distance[1]
