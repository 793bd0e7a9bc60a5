"""WSGI entry point of the deploy benchmark's site (gunicorn ``benchmarks.deploy.wsgi``)."""

from __future__ import annotations

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchmarks.deploy.settings")
application = get_wsgi_application()
