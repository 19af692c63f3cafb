"""A local S3-compatible server for the tests: moto's server (from the package index) on a localhost port,
over HTTPS with a certificate signed by a certificate authority made here (AWS_CA_BUNDLE names it), or
over plain HTTP (MinIO's default). With `iam=True` the server checks credentials and IAM policies as S3
does: the environment it yields holds the keys of a user allowed everything, and `user_keys` makes keys
of a user with a given policy."""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def write_certificates(folder: Path) -> tuple[Path, Path, Path]:
    """(authority.pem, server.pem, server.key): an authority and a server certificate for localhost."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test authority")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    server = (x509.CertificateBuilder()
              .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
              .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
              .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
              .add_extension(x509.SubjectAlternativeName(names), critical=False)
              .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
              .sign(ca_key, hashes.SHA256()))
    paths = folder / "authority.pem", folder / "server.pem", folder / "server.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(server.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return paths


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# Requests moto serves before it checks credentials: those that make the first user and its keys.
SETUP_REQUESTS = 3
ALLOW_ALL = [{"Effect": "Allow", "Action": "*", "Resource": "*"}]


def user_keys(env: dict[str, str], name: str, statements: list[dict]) -> dict[str, str]:
    """AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY of a new user whose policy holds `statements`, made with
    the keys in `env`."""
    import boto3

    iam = boto3.client("iam", endpoint_url=env["AWS_ENDPOINT_URL"], region_name=env["AWS_DEFAULT_REGION"],
                       aws_access_key_id=env["AWS_ACCESS_KEY_ID"], aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
                       verify=env.get("AWS_CA_BUNDLE", True))
    iam.create_user(UserName=name)
    iam.put_user_policy(UserName=name, PolicyName="shards",
                        PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": statements}))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return {"AWS_ACCESS_KEY_ID": key["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"]}


@contextmanager
def s3_server(folder: Path, https: bool = True, iam: bool = False) -> Iterator[dict[str, str] | str]:
    """Yields the environment that points boto3 and LitData at the server (AWS_CA_BUNDLE names the authority
    of an HTTPS server, and nothing else), or why it could not start."""
    port = free_port()
    command = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    env = {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": "test",
           "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1"}
    if https:
        authority, cert, key = write_certificates(folder)
        command += ["-c", str(cert), "-k", str(key)]
        env.update(AWS_ENDPOINT_URL=f"https://localhost:{port}", AWS_CA_BUNDLE=str(authority))
    server_env = dict(os.environ, INITIAL_NO_AUTH_ACTION_COUNT=str(SETUP_REQUESTS)) if iam else None
    log = open(folder / "moto.log", "w")
    proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=server_env)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.2)
        if proc.poll() is not None or time.monotonic() >= deadline:
            yield f"moto's S3 server did not start: {(folder / 'moto.log').read_text()[-500:]}"
            return
        if iam:  # the first user, allowed everything, made while the server still serves anyone
            env.update(user_keys(env, "admin", ALLOW_ALL))
        yield env
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()
