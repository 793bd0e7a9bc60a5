"""A long-running command that opted out of the command's unit of work."""

from __future__ import annotations

from .read_books import Command as ReadBooks


class Command(ReadBooks):
    cachedeps_unit_of_work = False
