"""Django's own ``BaseCacheTests`` on ``CachedepsCache`` (Django's tests/cache/tests.py).

Not a test module of this project: ``django_boot`` copies it into the Django sdist's
``tests/cache/`` as ``test_cachedeps_backend.py``, where it runs with the label
``cache.test_cachedeps_backend``. Adapted as Django adapts the same tests to its memcached
backends: a ``CachedepsCache`` key is a memcached key, so an invalid one raises
``InvalidCacheKey`` (``BaseMemcachedTests``' check, the same messages), and entries are
bounded by the store's memory, not counted (no ``MAX_ENTRIES`` culling).
"""

import os
from unittest import skip, skipIf

from django.test import TestCase, override_settings

from .tests import BaseCacheTests, BaseMemcachedTests, caches_setting_for_tests

_NO_CULL = "entries are bounded by the store's memory, not counted: no MAX_ENTRIES culling (as memcached)"


@skipIf(os.environ.get("ORM_SUITE_BACKEND") == "plain", "the CachedepsCache backend's own tests")
@override_settings(CACHES=caches_setting_for_tests(
    BACKEND="django_cachedeps.backend.CachedepsCache", LOCATION="embedded://?max_memory=64MB"))
class CachedepsCacheTests(BaseCacheTests, TestCase):
    _perform_invalid_key_test = BaseMemcachedTests._perform_invalid_key_test
    test_invalid_with_version_key_length = BaseMemcachedTests.test_invalid_with_version_key_length

    @skip(_NO_CULL)
    def test_cull(self):
        pass

    @skip(_NO_CULL)
    def test_zero_cull(self):
        pass
