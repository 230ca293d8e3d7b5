"""The suite's own rules (tests/conftest.py), checked by running inner pytest sessions.

These run whatever the leg: they never start PostgreSQL (the binaries directory is bogus).
"""

from __future__ import annotations

from pathlib import Path

import pytest

_CONFTEST = Path(__file__).resolve().parents[1] / "conftest.py"

# Inner sessions run in this process and pytester unloads what they import, so without this
# each one would re-import (and assertion-rewrite) all of hypothesis, about a second each.
_INNER_ARGS = ("-p", "no:hypothesispytest")

_INNER_TESTS = """
def test_uses_the_database(database_url):
    pass

def test_needs_no_database():
    pass
"""


@pytest.fixture
def inner(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """A pytester directory with the suite's conftest, on the PostgreSQL leg without binaries."""
    pytester.makeconftest(_CONFTEST.read_text())
    pytester.makepyfile(test_inner=_INNER_TESTS)
    monkeypatch.setenv("ARTIFACTSTORE_TEST_DATABASE", "postgresql")
    monkeypatch.setenv("ARTIFACTSTORE_TEST_PG_BIN", str(pytester.path / "no-such-bin"))
    monkeypatch.delenv("CI", raising=False)
    return pytester


def test_artifactstore_settings_are_hidden_from_tests(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makeconftest(_CONFTEST.read_text())
    pytester.makepyfile(
        """
        import os

        def test_environment():
            assert "ARTIFACTSTORE_DATABASE_URL" not in os.environ
            assert os.environ["ARTIFACTSTORE_TEST_MARK"] == "kept"
        """
    )
    monkeypatch.setenv("ARTIFACTSTORE_DATABASE_URL", "sqlite:////nowhere/registry.db")
    monkeypatch.setenv("ARTIFACTSTORE_TEST_MARK", "kept")
    pytester.runpytest(*_INNER_ARGS).assert_outcomes(passed=1)


def test_postgres_marker_selects_exactly_the_database_tests(inner: pytest.Pytester) -> None:
    result = inner.runpytest(*_INNER_ARGS, "-m", "not postgres")
    result.assert_outcomes(passed=1, deselected=1)


def test_missing_server_skips_outside_ci(inner: pytest.Pytester) -> None:
    result = inner.runpytest(*_INNER_ARGS, "-m", "postgres", "-ra")
    result.assert_outcomes(skipped=1, deselected=1)
    result.stdout.fnmatch_lines(["*PostgreSQL test server unavailable*no-such-bin*"])


@pytest.mark.parametrize("ci", ["true", "1"])
def test_missing_server_fails_under_ci(
    inner: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, ci: str
) -> None:
    monkeypatch.setenv("CI", ci)
    result = inner.runpytest(*_INNER_ARGS, "-m", "postgres")
    result.assert_outcomes(errors=1, deselected=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*CI is set, so this is a failure, not a skip*"])


def test_leg_without_tests_fails(inner: pytest.Pytester) -> None:
    # pytest exits 5 when nothing is selected, so a tox leg with no tests fails.
    (inner.path / "test_inner.py").write_text("def test_needs_no_database():\n    pass\n")
    result = inner.runpytest(*_INNER_ARGS, "-m", "postgres")
    assert result.ret == pytest.ExitCode.NO_TESTS_COLLECTED


def test_unknown_database_kind_is_a_usage_error(
    inner: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ARTIFACTSTORE_TEST_DATABASE", "mysql")
    result = inner.runpytest(*_INNER_ARGS)
    assert result.ret == pytest.ExitCode.USAGE_ERROR


_SLOW_TESTS = """
import pytest

@pytest.mark.slow
def test_slow():
    pass

def test_quick():
    pass
"""


def test_slow_tests_are_left_out_of_a_local_run(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makeconftest(_CONFTEST.read_text())
    pytester.makepyfile(test_inner=_SLOW_TESTS)
    monkeypatch.delenv("CI", raising=False)
    pytester.runpytest(*_INNER_ARGS).assert_outcomes(passed=1, deselected=1)
    pytester.runpytest(*_INNER_ARGS, "-m", "slow").assert_outcomes(passed=1, deselected=1)
    monkeypatch.setenv("CI", "true")
    pytester.runpytest(*_INNER_ARGS).assert_outcomes(passed=2)
