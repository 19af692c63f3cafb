"""s3:// shards as users run them: the usual AWS settings, passed on to what LitData reads, and a check of
the store (reachable, certificate, credentials, bucket) before any training or writing starts.

LitData reads small files through boto3 and chunks through obstore. obstore refuses a plain-HTTP endpoint
(MinIO's default) and reads its certificate authorities from SSL_CERT_FILE, not AWS_CA_BUNDLE; so:
- an http:// endpoint is read through `BotoChunks`, LitData's downloader interface over boto3, and an
  https:// one through LitData's own downloader (obstore);
- AWS_CA_BUNDLE is passed on to obstore as SSL_CERT_FILE (with the public authorities of certifi, so that
  other HTTPS requests of the process still verify).
`src.shard` uploads finished splits itself, through boto3 (`upload_folder`), whatever the endpoint.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import os
import re
import tempfile
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    SSLError,
)
from litdata.streaming.downloader import Downloader, S3Downloader, register_downloader

from src.errors import UserError

for name in ("botocore.configprovider", "botocore.credentials"):  # "Found endpoint/credentials ..." for every client
    logging.getLogger(name).setLevel(logging.WARNING)

CREDENTIALS = "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE)"
REFUSED_CREDENTIALS = ("InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken",
                       "TokenRefreshRequired", "InvalidClientTokenId", "AuthorizationHeaderMalformed")
# The preflight check answers within seconds: two tries, a short connection timeout.
ENDPOINT_SETTINGS = ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_DEFAULT_REGION",
                     "AWS_REGION", "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS")
CHECKED_SETTINGS = ("AWS_CA_BUNDLE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                    "AWS_SHARED_CREDENTIALS_FILE")
CHECK_CONFIG = Config(connect_timeout=5, read_timeout=20, retries={"total_max_attempts": 2, "mode": "standard"})


def s3_client(config: Config | None = None) -> Any:
    """A boto3 S3 client for the settings as they are now (boto3's default session keeps the credentials it
    found first), one per process and settings."""
    settings = tuple(os.environ.get(key) for key in (*ENDPOINT_SETTINGS, *CHECKED_SETTINGS))
    return _client(os.getpid(), settings, config)


@functools.lru_cache(maxsize=16)
def _client(pid: int, settings: tuple[str | None, ...], config: Config | None) -> Any:
    return boto3.session.Session().client("s3", config=config)


def endpoint() -> str:
    """The endpoint boto3 (and so LitData) sends S3 requests to: AWS_ENDPOINT_URL, AWS_ENDPOINT_URL_S3 or a
    profile's endpoint_url, else AWS's own."""
    return _endpoint(*(os.environ.get(key) for key in ENDPOINT_SETTINGS))


@functools.lru_cache(maxsize=8)
def _endpoint(*settings: str | None) -> str:
    return str(boto3.session.Session().client("s3").meta.endpoint_url)


def plain_http() -> bool:
    return endpoint().lower().startswith("http://")


def pass_on_ca_bundle() -> None:
    """Make AWS_CA_BUNDLE (the authority boto3 trusts) trusted by obstore as well, through SSL_CERT_FILE:
    a file with the authorities of SSL_CERT_FILE (or certifi's) and those of AWS_CA_BUNDLE."""
    bundle = os.environ.get("AWS_CA_BUNDLE")
    if not bundle:
        return
    path = Path(bundle).expanduser()
    if not path.is_file():
        raise UserError(f"AWS_CA_BUNDLE={bundle} is not a file; point it at the PEM file of the certificate "
                        "authority that signed the object store's certificate, or unset it.")
    extra = path.read_text()
    current = os.environ.get("SSL_CERT_FILE")
    if current and Path(current).is_file():
        base = Path(current).read_text()
    else:
        with contextlib.suppress(ImportError):
            import certifi

            base = Path(certifi.where()).read_text()
    if extra.strip() in base:
        return  # SSL_CERT_FILE trusts that authority already
    text = base.rstrip("\n") + "\n" + extra
    combined = Path(tempfile.gettempdir()) / f"ca-bundle-{hashlib.sha1(text.encode()).hexdigest()[:16]}.pem"
    if not combined.is_file():
        partial = combined.with_name(f"{combined.name}.{os.getpid()}.partial")
        partial.write_text(text)
        os.replace(partial, combined)  # processes writing the same file at once each publish a whole one
    os.environ["SSL_CERT_FILE"] = str(combined)


def _cause(exc: BaseException) -> BaseException:
    """The boto3 error behind `exc` (boto3's transfers wrap it in S3UploadFailedError)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, (ClientError, BotoCoreError)):
            return seen
        seen = seen.__cause__ or seen.__context__
    return exc


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:160]


def explain(exc: BaseException, url: str, doing: str = "read") -> UserError:
    """One sentence for what boto3 raised reaching `url`: what failed and which setting to change."""
    where = endpoint()
    if isinstance(exc, UserError):
        return exc
    exc = _cause(exc)
    if isinstance(exc, NoCredentialsError):
        return UserError(f"no credentials to {doing} {url}: set {CREDENTIALS}.")
    if isinstance(exc, SSLError):
        found = re.search(r"\[SSL[^\]]*\][^(]*", str(exc))  # "[SSL: CERTIFICATE_VERIFY_FAILED] certificate ..."
        reason = found.group(0).strip() if found else _first_line(exc)
        if "WRONG_VERSION_NUMBER" in reason or "record layer failure" in reason:
            return UserError(f"the object store at {where} does not answer HTTPS ({reason}); if it serves plain "
                             "HTTP, set AWS_ENDPOINT_URL to its http:// address.")
        return UserError(f"the certificate of the object store at {where} does not verify ({reason}); set "
                         "AWS_CA_BUNDLE to the PEM file of the authority that signed it.")
    if isinstance(exc, (EndpointConnectionError, ConnectTimeoutError)):
        return UserError(f"cannot reach the object store at {where} to {doing} {url}; check that it runs and that "
                         "AWS_ENDPOINT_URL holds its address (http:// or https://, with its port).")
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code in ("NoSuchBucket", "404") or status == 404:
            return UserError(f"the bucket of {url} does not exist at {where}; create it (aws s3 mb "
                             f"s3://{urlparse(url).netloc}) or fix the URL.")
        if code in REFUSED_CREDENTIALS or (code == "403" and doing == "reach"):
            return UserError(f"the object store at {where} refused the credentials ({code}); set {CREDENTIALS} "
                             "to keys it accepts.")
        if code in ("AccessDenied", "403", "AllAccessDisabled"):
            return UserError(f"the object store at {where} accepted the credentials but denied them the right to "
                             f"{doing} {url} ({code}); use keys that may, or another URL.")
        return UserError(f"the object store at {where} refused to {doing} {url} ({code}: "
                         f"{_first_line(exc)}); check the URL and your credentials.")
    if isinstance(exc, BotoCoreError):
        return UserError(f"cannot {doing} {url} at {where} ({type(exc).__name__}: {_first_line(exc)}); check "
                         "AWS_ENDPOINT_URL and the network.")
    return UserError(f"cannot {doing} {url} at {where} ({type(exc).__name__}: {_first_line(exc)}).")


@functools.cache
def check_bucket(bucket: str, *settings: str | None) -> None:
    """Reach the store, verify its certificate, have it accept the credentials and list the bucket: each
    failure is its own sentence. Once a process for a bucket and the same settings (a failure is not kept)."""
    url = f"s3://{bucket}"
    try:
        s3_client(CHECK_CONFIG).list_objects_v2(Bucket=bucket, MaxKeys=1)
    except Exception as exc:
        raise explain(exc, url, "reach") from None


def client(url: str) -> Any:
    """A boto3 client for the bucket of `url`, checked (`check_bucket`), with the settings passed on."""
    pass_on_ca_bundle()
    check_bucket(urlparse(url).netloc, endpoint(), *(os.environ.get(key) for key in CHECKED_SETTINGS))
    return s3_client()


class BotoChunks(Downloader):
    """LitData's downloader interface over boto3, for an endpoint obstore does not talk to (plain HTTP).
    Each file is downloaded to a temporary name and renamed: readers see no file or a whole one."""

    @property
    def _client(self) -> Any:
        if getattr(self, "_client_pid", None) != os.getpid():  # a boto3 client is not shared across a fork
            self._boto, self._client_pid = s3_client(), os.getpid()
        return self._boto

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state.pop("_boto", None)
        state.pop("_client_pid", None)
        return state

    def download_file(self, remote_filepath: str, local_filepath: str) -> None:
        if os.path.exists(local_filepath):
            return
        parsed = urlparse(remote_filepath)
        os.makedirs(os.path.dirname(local_filepath) or ".", exist_ok=True)
        partial = self._temp_download_path(local_filepath)
        try:
            self._client.download_file(parsed.netloc, parsed.path.lstrip("/"), partial)
            self._publish_file(partial, local_filepath)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.remove(partial)
            raise

    def download_bytes(self, remote_filepath: str, offset: int, length: int, local_filepath: str) -> bytes:
        if length == 0:
            return b""
        parsed = urlparse(remote_filepath)
        response = self._client.get_object(Bucket=parsed.netloc, Key=parsed.path.lstrip("/"),
                                           Range=f"bytes={offset}-{offset + length - 1}")
        with contextlib.closing(response["Body"]) as body:
            return body.read()

    def download_fileobj(self, remote_filepath: str, fileobj: Any) -> None:
        parsed = urlparse(remote_filepath)
        self._client.download_fileobj(parsed.netloc, parsed.path.lstrip("/"), fileobj)


class UploadFailed(UserError):
    """An upload of a finished split failed: the sentence, and `what` (the file and the error, short)."""

    def __init__(self, message: str, what: str) -> None:
        super().__init__(message)
        self.what = what


def upload_folder(folder: Path, url: str, threads: int = 8) -> None:
    """Upload the files of `folder` under `url`, LitData's index.json last (a reader finds the split's index
    only once its chunks are there). The first failure stops the upload: `UploadFailed` names that file."""
    parsed = urlparse(url)
    bucket, prefix = parsed.netloc, parsed.path.strip("/")
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    last = [p for p in files if p.name == "index.json"]
    s3 = client(url)

    def put(path: Path) -> None:
        key = "/".join(filter(None, [prefix, path.relative_to(folder).as_posix()]))
        try:
            s3.upload_file(str(path), bucket, key)
        except Exception as exc:
            error = _cause(exc)
            code = error.response.get("Error", {}).get("Code", "") if isinstance(error, ClientError) else ""
            what = f"s3://{bucket}/{key} ({code or type(error).__name__})"
            raise UploadFailed(f"the upload of the shards stopped: {explain(exc, f's3://{bucket}/{key}', 'write')}",
                               what) from None

    with ThreadPoolExecutor(max_workers=threads) as pool:
        for batch in ([p for p in files if p not in last], last):
            futures = [pool.submit(put, path) for path in batch]
            for future in as_completed(futures):
                if future.exception() is not None:
                    for other in futures:
                        other.cancel()
                    raise future.exception()


class S3Chunks:
    """What LitData downloads s3:// files with: `BotoChunks` for a plain-HTTP endpoint, LitData's own
    `S3Downloader` (obstore) otherwise. Decided when LitData asks, in each process."""

    def __new__(cls, remote_dir: str, cache_dir: str, chunks: list[dict[str, Any]],
                storage_options: dict | None = None, **kwargs: Any) -> Downloader:
        kind = BotoChunks if plain_http() else S3Downloader
        return kind(remote_dir, cache_dir, chunks, storage_options, **kwargs)


register_downloader("s3://", S3Chunks, overwrite=True)  # type: ignore[arg-type]
