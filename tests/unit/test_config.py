"""Settings: where the database and the blobs are, from arguments, environment or defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from artifactstore.config import (
    S3Location,
    Settings,
    check_database_url,
    load_settings,
    local_root,
    local_storage_url,
    redact_database_url,
    redact_url,
    s3_location,
)
from artifactstore.dataplane.factory import dataplane_from_settings
from artifactstore.errors import ConfigError


def test_a_local_root_is_the_short_form_of_a_file_url(tmp_path: Path) -> None:
    settings = load_settings({}, storage_root=tmp_path / "blobs")
    assert settings.storage_url == (tmp_path / "blobs").as_uri()
    assert settings.storage_root == tmp_path / "blobs"


def test_default_storage_is_the_blob_folder_of_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert load_settings({}).storage_root == tmp_path / ".artifactstore" / "blobs"
    assert Settings().storage_root == tmp_path / ".artifactstore" / "blobs"


def test_storage_precedence_explicit_then_url_variable_then_root_variable(
    tmp_path: Path,
) -> None:
    env = {
        "ARTIFACTSTORE_STORAGE_URL": (tmp_path / "from-url").as_uri(),
        "ARTIFACTSTORE_STORAGE_LOCAL_ROOT": str(tmp_path / "from-root"),
    }
    assert load_settings(env).storage_root == tmp_path / "from-url"
    del env["ARTIFACTSTORE_STORAGE_URL"]
    assert load_settings(env).storage_root == tmp_path / "from-root"
    explicit = load_settings(env, storage_url=(tmp_path / "given").as_uri())
    assert explicit.storage_root == tmp_path / "given"
    with pytest.raises(ConfigError, match="not both"):
        load_settings({}, storage_root=tmp_path, storage_url=tmp_path.as_uri())


@pytest.mark.parametrize(
    "url", ["file://host/srv/blobs", "file:relative/blobs", "file:///srv/blobs?x=1"]
)
def test_a_file_url_must_name_an_absolute_local_path(url: str) -> None:
    with pytest.raises(ConfigError, match="storage URL"):
        load_settings({}, storage_url=url)


def test_a_file_url_with_escapes_names_its_path() -> None:
    assert local_root("file:///srv/my%20blobs") == Path("/srv/my blobs")
    assert local_root(local_storage_url("/srv/my blobs")) == Path("/srv/my blobs")


def test_an_unknown_scheme_is_a_config_error_naming_the_known_ones() -> None:
    settings = load_settings({}, storage_url="gs://bucket/prefix")
    assert settings.storage_root is None
    with pytest.raises(ConfigError, match=r"'gs' is not supported.*file, s3"):
        dataplane_from_settings(settings)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("s3://my-bucket", S3Location("my-bucket")),
        ("s3://my-bucket/", S3Location("my-bucket")),
        ("s3://my-bucket/a/b/", S3Location("my-bucket", "a/b/")),
        (
            "s3://b.example/store?endpoint_url=http://127.0.0.1:9000&region=eu-west-1",
            S3Location("b.example", "store/", "http://127.0.0.1:9000", "eu-west-1"),
        ),
    ],
)
def test_an_s3_url_names_bucket_prefix_endpoint_and_region(url: str, expected: S3Location) -> None:
    assert s3_location(url) == expected
    assert load_settings({}, storage_url=url).storage_root is None
    assert s3_location("file:///srv/blobs") is None


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("s3://AKIAX:supersecret@bucket/p", "holds credentials"),
        ("s3://bucket/p?aws_secret_access_key=supersecret", "takes only"),
        ("s3://Bad_Bucket/p", "is not an S3 bucket name"),
        ("s3://bucket/p?endpoint_url=ftp://host", "http:// or https://"),
        ("s3://bucket/p#frag", "takes only"),
    ],
)
def test_a_bad_s3_url_is_a_config_error_that_hides_secrets(url: str, says: str) -> None:
    with pytest.raises(ConfigError, match=says) as raised:
        load_settings({"ARTIFACTSTORE_STORAGE_URL": url})
    assert "supersecret" not in str(raised.value)
    assert "AKIAX" not in str(raised.value)


@pytest.mark.parametrize(
    ("text", "redacted"),
    [
        ("postgresql://ci:hunter2@db/x", "postgresql://ci:***@db/x"),
        # An unencoded '@' in the password: its tail is hidden too.
        ("postgresql://ci:p@ss@db/x", "postgresql://ci:***@db/x"),
        ("postgresql://ci@db/x?password=qsecret", "postgresql://ci@db/x?password=***"),
        (
            "postgresql://ci@db/x?sslmode=require&SSLPassword=k1&Token=t2;api_key=k3",
            "postgresql://ci@db/x?sslmode=require&SSLPassword=***&Token=***;api_key=***",
        ),
        # A driver's message: a URL with its query, then prose after a colon.
        (
            "cannot open database postgresql://u@h/x?pwd=a:b: connection refused",
            "cannot open database postgresql://u@h/x?pwd=***: connection refused",
        ),
        ("bad conninfo: password='a b\\'c' host=db", "bad conninfo: password=*** host=db"),
        ('secret="x y" (passwd=a,b)', "secret=*** (passwd=***)"),
        ("sqlite:////srv/store/registry.db", "sqlite:////srv/store/registry.db"),
    ],
)
def test_redact_url_hides_passwords_in_user_info_query_and_driver_text(
    text: str, redacted: str
) -> None:
    assert redact_url(text) == redacted
    assert redact_url(redacted) == redacted


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("postgresql://u@db:99999/x", "port '99999' is not a number from 1 to 65535"),
        ("postgresql://u@db:abc/x", "port 'abc' is not a number from 1 to 65535"),
        ("postgresql://u@[::1]:0/x", "port '0' is not a number from 1 to 65535"),
        ("postgresql://u:p@ss-secret@db/x", "more than one '@'"),
    ],
)
def test_a_malformed_database_url_is_a_config_error_at_settings_load(
    url: str, problem: str
) -> None:
    with pytest.raises(ConfigError, match=problem) as caught:
        load_settings({}, database_url=url)
    assert "ss-secret" not in str(caught.value)
    with pytest.raises(ConfigError, match=problem):
        load_settings({"ARTIFACTSTORE_DATABASE_URL": url})


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://u:p%40ss@db:5432/x?application_name=a@b",
        "postgresql+psycopg://u@[::1]:5432/x",
        "postgresql://u@db/x",
        "sqlite:////srv/a@b/registry.db",
    ],
)
def test_well_formed_database_urls_pass(url: str) -> None:
    check_database_url(url)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://ci:sec?ret@db/x", "postgresql://ci:***@db/x"),
        ("postgresql://ci:a'b c\"d#e@db:5432/x", "postgresql://ci:***@db:5432/x"),
        ("postgresql://ci:p@ss@db/x", "postgresql://ci:***@db/x"),
        (
            "postgresql://ci:p%40ss@db/x?application_name=a@b",
            "postgresql://ci:***@db/x?application_name=a@b",
        ),
        ("postgresql://ci@db/x?sslpassword=s&a=1", "postgresql://ci@db/x?sslpassword=***&a=1"),
        ("sqlite:///var/lib/a.db", "sqlite:///var/lib/a.db"),
    ],
)
def test_a_configured_database_url_is_redacted_by_its_structure(url: str, shown: str) -> None:
    assert redact_database_url(url) == shown
