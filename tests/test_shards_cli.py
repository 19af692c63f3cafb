"""Image shards end to end, as a user types it: `python -m src.shard` writes a Fashion-MNIST PNG folder (real
images from Debian's package) and scikit-learn's digits as LitData shards; `data=shards` trains from them to the
test accuracy of `data=image_folder` on the same images; two DDP processes stream disjoint shares that make up
the training split; SIGTERM mid-epoch and resume (0 and 2 workers) give the uninterrupted run's metrics; and
each bad input ends in one sentence."""

from __future__ import annotations

import csv
import json
import re
from collections import Counter
from pathlib import Path

import pytest

from tests.conftest import assert_one_sentence
from tests.own_data import fashion_test_split, needs_fashion_mnist, write_fashion_pngs
from tests.seen_samples import sample_hashes

QUIET = ["callbacks.progress_bar=null", "callbacks.model_summary=null", "logger=none"]
# Full-batch steps of a linear model: the gradient of an epoch does not depend on the order samples arrive in,
# so the streaming and the in-memory paths train the same model (up to float summation order).
FULL_BATCH = ["model=softmax_regression", "data.batch_size=512", "trainer.max_epochs=4", "seed=5", *QUIET]
FOLDER = ["data=image_folder", "data.root=fashion", "data.image_size=28", "data.channels=1"]
KEYS = ("train/loss", "val/loss", "val/acc", "test/loss", "test/acc")


