"""DURATION arguments (SPEC "CLI"): an integer with one unit, `s`, `m`, `h` or `d`, or `0`.

Read strictly: `90s`, `12h`, `30d`; no sign, space, fraction, combined units or digits other
than ASCII ones. Pure.
"""

from __future__ import annotations

import re
from datetime import timedelta

from artifactstore.errors import InvalidInputError

# 18 digits are more than any timedelta holds, and keep int() far from its digit limit.
_DURATION = re.compile(r"0|([0-9]{1,18})([smhd])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_duration(text: str) -> timedelta:
    """The timedelta of a DURATION such as '30d'; InvalidInputError for anything else."""
    match = _DURATION.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise InvalidInputError(
            f"duration {text!r} is not an integer with a unit s, m, h or d (90m, 12h, 30d)"
        )
    if match[0] == "0":
        return timedelta(0)
    try:
        return timedelta(**{_UNITS[match[2]]: int(match[1])})
    except OverflowError:
        raise InvalidInputError(f"duration {text!r} is too long") from None
