"""Digests agree with hashlib and blake3 however the bytes are chunked; addresses parse strictly."""

from __future__ import annotations

import hashlib
import io
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from itertools import pairwise
from types import TracebackType

import blake3
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from artifactstore import identity
from artifactstore.errors import InvalidAddressError
from artifactstore.identity import (
    ContentAddress,
    Digest,
    DualHasher,
    digest_here,
    digest_stream,
    digest_stream_here,
)

_BIG = 64 * 1024


@st.composite
def _data_and_cuts(draw: st.DrawFn) -> tuple[bytes, list[int]]:
    # A random head plus a repeated tail keeps big inputs cheap to generate.
    head = draw(st.binary(max_size=2048))
    repeat = draw(st.sampled_from([0, 1, 40, 300]))
    data = head + draw(st.binary(min_size=1, max_size=1024)) * repeat
    cuts = draw(st.lists(st.integers(0, len(data)), max_size=6))
    return data, sorted(cuts)


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    bounds = [0, *cuts, len(data)]
    return [data[a:b] for a, b in pairwise(bounds)]


@settings(max_examples=60, deadline=None)
@given(_data_and_cuts())
def test_digest_stream_matches_reference_for_any_chunking(case: tuple[bytes, list[int]]) -> None:
    data, cuts = case
    result = digest_stream(_split(data, cuts))
    assert result.sha256 == Digest("sha256", hashlib.sha256(data).hexdigest())
    assert result.blake3 == Digest("blake3", blake3.blake3(data).hexdigest())
    assert result.size == len(data)
    assert digest_stream(io.BytesIO(data)) == result
    assert digest_here(data) == result
    assert digest_stream_here(io.BytesIO(data)) == result
    assert str(result.content_address) == f"blake3:{blake3.blake3(data).hexdigest()}"


def test_large_chunks_take_the_two_thread_path() -> None:
    data = bytes(range(256)) * 1024 + b"tail"
    chunks = [data[: _BIG + 7], data[_BIG + 7 : 3 * _BIG], data[3 * _BIG :]]
    assert len(chunks[0]) >= _BIG
    assert len(chunks[1]) >= _BIG
    hasher = DualHasher()
    for chunk in chunks:
        hasher.update(chunk)
    result = hasher.result()
    assert result.sha256.hex == hashlib.sha256(data).hexdigest()
    assert result.blake3.hex == blake3.blake3(data).hexdigest()
    assert result == digest_stream(io.BytesIO(data)) == digest_stream([data])


class _PausingLock:
    """A hasher's lock that holds its SHA-256 thread back each time that thread lets go of it
    after finding nothing left to hash, until the test has fed the next chunk: the moment in
    which a chunk was once thrown away."""

    def __init__(self, hasher: DualHasher) -> None:
        self._condition = threading.Condition()
        self._hasher = hasher
        self._found_empty = threading.local()
        self.idle = threading.Event()
        self.fed = threading.Event()

    def __enter__(self) -> bool:
        entered = self._condition.__enter__()
        self._found_empty.value = not self._hasher._backlog
        return entered

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._condition.__exit__(kind, exc, traceback)
        drain = threading.current_thread().name.startswith("artifactstore-sha256")
        if drain and self._found_empty.value:
            self.idle.set()
            assert self.fed.wait(10)

    def wait(self, timeout: float | None = None) -> bool:
        return self._condition.wait(timeout)

    def notify_all(self) -> None:
        self._condition.notify_all()


def test_a_chunk_fed_while_the_sha256_thread_stops_is_hashed() -> None:
    chunks = [os.urandom(2 * _BIG) for _ in range(3)]
    hasher = DualHasher()
    lock = _PausingLock(hasher)
    hasher._ready = lock  # type: ignore[assignment]
    hasher.update(chunks[0])
    assert lock.idle.wait(10)  # the SHA-256 thread hashed it and found nothing more
    hasher.update(chunks[1])
    lock.fed.set()
    hasher.update(chunks[2])
    result = hasher.result()
    assert result.sha256.hex == hashlib.sha256(b"".join(chunks)).hexdigest()
    assert result.blake3.hex == blake3.blake3(b"".join(chunks)).hexdigest()


def test_a_hasher_whose_pool_is_shut_down_raises_rather_than_waits(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # At interpreter exit the pool is shut down before non-daemon threads are joined.
    pool = ThreadPoolExecutor(1)
    pool.shutdown()
    monkeypatch.setattr(identity, "_worker_pool", pool)
    hasher = DualHasher()
    with pytest.raises(RuntimeError, match="shutdown"):
        hasher.update(bytes(2 * _BIG))
    with pytest.raises(RuntimeError, match="shutdown"):
        hasher.result()


def test_empty_stream() -> None:
    result = digest_stream([])
    assert result.size == 0
    assert result.sha256.hex == hashlib.sha256().hexdigest()
    assert result.blake3.hex == blake3.blake3().hexdigest()


_HEX64 = st.text("0123456789abcdef", min_size=64, max_size=64)


@given(_HEX64, st.sampled_from(["blake3", "sha256"]))
def test_digest_round_trips_through_str(hex_digits: str, algorithm: str) -> None:
    digest = Digest(algorithm, hex_digits)
    assert Digest.parse(str(digest)) == digest
    assert str(digest) == f"{algorithm}:{hex_digits}"


@given(_HEX64)
def test_content_address_round_trips_through_str(hex_digits: str) -> None:
    address = ContentAddress("blake3", hex_digits)
    assert ContentAddress.parse(str(address)) == address


_GOOD = "ab" * 32


@pytest.mark.parametrize(
    "text",
    [
        f"blake3:{_GOOD[:-1]}",
        f"blake3:{_GOOD}0",
        f"blake3:{_GOOD.upper()}",
        f"blake3:{_GOOD[:-1]}g",
        f"md5:{_GOOD}",
        _GOOD,
        f"sha256:{_GOOD}",
        "",
    ],
)
def test_bad_content_addresses_are_rejected_by_name(text: str) -> None:
    with pytest.raises(InvalidAddressError) as info:
        ContentAddress.parse(text)
    assert repr(text) in str(info.value)


@pytest.mark.parametrize(
    "text", [f"sha256:{_GOOD[:10]}", f"sha256:{_GOOD.upper()}", f"sha1:{_GOOD}", "nocolon"]
)
def test_bad_digests_are_rejected_by_name(text: str) -> None:
    with pytest.raises(InvalidAddressError) as info:
        Digest.parse(text)
    assert repr(text) in str(info.value)


def test_the_content_address_of_a_blake3_digest_and_not_of_another() -> None:
    hex_digits = "ab" * 32
    address = ContentAddress.of(Digest("blake3", hex_digits))
    assert type(address) is ContentAddress
    assert address == ContentAddress.parse(f"blake3:{hex_digits}")
    with pytest.raises(InvalidAddressError, match="must use blake3"):
        ContentAddress.of(Digest("sha256", hex_digits))