@pytest.fixture(scope="module")
def fashion(tmp_path_factory):
    """400 Fashion-MNIST test images as a PNG class folder, and its shards (written by `python -m src.shard`)."""
    from tests.own_data import FASHION_DIR

    if not (FASHION_DIR / "t10k-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"Debian's dataset-fashion-mnist ({FASHION_DIR}) is not installed")
    cwd = tmp_path_factory.mktemp("shards")
    images, labels = fashion_test_split()
    write_fashion_pngs(cwd / "fashion", images[:400], labels[:400])
    return cwd


@pytest.fixture
def cli_at(fashion):
    import os

    from tests.conftest import ROOT, CliResult, run_module

    def go(module: str, *args: str, cwd: Path = fashion) -> CliResult:
        env = dict(os.environ, PYTHONPATH=str(ROOT), HYDRA_FULL_ERROR="0", COLUMNS="160")
        return CliResult(run_module(module, args, cwd, env), cwd)

    return go


@pytest.fixture(scope="module")
def fashion_shards(fashion):
    import os

    from tests.conftest import ROOT, run_module

    env = dict(os.environ, PYTHONPATH=str(ROOT), HYDRA_FULL_ERROR="0", COLUMNS="160")
    result = run_module("src.shard", [*FOLDER, "output=shards", "workers=2"], fashion, env)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    assert "fashion shards (324 train, 36 val, 40 test; raw)" in result.stdout  # 28 x 28: auto stores them raw
    return fashion / "shards"


def newest_run(result) -> Path:
    runs = [r for r in result.run_dirs() if (r / "metrics.json").is_file()]
    return max(runs, key=lambda r: (r / "metrics.json").stat().st_mtime)


def metrics_of(result) -> dict:
    return json.loads((newest_run(result) / "metrics.json").read_text())["metrics"]


@needs_fashion_mnist
def test_shards_train_to_the_image_folders_accuracy_and_keep_its_class_names(fashion_shards, cli_at):
    meta = json.loads((fashion_shards / "shards.json").read_text())
    assert meta["input_shape"] == [1, 28, 28] and meta["samples"] == {"train": 324, "val": 36, "test": 40}
    assert meta["class_names"][0] == "0_T-shirt-top" and len(meta["normalize"]["mean"]) == 1
    folder = cli_at("src.train", *FOLDER, *FULL_BATCH)
    assert folder.returncode == 0, folder.output[-3000:]
    shards = cli_at("src.train", "data=shards", "data.root=shards", "data.num_workers=0", *FULL_BATCH)
    assert shards.returncode == 0, shards.output[-3000:]
    expected, got = metrics_of(folder), metrics_of(shards)
    assert got["test/acc"] == pytest.approx(expected["test/acc"], abs=0.01)
    assert got["test/loss"] == pytest.approx(expected["test/loss"], abs=1e-3)

    run = newest_run(shards)
    report = cli_at("src.eval", f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}")  # class and file names kept
    assert report.returncode == 0, report.output[-3000:]
    (table,) = run.glob("eval/*/predictions.csv")
    rows = list(csv.DictReader(table.open()))
    assert len(rows) == 40 and all(r["sample"].endswith(".png") and r["true"][0] == r["sample"][0] for r in rows)
    assert {r["true"] for r in rows} <= set(meta["class_names"])

    again = cli_at("src.shard", *FOLDER, "output=shards")  # the same data set again: nothing to do
    assert again.returncode == 0 and "already holds these shards" in again.stdout, again.output[-2000:]

    # PNG shards hold the same pixels (lossless): the same run gives the same metrics
    png = cli_at("src.shard", *FOLDER, "output=png_shards", "image_format=png")
    assert png.returncode == 0 and "; png)" in png.stdout, png.output[-2000:]
    from_png = cli_at("src.train", "data=shards", "data.root=png_shards", "data.num_workers=0", *FULL_BATCH)
    assert from_png.returncode == 0, from_png.output[-3000:]
    for key in KEYS:
        assert metrics_of(from_png)[key] == pytest.approx(got[key], abs=1e-6), key


def test_auto_stores_small_images_raw_and_larger_ones_as_png():
    from src.data.shard_format import stored_format

    assert stored_format("auto", [1, 28, 28]) == stored_format("auto", [3, 64, 64]) == "raw"
    assert stored_format("auto", [3, 96, 96]) == stored_format("auto", (3, 224, 224)) == "png"
    assert stored_format("jpeg", [1, 28, 28]) == "jpeg"


@needs_fashion_mnist
@pytest.mark.parametrize("workers", [0, 2])
def test_sigterm_mid_epoch_then_resume_gives_the_uninterrupted_metrics(fashion_shards, cli_at, workers, tmp_path):
    args = ["data=shards", "data.root=shards", f"data.num_workers={workers}", "data.batch_size=64", "model=mlp",
            "trainer.max_epochs=2", "trainer.deterministic=true", "seed=3", *QUIET]
    straight = cli_at("src.train", *args)
    assert straight.returncode == 0, straight.output[-3000:]
    expected = metrics_of(straight)
    stop = ["+callbacks.signal._target_=tests.faults.SignalAt", "+callbacks.signal.moments=[train_batch@0:2]",
            f"+callbacks.signal.done_dir={tmp_path / 'signals'}"]
    stopped = cli_at("src.train", *args, *stop)
    assert stopped.returncode == 143, stopped.output[-3000:]
    (command,) = re.findall(r"^Resume with: python -m src\.train (ckpt_path=\S+)$", stopped.stdout, re.M)
    resumed = cli_at("src.train", command)
    assert resumed.returncode == 0, resumed.output[-3000:]
    got = metrics_of(resumed)
    for key in KEYS:
        assert got[key] == pytest.approx(expected[key], abs=1e-6), key


@needs_fashion_mnist
def test_two_ddp_processes_stream_disjoint_shares_that_make_up_the_training_split(fashion_shards, cli_at):
    import torch

    from src.data.shards import ShardsDataModule

    seen = fashion_shards.parent / "seen"
    result = cli_at("src.train", "trainer=ddp_sim", "data=shards", "data.root=shards", "data.num_workers=0",
                    "data.batch_size=16", "trainer.max_epochs=1", "model=softmax_regression", "test=false",
                    "+callbacks.seen._target_=tests.seen_samples.SeenSamples", f"+callbacks.seen.out_dir={seen}",
                    *QUIET)
    assert result.returncode == 0, result.output[-3000:]
    ranks = [Counter((seen / f"rank{r}.txt").read_text().split()) for r in (0, 1)]
    datamodule = ShardsDataModule(str(fashion_shards), "fashion", 10, [1, 28, 28], num_workers=0)
    datamodule.setup("fit")
    split = Counter(h for x, _ in datamodule.train_dataloader() for h in sample_hashes(x))
    assert sum(split.values()) == 324
    assert not ranks[0] & ranks[1]  # no sample on both ranks
    union = ranks[0] + ranks[1]
    assert union <= split  # each sample at most once, all from the training split
    assert sum(union.values()) >= 324 - 2 * 16  # LitData drops at most the ragged end to keep the ranks even
    assert torch.distributed.is_available()


def one_sentence(result, fragment: str) -> str:
    assert result.returncode == 2 and "Traceback" not in result.output, result.output[-3000:]
    (line,) = [ln for ln in result.stderr.splitlines() if ln.startswith("error: ")]
    assert fragment in line, line
    return line


@needs_fashion_mnist
def test_bad_inputs_end_in_one_sentence(fashion_shards, cli_in_process, tmp_path, monkeypatch):
    train = ["data=shards", "train=false", "test=false"]
    one_sentence(cli_in_process("src.train", *train, f"data.root={tmp_path}"), "holds no image shards")
    old = tmp_path / "old"
    old.mkdir()
    (old / "shards.json").write_text(json.dumps({"format": "lightning-hydra-classify image shards", "version": 0}))
    one_sentence(cli_in_process("src.train", *train, f"data.root={old}"), "another format or version")
    one_sentence(cli_in_process("src.train", *train, f"data.root={fashion_shards}", "data.image_size=32"),
                 "hold 28x28 images but data.image_size is 32; write the shards again")
    # The output of src.shard holds another data set (these shards), or files of its own.
    one_sentence(cli_in_process("src.shard", "data=digits", f"output={fashion_shards}"), "already holds other shards")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("my notes")
    one_sentence(cli_in_process("src.shard", "data=digits", f"output={tmp_path / 'mine'}"), "is not empty (notes.txt)")
    # Object storage without credentials to read it.
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # the discard port: nothing listens
    one_sentence(cli_in_process("src.train", *train, "data.root=s3://bucket/shards"),
                 "no credentials to reach s3://bucket: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")


# --- object stores: moto's S3 server over plain HTTP (credentials and IAM policies checked) and over HTTPS ---
@pytest.fixture(scope="module")
def http_store(tmp_path_factory):
    """moto's server over plain HTTP, as MinIO serves by default: the environment of a user allowed everything."""
    from tests.s3_server import s3_server

    with s3_server(tmp_path_factory.mktemp("http_store"), https=False, iam=True) as env:
        if isinstance(env, str):
            pytest.skip(env)
        import boto3

        boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"], region_name=env["AWS_DEFAULT_REGION"],
                     aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                     aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"]).create_bucket(Bucket="data")
        yield env


@pytest.fixture(scope="module")
def https_store(tmp_path_factory):
    """moto's server over HTTPS, its certificate signed by an authority that AWS_CA_BUNDLE names (alone)."""
    from tests.s3_server import s3_server

    with s3_server(tmp_path_factory.mktemp("https_store")) as env:
        if isinstance(env, str):
            pytest.skip(env)
        import boto3

        boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"], region_name=env["AWS_DEFAULT_REGION"],
                     aws_access_key_id=env["AWS_ACCESS_KEY_ID"], aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
                     verify=env["AWS_CA_BUNDLE"]).create_bucket(Bucket="data")
        yield env


