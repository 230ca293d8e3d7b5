"""Settings: where the database and the blobs are, from arguments, environment or defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from artifactstore.config import Settings, load_settings, local_root, local_storage_url
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
    settings = load_settings({}, storage_url="s3://bucket/prefix")
    assert settings.storage_root is None
    with pytest.raises(ConfigError, match=r"'s3' is not supported.*file"):
        dataplane_from_settings(settings)
