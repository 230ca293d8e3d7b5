"""The remote client's transport: TLS is verified wherever it is spoken."""

from __future__ import annotations

import ssl

import pytest

from artifactstore.remote.transport import Transport, verifies_tls

_PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy")


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in _PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)


def _verify_mode(transport: Transport) -> ssl.VerifyMode:
    context = transport._client._transport._pool._ssl_context  # type: ignore[attr-defined]
    assert isinstance(context, ssl.SSLContext)
    return context.verify_mode


def test_an_https_server_is_verified() -> None:
    assert verifies_tls("https://store.example")
    assert _verify_mode(Transport("https://store.example", "as_secret")) == ssl.CERT_REQUIRED


def test_plain_http_without_a_proxy_builds_no_verifying_context() -> None:
    assert not verifies_tls("http://127.0.0.1:8080")
    assert _verify_mode(Transport("http://127.0.0.1:8080", None)) == ssl.CERT_NONE


@pytest.mark.parametrize("variable", ["HTTPS_PROXY", "http_proxy", "ALL_PROXY"])
def test_plain_http_through_a_proxy_is_verified(
    monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    monkeypatch.setenv(variable, "https://proxy.example:3128")
    assert verifies_tls("http://store.internal")
    assert _verify_mode(Transport("http://store.internal", None)) == ssl.CERT_REQUIRED
