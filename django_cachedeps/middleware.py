"""Poll the change feed once per request.

``CachedepsMiddleware`` opens a :func:`django_cachedeps.runtime.unit_of_work` around the
request, so the ORM reads of one request poll each database's feed at most once. It works
under WSGI and ASGI (sync and async capable).
"""

from __future__ import annotations

from typing import Any, Callable

from asgiref.sync import iscoroutinefunction, markcoroutinefunction

from .runtime import unit_of_work

__all__ = ["CachedepsMiddleware"]


class CachedepsMiddleware:
    """Scope feed polling to one request."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        self.get_response = get_response
        self._async = iscoroutinefunction(get_response)
        if self._async:
            markcoroutinefunction(self)

    def __call__(self, request: Any) -> Any:
        """Handle one request inside a unit of work (awaitable when the chain is async)."""
        if self._async:
            return self.__acall__(request)
        with unit_of_work():
            return self.get_response(request)

    async def __acall__(self, request: Any) -> Any:
        """Handle one request of an async chain inside a unit of work."""
        with unit_of_work():
            return await self.get_response(request)
