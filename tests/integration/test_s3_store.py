"""A store whose blobs are in S3, end to end, against the loopback S3 server (moto).

Push, pull and verify through the CLI (`--storage s3://...`) and through `ArtifactStore.open`;
bytes tampered with in the bucket; a bucket that is missing, an endpoint that is down, no
credentials, no boto3; credentials never printed.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import blake3
import pytest
from s3_server import DUMMY_CREDENTIALS, S3Server, client, free_port, new_bucket
from test_cli import Cli, Result, base_env, one_error_line

from artifactstore import ArtifactStore
from artifactstore.config import S3Location

NAME, VERSION = "acme/app", "1.4.2"
SECRETS = (DUMMY_CREDENTIALS["AWS_SECRET_ACCESS_KEY"], DUMMY_CREDENTIALS["AWS_ACCESS_KEY_ID"])


@pytest.fixture
def s3cli(migrated_url: str, tmp_path: Path, s3_url: str) -> Cli:
    """A CLI over a fresh database whose blobs go to a fresh bucket."""
    env = {**base_env(tmp_path), "ARTIFACTSTORE_DATABASE_URL": migrated_url}
    del env["ARTIFACTSTORE_STORAGE_LOCAL_ROOT"]
    return Cli({**env, "ARTIFACTSTORE_STORAGE_URL": s3_url}, tmp_path)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """Small and large files, an executable, an empty file."""
    root = tmp_path / "dist"
    (root / "bin").mkdir(parents=True)
    (root / "README.txt").write_text("hello\n")
    (root / "bin" / "app").write_bytes(b"#!/bin/sh\necho app\n")
    (root / "bin" / "app").chmod(0o755)
    (root / "data.bin").write_bytes(os.urandom(300_000))
    (root / "huge.bin").write_bytes(os.urandom(9 << 20))  # more than one multipart part
    (root / "empty").write_bytes(b"")
    return root


def object_names(location: S3Location) -> list[str]:
    assert location.endpoint_url is not None
    listing = client(location.endpoint_url).list_objects_v2(Bucket=location.bucket)
    return sorted(item["Key"] for item in listing.get("Contents", []))


def no_secret(*results: Result) -> None:
    for result in results:
        for secret in SECRETS:
            assert secret not in result.err, result
            assert secret.encode() not in result.out, result


def test_push_pull_verify_through_the_cli(
    s3cli: Cli, tree: Path, tmp_path: Path, s3_location: S3Location
) -> None:
    s3cli.ok("push", NAME, VERSION, tree)
    names = object_names(s3_location)
    # Five distinct blobs (the two small text files differ), all under the prefix; no temp key.
    assert len(names) == 5
    assert all(name.startswith("store/blake3/") for name in names)
    s3cli.ok("pull", NAME, VERSION, tmp_path / "out")
    for path in ("README.txt", "bin/app", "data.bin", "huge.bin", "empty"):
        assert (tmp_path / "out" / path).read_bytes() == (tree / path).read_bytes()
    assert os.access(tmp_path / "out" / "bin" / "app", os.X_OK)
    s3cli.ok("verify", NAME, VERSION)
    # No local blob tier was made: small-blobs.db is one host's file.
    assert not list(tmp_path.rglob("small-blobs.db"))
    # A second push of the same bytes stores nothing new.
    s3cli.ok("push", NAME, "2", tree)
    assert object_names(s3_location) == names


def test_store_open_with_an_s3_url(migrated_url: str, s3_url: str, tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    (source / "a").write_bytes(b"alpha" * 1000)
    with ArtifactStore.open(migrated_url, storage_url=s3_url) as store:
        store.push(NAME, VERSION, source)
        store.pull((NAME, VERSION), tmp_path / "out")
        assert store.verify_all().ok
        health = store.storage_health()
    assert (tmp_path / "out" / "a").read_bytes() == b"alpha" * 1000
    assert health.reachable and health.backend_id == "s3"


def test_tampered_bytes_fail_verify_naming_the_file_and_pull_leaves_no_bad_file(
    s3cli: Cli, tree: Path, tmp_path: Path, s3_location: S3Location
) -> None:
    s3cli.ok("push", NAME, VERSION, tree)
    hex_digits = blake3.blake3((tree / "data.bin").read_bytes()).hexdigest()
    assert s3_location.endpoint_url is not None
    client(s3_location.endpoint_url).put_object(
        Bucket=s3_location.bucket,
        Key=f"store/blake3/{hex_digits[:2]}/{hex_digits[2:4]}/{hex_digits}",
        Body=os.urandom(300_000),
    )
    verify = s3cli("verify", NAME, VERSION)
    assert verify.code == 1, verify
    assert "data.bin" in verify.text + verify.err
    out = tmp_path / "out"
    pull = s3cli("pull", NAME, VERSION, out)
    assert pull.code == 1, pull
    assert "data.bin" in pull.err
    assert not (out / "data.bin").exists()
    assert not [p for p in out.rglob("*") if p.is_file() and p.name.startswith(".")]


def test_health_names_the_bucket_and_hides_credentials(s3cli: Cli, s3_location: S3Location) -> None:
    result = s3cli("--json", "health")
    assert result.code == 0, result
    storage = result.json()["storage"]  # type: ignore[index]
    assert storage["reachable"] is True
    assert s3_location.bucket in storage["detail"]
    no_secret(result)


def test_a_missing_bucket_exits_2_with_a_sentence_and_health_fails_naming_it(
    s3cli: Cli, tree: Path, s3_server_endpoint: str
) -> None:
    url = f"s3://no-such-bucket/p?endpoint_url={s3_server_endpoint}&region=us-east-1"
    push = s3cli("-v", "--storage", url, "push", NAME, VERSION, tree)
    assert push.code == 2, push
    assert "S3 bucket 'no-such-bucket' does not exist" in push.err
    health = s3cli("--json", "--storage", url, "health")
    assert health.code == 1
    storage = health.json()["storage"]  # type: ignore[index]
    assert storage["reachable"] is False
    assert "no-such-bucket" in storage["detail"]
    no_secret(push, health)


def test_an_unreachable_endpoint_exits_2_with_one_line(s3cli: Cli, tree: Path) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"
    url = f"s3://some-bucket/p?endpoint_url={endpoint}&region=us-east-1"
    line = one_error_line(s3cli("--storage", url, "push", NAME, VERSION, tree), 2)
    assert f"cannot reach the S3 endpoint {endpoint}" in line
    assert "some-bucket" in line


def test_no_credentials_exits_2_saying_how_to_give_them(s3cli: Cli, tree: Path) -> None:
    # A process of its own: this one's boto3 session has resolved its credentials already.
    env = {
        k: v
        for k, v in s3cli.env.items()
        if k not in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
    }
    done = subprocess.run(
        [sys.executable, "-m", "artifactstore", "push", NAME, VERSION, str(tree)],
        env=env,
        cwd=s3cli.cwd,
        capture_output=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 2, done
    err = done.stderr.decode()
    assert err.count("\n") == 1 and "AWS_ACCESS_KEY_ID" in err, err


def test_without_boto3_s3_storage_is_a_config_error_naming_the_extra(
    s3cli: Cli, tree: Path
) -> None:
    code = "import sys; sys.modules['boto3'] = None; from artifactstore.cli import main; main()"
    done = subprocess.run(
        [sys.executable, "-c", code, "push", NAME, VERSION, str(tree)],
        env=s3cli.env,
        cwd=s3cli.cwd,
        capture_output=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 2, done
    assert "pip install 'artifactstore[s3]'" in done.stderr.decode()


def test_debug_logs_and_verbose_errors_never_show_credentials(
    s3cli: Cli, tree: Path, s3_server_endpoint: str
) -> None:
    debug = {"ARTIFACTSTORE_LOG_LEVEL": "DEBUG"}
    pushed = s3cli("push", NAME, VERSION, tree, env=debug)
    assert pushed.code == 0, pushed
    url = f"s3://no-such-bucket/p?endpoint_url={s3_server_endpoint}&region=us-east-1"
    failed = s3cli("-v", "--storage", url, "pull", NAME, VERSION, "out", env=debug)
    assert failed.code == 2, failed
    assert "Traceback" in failed.err  # -v shows it, and still no secret in it
    no_secret(pushed, failed)


def test_wrong_credentials_exit_2_naming_the_bucket_without_the_secret(
    s3cli: Cli, tree: Path
) -> None:
    # A server that checks credentials after its first request (the bucket's creation).
    server = S3Server({"INITIAL_NO_AUTH_ACTION_COUNT": "1"})
    try:
        bucket = new_bucket(server.endpoint)
        url = f"s3://{bucket}/p?endpoint_url={server.endpoint}&region=us-east-1"
        push = s3cli("-v", "--storage", url, "push", NAME, VERSION, tree)
        assert push.code == 2, push
        # A HEAD's 403 has no body, so no error code beyond the status.
        assert re.search(
            rf"refused access to bucket '{bucket}' \((403|InvalidAccessKeyId)\)", push.err
        )
        health = s3cli("--json", "--storage", url, "health")
        assert health.code == 1
        assert "refused access" in health.json()["storage"]["detail"]  # type: ignore[index]
        no_secret(push, health)
    finally:
        server.stop()
