"""A reader process for the unit-of-work tests: three management commands in one process,
another process committing a write between the second and the third.

``python -m tests.django.units_reader PK WRITER_CODE`` (env: the database of the run) prints
the three commands' costs and what a unit that wrote read back, as JSON.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys


def main() -> None:
    pk, writer = int(sys.argv[1]), sys.argv[2]
    os.environ["DJANGO_SETTINGS_MODULE"] = "tests.django.settings"
    import django

    django.setup()
    from django.core.management import call_command

    import cachedeps
    from tests.django.testapp.models import Book

    def command() -> dict:
        return json.loads(call_command("read_books", str(pk), reads=10))

    out = {"first": command(), "second": command()}
    subprocess.run([sys.executable, "-c", writer], check=True)  # another process commits
    out["third"] = command()
    with cachedeps.unit_of_work():
        seen = [Book.objects.get(pk=pk).title]
        Book.objects.filter(pk=pk).update(title="Mine")
        seen += [Book.objects.get(pk=pk).title, Book.objects.filter(pk=pk).values_list("title", flat=True)[0]]
    out["own_writes"] = seen
    print(json.dumps(out))


if __name__ == "__main__":
    main()
