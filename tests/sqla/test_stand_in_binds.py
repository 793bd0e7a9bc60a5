"""A session bound to a stand-in for an engine (a test double, as SQLAlchemy's own tests
use): an installed factory leaves it alone, calls nothing on it, caches nothing."""

from __future__ import annotations

from unittest import mock

from sqlalchemy import text


def test_a_mock_bind_is_left_alone(app):
    bind = mock.Mock()
    conn = mock.Mock(engine=bind, in_transaction=mock.Mock(return_value=False))
    bind.connect = mock.Mock(return_value=conn)
    with app.Session(bind=bind) as s:
        s.execute(text("select 1"))
        assert s.connection() is conn
    assert bind.mock_calls[0] == mock.call.connect()
    assert [c for c in bind.mock_calls if "sync_engine" in str(c) or "url" in str(c)] == []
