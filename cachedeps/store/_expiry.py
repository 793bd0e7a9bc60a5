"""Translate memcached expiry times into deadlines on the monotonic clock.

memcached's rule: ``0`` never expires; up to 30 days (2,592,000 s) counts in seconds from
now; a larger number is an absolute unix time; a negative number means already expired.
Deadlines are kept on :func:`time.monotonic` so that a change of the wall clock neither
revives nor kills items early; absolute times are converted once, when the item is stored.
"""

from __future__ import annotations

import time

from ..api import RELATIVE_EXPIRY_LIMIT

__all__ = ["NEVER", "EXPIRED", "deadline", "to_unix"]

#: the deadline of an item that never expires
NEVER = 0.0
#: a deadline already in the past (any positive value before the process started works)
EXPIRED = 1e-9

_monotonic = time.monotonic
_time = time.time


def deadline(expire: float) -> float:
    """Return the monotonic deadline for a memcached ``expire`` value (``NEVER`` for 0)."""
    if not expire:
        return NEVER
    if expire < 0:
        return EXPIRED
    if expire <= RELATIVE_EXPIRY_LIMIT:
        return _monotonic() + expire
    remaining = expire - _time()
    if remaining <= 0:
        return EXPIRED
    return _monotonic() + remaining


def to_unix(when: float) -> int:
    """Return a monotonic deadline as a unix time (``0`` for ``NEVER``, ``-1`` if expired)."""
    if when == NEVER:
        return 0
    remaining = when - _monotonic()
    if remaining <= 0:
        return -1
    return int(_time() + remaining)
