"""Settings: where the database and the blobs live, read once from arguments or environment.

Where the blobs live is one URL: `file:///abs/path` for the local backend (a root directory
given as `--root` or ARTIFACTSTORE_STORAGE_LOCAL_ROOT is the shorthand for it); other schemes
are recognised by `dataplane.factory`.

Nothing below this module reads `os.environ`; the CLI entry point and `create_app()` call
`load_settings` once and pass the frozen `Settings` down.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

from artifactstore.errors import ConfigError

DEFAULT_HOME = Path(".artifactstore")
DEFAULT_DATABASE_URL = f"sqlite:///./{DEFAULT_HOME}/registry.db"
DEFAULT_STORAGE_ROOT = DEFAULT_HOME / "blobs"
ENV_PREFIX = "ARTIFACTSTORE_"
_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def local_storage_url(root: str | Path) -> str:
    """The storage URL of a local blob root: file:// and its absolute path."""
    return Path(root).absolute().as_uri()


def local_root(storage_url: str) -> Path | None:
    """The directory a file:// storage URL names, or None for another scheme.

    ConfigError if it is a file URL that names no absolute local path.
    """
    parts = urlsplit(storage_url)
    if parts.scheme != "file":
        return None
    if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
        raise ConfigError(
            f"storage URL {storage_url!r} is not file:///<absolute path> on this machine"
        )
    if parts.query or parts.fragment:
        raise ConfigError(f"storage URL {storage_url!r}: a file URL takes no query or fragment")
    return Path(unquote(parts.path))


@dataclass(frozen=True, slots=True)
class Settings:
    """Where the registry database and the blobs are, and how loudly to log."""

    database_url: str = DEFAULT_DATABASE_URL
    storage_url: str = field(default_factory=lambda: local_storage_url(DEFAULT_STORAGE_ROOT))
    log_level: str = "WARNING"

    @property
    def redacted_database_url(self) -> str:
        """The database URL with any password replaced by '***', safe to print."""
        return redact_url(self.database_url)

    @property
    def storage_root(self) -> Path | None:
        """The local blob root when the storage URL is a file:// URL, else None."""
        return local_root(self.storage_url)


def load_settings(
    environ: Mapping[str, str],
    database_url: str | None = None,
    storage_root: str | Path | None = None,
    storage_url: str | None = None,
) -> Settings:
    """Build Settings from explicit values, else ARTIFACTSTORE_* variables, else defaults.

    Storage: an explicit URL or root, else ARTIFACTSTORE_STORAGE_URL, else
    ARTIFACTSTORE_STORAGE_LOCAL_ROOT, else ./.artifactstore/blobs. Giving both a URL and a
    root explicitly is a ConfigError.
    """
    url = database_url or environ.get(f"{ENV_PREFIX}DATABASE_URL") or DEFAULT_DATABASE_URL
    if storage_url and storage_root:
        raise ConfigError("give a storage URL or a local root, not both")
    storage = (
        storage_url
        or (local_storage_url(storage_root) if storage_root else None)
        or environ.get(f"{ENV_PREFIX}STORAGE_URL")
        or local_storage_url(environ.get(f"{ENV_PREFIX}STORAGE_LOCAL_ROOT") or DEFAULT_STORAGE_ROOT)
    )
    local_root(storage)  # a malformed file URL is refused here, once
    level = environ.get(f"{ENV_PREFIX}LOG_LEVEL", "WARNING").upper()
    if level not in _LOG_LEVELS:
        raise ConfigError(f"{ENV_PREFIX}LOG_LEVEL={level!r} is not one of {', '.join(_LOG_LEVELS)}")
    return Settings(database_url=url, storage_url=storage, log_level=level)


def configure_logging(settings: Settings) -> None:
    """Send library logs to stderr at the configured level."""
    logging.basicConfig(level=settings.log_level, format="%(levelname)s %(name)s: %(message)s")


_PASSWORD_IN_URL = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@]*:)[^/]*(?P<tail>@)")


def redact_url(url: str) -> str:
    """Replace the password of a URL such as postgresql://user:secret@host/db with '***'."""
    return _PASSWORD_IN_URL.sub(r"\g<head>***\g<tail>", url)
