"""Settings: where the database and the blobs live, read once from arguments or environment.

Where the blobs live is one URL: `file:///abs/path` for the local backend (a root directory
given as `--root` or ARTIFACTSTORE_STORAGE_LOCAL_ROOT is the shorthand for it), or
`s3://bucket/prefix?endpoint_url=...&region=...` for an S3-compatible object store (credentials
come from the standard AWS chain, never from the URL); `dataplane.factory` opens them.

Nothing below this module reads `os.environ`; the CLI entry point and `create_app()` call
`load_settings` once and pass the frozen `Settings` down.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

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
class S3Location:
    """A bucket, the key prefix inside it ('' or ending in '/'), and how to reach it."""

    bucket: str
    prefix: str = ""
    endpoint_url: str | None = None
    region: str | None = None

    @property
    def where(self) -> str:
        """The bucket and prefix as an s3:// URL, with the endpoint; holds no secret."""
        endpoint = f" at {self.endpoint_url}" if self.endpoint_url else ""
        return f"s3://{self.bucket}/{self.prefix}{endpoint}"


_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_S3_OPTIONS = ("endpoint_url", "region")


def s3_location(storage_url: str) -> S3Location | None:
    """The bucket an s3:// storage URL names, or None for another scheme.

    ConfigError (quoting the URL with its secrets hidden) for a bucket name S3 does not allow,
    credentials in the URL, or a query option other than endpoint_url and region.
    """
    parts = urlsplit(storage_url)
    if parts.scheme != "s3":
        return None
    shown = redact_url(storage_url)
    if "@" in parts.netloc:
        bucket = parts.netloc.rpartition("@")[2]
        raise ConfigError(
            f"storage URL s3://{bucket}{parts.path} holds credentials: give them the standard AWS "
            "way (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE or ~/.aws), never in "
            "the URL"
        )
    if not _BUCKET.fullmatch(parts.netloc):
        raise ConfigError(f"storage URL {shown}: {parts.netloc!r} is not an S3 bucket name")
    options = dict(parse_qsl(parts.query, keep_blank_values=True))
    unknown = sorted(set(options) - set(_S3_OPTIONS))
    if unknown or parts.fragment:
        raise ConfigError(
            f"storage URL {shown}: an s3 URL takes only ?{'&'.join(o + '=' for o in _S3_OPTIONS)}"
        )
    endpoint = options.get("endpoint_url") or None
    if endpoint is not None and urlsplit(endpoint).scheme not in ("http", "https"):
        raise ConfigError(f"storage URL {shown}: endpoint_url must be http:// or https://")
    prefix = unquote(parts.path).strip("/")
    return S3Location(
        parts.netloc, f"{prefix}/" if prefix else "", endpoint, options.get("region") or None
    )


@dataclass(frozen=True, slots=True)
class Settings:
    """Where the registry database and the blobs are, and how loudly to log."""

    database_url: str = DEFAULT_DATABASE_URL
    storage_url: str = field(default_factory=lambda: local_storage_url(DEFAULT_STORAGE_ROOT))
    log_level: str = "WARNING"

    @property
    def redacted_database_url(self) -> str:
        """The database URL with its password and secret query values as '***', safe to print."""
        return redact_database_url(self.database_url)

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
    check_database_url(url)
    if storage_url and storage_root:
        raise ConfigError("give a storage URL or a local root, not both")
    storage = (
        storage_url
        or (local_storage_url(storage_root) if storage_root else None)
        or environ.get(f"{ENV_PREFIX}STORAGE_URL")
        or local_storage_url(environ.get(f"{ENV_PREFIX}STORAGE_LOCAL_ROOT") or DEFAULT_STORAGE_ROOT)
    )
    local_root(storage)  # a malformed file or s3 URL is refused here, once
    s3_location(storage)
    level = environ.get(f"{ENV_PREFIX}LOG_LEVEL", "WARNING").upper()
    if level not in _LOG_LEVELS:
        raise ConfigError(f"{ENV_PREFIX}LOG_LEVEL={level!r} is not one of {', '.join(_LOG_LEVELS)}")
    return Settings(database_url=url, storage_url=storage, log_level=level)


_QUIET_BELOW_INFO = ("botocore", "boto3", "s3transfer", "urllib3")
"""Loggers kept at INFO or above: at DEBUG botocore logs every request's signed headers."""