def use_store(monkeypatch, env: dict[str, str]) -> None:
    """The user's environment: the store's settings and no other certificate or credential settings."""
    for key in ("SSL_CERT_FILE", "AWS_CA_BUNDLE", "AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.setenv(key, "")  # noted, so that the test's end restores what was there
        monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)


@pytest.fixture(scope="module")
def local_metrics(fashion_shards):
    """The metrics of FULL_BATCH training from the local shards, which the same shards in a store must give."""
    import os

    from tests.conftest import ROOT, CliResult, run_module

    env = dict(os.environ, PYTHONPATH=str(ROOT), HYDRA_FULL_ERROR="0", COLUMNS="160")
    args = ["data=shards", "data.root=shards", "data.num_workers=0", *FULL_BATCH]
    result = CliResult(run_module("src.train", args, fashion_shards.parent, env), fashion_shards.parent)
    assert result.returncode == 0, result.output[-3000:]
    return metrics_of(result)


@needs_fashion_mnist
def test_shards_written_to_and_trained_from_a_plain_http_store(http_store, local_metrics, cli_at, monkeypatch,
                                                                tmp_path):
    use_store(monkeypatch, http_store)
    written = cli_at("src.shard", *FOLDER, "output=s3://data/fashion", "workers=2")
    assert written.returncode == 0, written.output[-3000:]
    assert "fashion shards (324 train, 36 val, 40 test; raw)" in written.stdout
    cache = tmp_path / "cache"  # two loader workers: each process downloads through its own client
    result = cli_at("src.train", "data=shards", "data.root=s3://data/fashion", "data.num_workers=2",
                    f"data.cache_dir={cache}", *FULL_BATCH)
    assert result.returncode == 0, result.output[-3000:]
    assert "Traceback" not in result.output
    assert metrics_of(result)["test/acc"] == local_metrics["test/acc"]
    assert len(list(cache.rglob("chunk-*.bin"))) >= 3  # a chunk of every split, cached


