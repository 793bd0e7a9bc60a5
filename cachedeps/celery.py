"""A unit of work per Celery task: one feed poll per task, then hits as in a request.

Without it every cached read of a task polls the change feed itself (one query per read).
:func:`install` connects receivers to Celery's ``task_prerun`` and ``task_postrun``
signals, which open a :func:`cachedeps.unit_of_work` before each task body runs and close
it after, in the worker (any pool) and for eager calls (``task.apply()``,
``task_always_eager``) alike. The Django adapter installs them itself when Celery is
imported before Django's apps are ready (a worker started with ``celery -A proj worker``
always is); otherwise call :func:`install` once where the Celery app is defined.

Celery is imported only when :func:`install` runs (the ``celery`` extra installs it).

Example::

    # proj/celery.py
    from celery import Celery
    import cachedeps.celery

    app = Celery("proj")
    cachedeps.celery.install()

A task is a unit of work like a request: it sees every write committed before its first
cached read, and its own writes; see :mod:`cachedeps.work`.
"""

from __future__ import annotations

from typing import Any

from .work import unit_of_work

__all__ = ["install", "uninstall", "installed"]

_PRERUN_UID = "cachedeps.celery.unit_of_work.open"
_POSTRUN_UID = "cachedeps.celery.unit_of_work.close"
_ATTR = "cachedeps_unit_of_work"


def _signals() -> Any:
    try:
        from celery import signals
    except ImportError as exc:  # the extra is missing: say which one
        raise ImportError(
            "cachedeps.celery needs Celery: pip install 'cachedeps[celery]'"
        ) from exc
    return signals


def _open(sender: Any = None, task_id: Any = None, task: Any = None, **_: Any) -> None:
    """``task_prerun``: open the task's unit of work (closed by :func:`_close`)."""
    unit = unit_of_work()
    unit.__enter__()
    request = getattr(task if task is not None else sender, "request", None)
    try:
        # The request is the task execution's own context (a nested eager call has its own).
        setattr(request, _ATTR, unit)
    except AttributeError:  # no request to hang it on: close at once rather than leak it
        unit.__exit__(None, None, None)


def _close(sender: Any = None, task_id: Any = None, task: Any = None, **_: Any) -> None:
    """``task_postrun`` (sent whatever the task's outcome): close the task's unit of work."""
    request = getattr(task if task is not None else sender, "request", None)
    unit = getattr(request, _ATTR, None)
    if unit is None:
        return
    try:
        delattr(request, _ATTR)
    except AttributeError:
        pass
    unit.__exit__(None, None, None)


def install() -> None:
    """Open a unit of work around every Celery task run in this process (idempotent).

    Raises:
        ImportError: Celery is not installed (``pip install 'cachedeps[celery]'``).
    """
    signals = _signals()
    signals.task_prerun.connect(_open, weak=False, dispatch_uid=_PRERUN_UID)
    signals.task_postrun.connect(_close, weak=False, dispatch_uid=_POSTRUN_UID)


def uninstall() -> None:
    """Stop opening units of work around Celery tasks."""
    signals = _signals()
    signals.task_prerun.disconnect(_open, dispatch_uid=_PRERUN_UID)
    signals.task_postrun.disconnect(_close, dispatch_uid=_POSTRUN_UID)


def installed() -> bool:
    """Return whether :func:`install` is in effect."""
    import sys

    if "celery" not in sys.modules:
        return False
    signals = _signals()
    return any(lookup[0] == _PRERUN_UID for lookup, _ in signals.task_prerun.receivers)
