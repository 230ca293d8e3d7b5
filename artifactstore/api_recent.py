"""What a server worker read for a finalized package, kept for its next requests.

A manifest digest names one manifest forever, so what was read and checked for it stays true;
a package whose recorded digest changes (tampering) misses and is read and checked again.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

from artifactstore import Package

_V = TypeVar("_V")


class ByManifestDigest(Generic[_V]):
    """Values made from finalized packages, keyed by manifest digest, the least recently used
    dropped first once their weights add up to more than max_weight; safe across threads.

    A value heavier than max_weight by itself is made and returned, not kept.
    """

    def __init__(self, max_weight: int, weight: Callable[[_V], int] = lambda _: 1) -> None:
        self._max_weight = max_weight
        self._weight = weight
        self._values: OrderedDict[str, tuple[_V, int]] = OrderedDict()
        self._total = 0
        self._lock = threading.Lock()

    def get(self, package: Package, make: Callable[[], _V]) -> _V:
        """The value kept for package's manifest digest, else make() (kept for next time)."""
        digest = str(package.manifest_digest)
        with self._lock:
            found = self._values.get(digest)
            if found is not None:
                self._values.move_to_end(digest)
                return found[0]
        value = make()
        weight = self._weight(value)
        if weight <= self._max_weight:
            with self._lock:
                _, replaced = self._values.pop(digest, (None, 0))
                self._values[digest] = (value, weight)
                self._total += weight - replaced
                while self._total > self._max_weight:
                    _, (_, dropped) = self._values.popitem(last=False)
                    self._total -= dropped
        return value

    def digests(self) -> list[str]:
        """The manifest digests kept, the least recently used first."""
        with self._lock:
            return list(self._values)