@needs_fashion_mnist
def test_a_failed_upload_names_the_file_and_training_says_what_is_missing(http_store, fashion_shards, cli_at,
                                                                          cli_in_process, monkeypatch):
    from tests.s3_server import user_keys

    use_store(monkeypatch, http_store)
    # Keys that may write anywhere in the bucket but in the validation split of s3://data/denied.
    denied = user_keys(http_store, "no-val", [
        {"Effect": "Allow", "Action": "s3:*", "Resource": ["arn:aws:s3:::data", "arn:aws:s3:::data/*"]},
        {"Effect": "Deny", "Action": "s3:PutObject", "Resource": "arn:aws:s3:::data/denied/val/*"}])
    for key, value in denied.items():
        monkeypatch.setenv(key, value)
    failed = cli_at("src.shard", *FOLDER, "output=s3://data/denied", "workers=2")
    line = assert_one_sentence(failed, "the upload of the shards stopped", "s3://data/denied/val/chunk-",
                               "(AccessDenied)", "use keys that may")
    assert "again" not in line
    told = assert_one_sentence(cli_in_process("src.train", "data=shards", "data.root=s3://data/denied"),
                               "holds an unfinished write of the fashion shards (missing: val, test, shards.json)",
                               "uploading s3://data/denied/val/chunk-", "(AccessDenied) failed",
                               "once the store accepts that upload")
    assert len(told) < 400, told
    # Once the store takes the uploads, the command that training named finishes the shards.
    for key in denied:
        monkeypatch.setenv(key, http_store[key])
    finished = cli_at("src.shard", *FOLDER, "output=s3://data/denied", "workers=2")
    assert finished.returncode == 0 and "fashion shards (324 train" in finished.stdout, finished.output[-3000:]


