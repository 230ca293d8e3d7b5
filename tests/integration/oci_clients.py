"""The OCI tools the OCI tests drive: skopeo (a Debian package, which .ci/run installs)."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest


def skopeo(*args: str) -> subprocess.CompletedProcess[str]:
    """Run skopeo with args (check=True). Skips when it is not installed, except under CI=true,
    where that is a failure: a CI run that skips the real clients proves nothing."""
    found = shutil.which("skopeo")
    if found is None:
        reason = "skopeo is not installed (apt-get install skopeo; .ci/run installs it)"
        if os.environ.get("CI", "").lower() in {"true", "1"}:
            pytest.fail(f"{reason} (CI is set, so this is a failure, not a skip)")
        pytest.skip(reason)
    return subprocess.run([found, *args], capture_output=True, text=True, timeout=120, check=True)
