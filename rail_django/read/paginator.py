"""A paginator that does not count a large audit table row by row.

The admin shows "N audit events" above every list page, and Django computes
N with ``COUNT(*)`` over the filtered rows: on a table of millions of rows
that count costs more than the page itself. On PostgreSQL,
:class:`EstimatedCountPaginator` asks the planner instead (``EXPLAIN`` of the
same query, about a millisecond) and counts only when the planner expects
fewer than :attr:`~EstimatedCountPaginator.exact_below` rows -- and then at
most that many rows, so a wrong estimate cannot make the page slow. Other
databases count exactly.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from django.core.paginator import Paginator
from django.db import DatabaseError, connections, transaction
from django.utils.functional import cached_property

logger = logging.getLogger("rail_django.audit")


def planner_estimate(queryset: Any) -> int | None:
    """The planner's row estimate for ``queryset`` on PostgreSQL, else ``None``."""
    connection = connections[queryset.db]
    if connection.vendor != "postgresql":
        return None
    try:
        # A savepoint keeps a failed EXPLAIN from breaking an enclosing transaction.
        with transaction.atomic(using=queryset.db):
            plan = json.loads(queryset.order_by().explain(format="json"))
        rows = int(plan[0]["Plan"]["Plan Rows"])
    except (DatabaseError, ValueError, KeyError, IndexError, TypeError):
        logger.debug("No planner estimate for the audit list; counting exactly", exc_info=True)
        return None
    return rows


class EstimatedCountPaginator(Paginator):
    """``Paginator`` that never counts a large result row by row on PostgreSQL.

    When the planner expects at least :attr:`exact_below` rows, its estimate
    is the count (``count_is_estimate``). Otherwise at most
    ``exact_below + 1`` rows are counted; when the planner was wrong and there
    are more, the count is that lower bound (``count_is_lower_bound``). Other
    databases count exactly.
    """

    #: Below this many estimated rows the exact count is taken.
    exact_below = 10_000

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.count_is_estimate = False
        self.count_is_lower_bound = False

    @cached_property
    def count(self) -> int:
        queryset = self.object_list
        estimate = planner_estimate(queryset) if hasattr(queryset, "explain") else None
        if estimate is None:
            return super().count
        if estimate >= self.exact_below:
            self.count_is_estimate = True
            return estimate
        bounded = queryset.order_by()[: self.exact_below + 1].count()
        if bounded > self.exact_below:
            self.count_is_lower_bound = True
        return bounded