@needs_fashion_mnist
def test_an_unreachable_or_refusing_store_ends_in_one_sentence_before_any_work(http_store, https_store,
                                                                               cli_in_process, monkeypatch,
                                                                               tmp_path):
    from tests.s3_server import free_port

    train = ["src.train", "data=shards", "data.root=s3://data/fashion"]
    shard = ["src.shard", "data=digits", "output=s3://data/digits"]
    use_store(monkeypatch, http_store)
    right = http_store["AWS_SECRET_ACCESS_KEY"]
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", right[:-1] + ("x" if right[-1] != "x" else "y"))
    for command in (train, shard):
        assert_one_sentence(cli_in_process(*command), f"the object store at {http_store['AWS_ENDPOINT_URL']} "
                            "refused the credentials (SignatureDoesNotMatch); set AWS_ACCESS_KEY_ID and")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAUNKNOWNKEY000000")
    assert_one_sentence(cli_in_process(*train), "refused the credentials (")
    use_store(monkeypatch, http_store)
    for command in (["src.train", "data=shards", "data.root=s3://missing/fashion"],
                    ["src.shard", "data=digits", "output=s3://missing/digits"]):
        assert_one_sentence(cli_in_process(*command), "the bucket of s3://missing does not exist at http://",
                            "create it (aws s3 mb s3://missing)")
    nothing = f"http://127.0.0.1:{free_port()}"  # a port nothing listens on
    monkeypatch.setenv("AWS_ENDPOINT_URL", nothing)
    for command in (train, shard):
        assert_one_sentence(cli_in_process(*command), f"cannot reach the object store at {nothing}",
                            "AWS_ENDPOINT_URL holds its address")
    monkeypatch.setenv("AWS_ENDPOINT_URL", http_store["AWS_ENDPOINT_URL"].replace("http://", "https://"))
    assert_one_sentence(cli_in_process(*train), "does not answer HTTPS",
                        "set AWS_ENDPOINT_URL to its http:// address")

    use_store(monkeypatch, https_store)
    monkeypatch.delenv("AWS_CA_BUNDLE")  # the server's authority is trusted nowhere
    for command in (train, shard):
        assert_one_sentence(cli_in_process(*command), f"the certificate of the object store at "
                            f"{https_store['AWS_ENDPOINT_URL']} does not verify ([SSL: CERTIFICATE_VERIFY_FAILED]",
                            "set AWS_CA_BUNDLE to the PEM file of the authority that signed it")
    monkeypatch.setenv("AWS_CA_BUNDLE", str(tmp_path / "missing.pem"))
    assert_one_sentence(cli_in_process(*train), f"AWS_CA_BUNDLE={tmp_path / 'missing.pem'} is not a file")


@needs_fashion_mnist
def test_shards_written_to_and_trained_from_an_https_store_with_aws_ca_bundle_alone(https_store, local_metrics,
                                                                                    cli_at, cli_in_process,
                                                                                    tmp_path, monkeypatch):
    use_store(monkeypatch, https_store)  # AWS_CA_BUNDLE names the authority; SSL_CERT_FILE is not set
    written = cli_at("src.shard", *FOLDER, "output=s3://data/fashion", "workers=2")
    assert written.returncode == 0, written.output[-3000:]
    cache = tmp_path / "cache"
    result = cli_at("src.train", "data=shards", "data.root=s3://data/fashion", "data.num_workers=0",
                    f"data.cache_dir={cache}", *FULL_BATCH)
    assert result.returncode == 0, result.output[-3000:]
    assert metrics_of(result)["test/acc"] == local_metrics["test/acc"]
    assert len(list(cache.rglob("chunk-*.bin"))) >= 3  # a chunk of every split, cached
    one_sentence(cli_in_process("src.train", "data=shards", "data.root=s3://data/fashion", "train=false",
                                "test=false", "data.max_cache_size=1KB"), "is smaller than one chunk")
    one_sentence(cli_in_process("src.train", "data=shards", "data.root=s3://data/elsewhere", "train=false"),
                 "holds no image shards")


def test_a_built_in_set_is_sharded_as_its_data_module_splits_it_and_trains(cli, compose):
    import torch

    from src.builders import build_datamodule
    from src.data.shards import ShardsDataModule

    result = cli("src.shard", "data=digits", "output=digits_shards")
    assert result.returncode == 0, result.output[-3000:]
    assert "digits shards (1293 train, 144 val, 360 test; raw)" in result.stdout
    digits = build_datamodule(compose(["data=digits"]).data)
    digits.prepare_data()
    digits.setup("fit")
    stored = ShardsDataModule(str(result.cwd / "digits_shards"), "digits", 10, [1, 8, 8], num_workers=0).test_split
    expected = digits.test_split
    assert torch.equal(stored.inputs, digits.display_inputs(expected, torch.arange(len(expected))).cpu())
    assert torch.equal(stored.targets, expected.targets.cpu())  # the same images and labels, in the same order

    trained = cli("src.train", "data=shards", "data.root=digits_shards", "data.num_workers=0", *QUIET)
    assert trained.returncode == 0, trained.output[-3000:]
    assert trained.metrics()["test/acc"] >= 0.95