def configure_logging(settings: Settings) -> None:
    """Send library logs to stderr at the configured level (the AWS SDK's at INFO at most)."""
    logging.basicConfig(level=settings.log_level, format="%(levelname)s %(name)s: %(message)s")
    for name in _QUIET_BELOW_INFO:
        logging.getLogger(name).setLevel(
            max(logging.INFO, logging.getLevelName(settings.log_level))
        )


_USER_INFO_SECRET = re.compile(
    # The password of scheme://user:password@host, up to the last '@' of the URL so that an
    # unencoded '@' inside the password cannot leave its tail showing.
    r"(?P<head>\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s:/?#@'\"]*:)[^\s'\"]*(?P<tail>@)"
)
_SECRET_PAIR = re.compile(
    # key=value where the key names a secret: a URL query (?password=...&sslpassword=...) or a
    # libpq connection string (password='...') quoted in a driver's message.
    r"(?P<key>(?<![\w.-])[\w.-]*(?:pass|pwd|secret|token|key|credential|signature)[\w.-]*)"
    # A value ends at a space, separator or quote; a ',', ')' or ':' ends it only where prose
    # goes on after it ("...?password=***: why"), else it may be part of the secret.
    r"(?P<sep>\s*=\s*)(?:'(?:[^'\\]|\\.)*'|\"[^\"]*\"|(?:[^\s&;'\",):]|[,):](?=\S))+)",
    re.IGNORECASE,
)


def redact_url(text: str) -> str:
    """text with every secret replaced by '***', safe to print.

    Hides the password of any URL in it (postgresql://user:secret@host/db, also when the
    password holds an unencoded '@') and the value of every key=value pair whose key names a
    secret (case-insensitive: a key containing pass, pwd, secret, token, key, credential or
    signature), as in ?password=... or a driver's password='...'.
    """
    text = _USER_INFO_SECRET.sub(r"\g<head>***\g<tail>", text)
    return _SECRET_PAIR.sub(r"\g<key>\g<sep>***", text)


def _split_user_info(rest: str) -> tuple[str, str]:
    """Split what follows 'scheme://' into the user-info and the rest (host, path, query).

    As SQLAlchemy reads it, the password ends at the first '@' and may hold '?', '/', '#',
    quotes or spaces; an unencoded '@' in it moves the end to the last '@' before the host's
    end (the first '/' or '?' after the first '@'), so none of it is taken for the host.
    """
    first = rest.find("@")
    if first < 0:
        return "", rest
    ends = [i for i in (rest.find("/", first), rest.find("?", first)) if i >= 0]
    last = rest.rfind("@", first, min(ends, default=len(rest)))
    return rest[:last], rest[last + 1 :]


def redact_database_url(url: str) -> str:
    """A configured database URL, safe to print: read by its structure, so a password holding
    '?', '#', a quote or a space is hidden whole (redact_url reads free text)."""
    scheme, sep, rest = url.partition("://")
    userinfo, host = _split_user_info(rest)
    user, colon, _ = userinfo.partition(":")
    if not sep:
        return redact_url(url)
    if colon:
        url = f"{scheme}://{user}:***@{host}"
    return _SECRET_PAIR.sub(r"\g<key>\g<sep>***", url)


def check_database_url(url: str) -> None:
    """ConfigError unless the URL reads the same to us and to the driver.

    Refuses a port that is not a number from 1 to 65535 and an unencoded '@' in the user name
    or password (the driver would take the rest of the password for the host name and quote
    it in its errors). SQLite URLs name a file path and are left to SQLAlchemy.
    """
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.split("+", 1)[0] == "sqlite":
        return
    userinfo, host = _split_user_info(rest)
    if "@" in userinfo:
        raise ConfigError(
            f"database URL {redact_database_url(url)} has more than one '@': write an '@' in "
            "the user name or password as %40"
        )
    location = re.split(r"[/?#]", host, maxsplit=1)[0]
    port = location.rpartition("]")[2] if location.startswith("[") else location
    _, colon, port = port.partition(":")
    if colon and port and not (port.isdigit() and 1 <= int(port) <= 65535):
        raise ConfigError(
            f"database URL {redact_database_url(url)}: port {port!r} is not a number from 1 "
            "to 65535"
        )
