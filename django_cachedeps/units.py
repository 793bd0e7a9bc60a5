"""A unit of work per management command and per Celery task (installed in ``ready()``).

Outside a request every cached ORM read polls the change feed itself, one query per read.
A unit of work (:func:`cachedeps.unit_of_work`) makes that one poll per unit:

- **Management commands** run through ``manage.py`` or ``call_command`` run inside one:
  :func:`install_command_units` wraps ``BaseCommand.execute``, the one method both paths
  call (Django has no signal for it). Long-running commands, which would otherwise read
  as of their start for hours, run without: servers, shells, the test runner, queue
  workers (:data:`UNIT_FREE_COMMANDS`), those named in ``CACHEDEPS["UNIT_FREE_COMMANDS"]``
  (``["*"]``: every command), and command classes with ``cachedeps_unit_of_work = False``.
  A command that loops over jobs should open ``django_cachedeps.unit_of_work()`` per job.
- **Celery tasks**: :func:`cachedeps.celery.install`, done here when Celery is imported
  before the apps are ready (always so in a worker started by ``celery -A proj worker``).
"""

from __future__ import annotations

import functools
import sys
from typing import Any, Callable

from cachedeps.work import unit_of_work

__all__ = ["UNIT_FREE_COMMANDS", "install_command_units", "command_runs_in_unit", "install"]

#: Commands that serve, consume or wait for input until stopped: a unit of work around
#: them would hold every read at the state of their first poll.
UNIT_FREE_COMMANDS = frozenset(
    {
        "runserver", "testserver", "shell", "dbshell", "test",  # Django
        "runserver_plus", "shell_plus", "notebook", "runprofileserver",  # django-extensions
        "runworker", "daphne", "celery", "rqworker", "rqscheduler", "qcluster",  # workers
        "process_tasks", "db_worker", "run_huey", "dramatiq", "procrastinate",
    }
)

_MARK = "_cachedeps_unit_of_work"


def command_runs_in_unit(command: Any) -> bool:
    """Return whether management command instance ``command`` runs inside a unit of work."""
    if getattr(command, "cachedeps_unit_of_work", True) is False:
        return False
    from django.core.exceptions import ImproperlyConfigured

    from .conf import get_settings

    name = type(command).__module__.rpartition(".")[2]  # django loads app.management.commands.<name>
    if name in UNIT_FREE_COMMANDS:
        return False
    try:
        free = get_settings().unit_free_commands
    except ImproperlyConfigured:
        return False  # a bad CACHEDEPS: `check` and friends report it themselves
    return name not in free and "*" not in free


def _wrap(execute: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(execute)
    def wrapper(self: Any, *args: Any, **options: Any) -> Any:
        if not command_runs_in_unit(self):
            return execute(self, *args, **options)
        with unit_of_work():
            return execute(self, *args, **options)

    setattr(wrapper, _MARK, True)
    return wrapper


def install_command_units() -> None:
    """Run management commands inside a unit of work (idempotent)."""
    from django.core.management.base import BaseCommand

    if not getattr(BaseCommand.execute, _MARK, False):
        BaseCommand.execute = _wrap(BaseCommand.execute)  # type: ignore[method-assign]


def install() -> None:
    """Install the units for commands, and for Celery tasks when Celery is loaded."""
    install_command_units()
    if "celery" in sys.modules:
        import cachedeps.celery

        cachedeps.celery.install()
