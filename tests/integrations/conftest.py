"""The integration tests share the no-code event fixtures (rows, account events on)."""

from tests.events.conftest import _fresh_cache, rows, rows_async  # noqa: F401
