"""Fixtures for the SQLAlchemy adapter: databases (SQLite file, PostgreSQL schema), stores
(embedded, memcached), a model, installed session factories and a statement counter."""

from __future__ import annotations

import itertools
import os
import uuid

import pytest


def pytest_configure(config):
    # dogpile.cache's shipped backend suite marks some of its tests with this marker.
    config.addinivalue_line("markers", "time_intensive: dogpile.cache suite tests that sleep")


def pytest_collection_modifyitems(config, items):
    # dogpile's thread-heavy tests run for seconds each: they belong with the slow runs.
    for item in items:
        if item.get_closest_marker("time_intensive") is not None:
            item.add_marker(pytest.mark.slow)
