"""Settings: where the database and the blobs live, read once from arguments or environment.

Nothing below this module reads `os.environ`; the CLI entry point and `create_app()` call
`load_settings` once and pass the frozen `Settings` down.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from artifactstore.errors import ConfigError

DEFAULT_HOME = Path(".artifactstore")
DEFAULT_DATABASE_URL = f"sqlite:///./{DEFAULT_HOME}/registry.db"
DEFAULT_STORAGE_ROOT = DEFAULT_HOME / "blobs"
ENV_PREFIX = "ARTIFACTSTORE_"
_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


@dataclass(frozen=True, slots=True)
class Settings:
    """Where the registry database and the local blob root are, and how loudly to log."""

    database_url: str = DEFAULT_DATABASE_URL
    storage_root: Path = DEFAULT_STORAGE_ROOT
    log_level: str = "WARNING"

    @property
    def redacted_database_url(self) -> str:
        """The database URL with any password replaced by '***', safe to print."""
        return redact_url(self.database_url)


def load_settings(
    environ: Mapping[str, str],
    database_url: str | None = None,
    storage_root: str | Path | None = None,
) -> Settings:
    """Build Settings from explicit values, else ARTIFACTSTORE_* variables, else defaults."""
    url = database_url or environ.get(f"{ENV_PREFIX}DATABASE_URL") or DEFAULT_DATABASE_URL
    root = storage_root or environ.get(f"{ENV_PREFIX}STORAGE_LOCAL_ROOT") or DEFAULT_STORAGE_ROOT
    level = environ.get(f"{ENV_PREFIX}LOG_LEVEL", "WARNING").upper()
    if level not in _LOG_LEVELS:
        raise ConfigError(f"{ENV_PREFIX}LOG_LEVEL={level!r} is not one of {', '.join(_LOG_LEVELS)}")
    return Settings(database_url=url, storage_root=Path(root), log_level=level)


def configure_logging(settings: Settings) -> None:
    """Send library logs to stderr at the configured level."""
    logging.basicConfig(level=settings.log_level, format="%(levelname)s %(name)s: %(message)s")


_PASSWORD_IN_URL = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@]*:)[^/]*(?P<tail>@)")


def redact_url(url: str) -> str:
    """Replace the password of a URL such as postgresql://user:secret@host/db with '***'."""
    return _PASSWORD_IN_URL.sub(r"\g<head>***\g<tail>", url)
