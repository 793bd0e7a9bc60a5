"""The app config: connects the setting-reset receivers, registers the system checks and
installs the units of work of commands and Celery tasks (:mod:`.units`)."""

from __future__ import annotations

import importlib
import importlib.util

from django.apps import AppConfig
from django.core.signals import request_finished, setting_changed

__all__ = ["CachedepsConfig"]


class CachedepsConfig(AppConfig):
    """``django_cachedeps``: the feed table model and the signal receivers."""

    name = "django_cachedeps"
    verbose_name = "cachedeps"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        """Connect receivers (idempotent through ``dispatch_uid``) and register the checks."""
        from . import conf, metrics, runtime, units

        setting_changed.connect(conf.reset, dispatch_uid="django_cachedeps.conf.reset")
        setting_changed.connect(runtime.reset, dispatch_uid="django_cachedeps.runtime.reset")
        # after conf.reset: the exporters named by the new setting
        setting_changed.connect(metrics.install_configured, dispatch_uid="django_cachedeps.metrics.install")
        request_finished.connect(metrics.flush_after_request, dispatch_uid="django_cachedeps.metrics.flush")
        metrics.install_configured()
        units.install()  # a unit of work per management command and Celery task
        if importlib.util.find_spec(f"{self.name}.checks") is not None:
            importlib.import_module(f"{self.name}.checks")
