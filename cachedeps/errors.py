"""Exceptions raised by cachedeps.

Every error derives from :class:`CachedepsError`; where a builtin fits, the error is also
an instance of it, so callers can catch either::

    CachedepsError
     ├── ConfigurationError (ValueError)     a bad URL, option or setting
     ├── InvalidKey (ValueError)             a key memcache cannot hold
     ├── ValueTooLarge (ValueError)          a value over the item size limit
     ├── SerializationError (ValueError)     a value the serializer cannot encode
     │    ├── PicklingFailed (pickle.PicklingError)   pickle refused the value
     │    └── CorruptValue                    stored bytes that fail to decode or verify
     ├── BackendError                        the store failed to do what was asked
     │    ├── BackendUnavailable (ConnectionError)   cannot reach the store (address attached)
     │    ├── ProtocolError                   the store answered something unexpected
     │    └── NonNumericValue (ValueError)    incr/decr on a value that is not a counter
     ├── FeedError                           the change feed cannot be read or written
     └── StaleRead (AssertionError)          verify mode: a hit differs from the database

Foreign errors (socket, pymemcache, DB-API) are translated once, at the boundary, with
``raise ... from exc``.
"""

from __future__ import annotations

import pickle

__all__ = [
    "CachedepsError",
    "ConfigurationError",
    "InvalidKey",
    "ValueTooLarge",
    "SerializationError",
    "PicklingFailed",
    "CorruptValue",
    "BackendError",
    "BackendUnavailable",
    "ProtocolError",
    "NonNumericValue",
    "FeedError",
    "StaleRead",
]


class CachedepsError(Exception):
    """Root of every cachedeps error."""


class ConfigurationError(CachedepsError, ValueError):
    """A URL, option or setting is wrong; the message names it and says what is accepted."""


class InvalidKey(CachedepsError, ValueError):
    """A key is empty, longer than 250 bytes, or holds whitespace or control characters."""


class ValueTooLarge(CachedepsError, ValueError):
    """A value is larger than the store's item size limit; nothing was stored."""


class SerializationError(CachedepsError, ValueError):
    """A value cannot be encoded by the configured serializer."""


class PicklingFailed(SerializationError, pickle.PicklingError):
    """A pickling serializer could not pickle a value (also a :class:`pickle.PickleError`,
    as Django's cache contract expects of ``set``/``add``)."""


class CorruptValue(SerializationError):
    """Stored bytes could not be decoded or failed their signature; readers treat it as a miss."""


class BackendError(CachedepsError):
    """The store could not carry out an operation."""


class BackendUnavailable(BackendError, ConnectionError):
    """The store cannot be reached.

    ``address`` is the server (``host:port``) or store name that failed.
    """

    def __init__(self, message: str, address: str | None = None) -> None:
        super().__init__(message)
        self.address = address


class ProtocolError(BackendError):
    """The store answered with something that is not a valid reply."""


class NonNumericValue(BackendError, ValueError):
    """incr/decr met a value that is not a 64-bit unsigned decimal, or a bad delta."""


class FeedError(CachedepsError):
    """The change feed could not be read or written."""


class StaleRead(CachedepsError, AssertionError):
    """Verify mode: a cache hit differs from what the database returns for the same query.

    Raised (``VERIFY=True`` / ``verify=True``) or logged (a sampling fraction) by
    :class:`cachedeps.verify.Verifier`. Attributes: ``query`` (SQL or a description),
    ``deps`` (the entry's dependency keys), ``stamp`` (the tid it was computed at),
    ``position`` (the feed position the reader had polled), ``difference`` (what differs).
    """

    def __init__(self, message: str, *, query: str = "", deps: tuple[str, ...] = (), stamp: int | None = None,
                 position: int | None = None, difference: str = "") -> None:
        super().__init__(message)
        self.query = query
        self.deps = deps
        self.stamp = stamp
        self.position = position
        self.difference = difference
