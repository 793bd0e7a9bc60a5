"""Exceptions raised by cachedeps.

Every error derives from :class:`CachedepsError`; where a builtin fits, the error is also
an instance of it, so callers can catch either::

    CachedepsError
     ├── ConfigurationError (ValueError)     a bad URL, option or setting
     ├── InvalidKey (ValueError)             a key memcache cannot hold
     ├── ValueTooLarge (ValueError)          a value over the item size limit
     ├── SerializationError (ValueError)     a value the serializer cannot encode
     ├── BackendError                        the store failed to do what was asked
     │    ├── BackendUnavailable (ConnectionError)   cannot reach the store (address attached)
     │    └── ProtocolError                   the store answered something unexpected
     └── FeedError                           the change feed cannot be read or written

Foreign errors (socket, pymemcache, DB-API) are translated once, at the boundary, with
``raise ... from exc``.
"""

from __future__ import annotations

__all__ = [
    "CachedepsError",
    "ConfigurationError",
    "InvalidKey",
    "ValueTooLarge",
    "SerializationError",
    "BackendError",
    "BackendUnavailable",
    "ProtocolError",
    "FeedError",
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


class FeedError(CachedepsError):
    """The change feed could not be read or written."""
