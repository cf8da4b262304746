"""``history_for(obj)``: the audit events about one object, newest first."""

from __future__ import annotations

import json
from typing import Any

from django.db.models import Q, QuerySet

from rail_django.events.types import EventType


def resource_filter(resource_type: str, resource_id: str) -> Q:
    """Events whose resource is this object: its create, update, delete and many-to-many events,
    and the bulk events that list its id."""
    own = Q(additional_data__resource__type=resource_type, additional_data__resource__id=resource_id)
    # Bulk events list ids as JSON strings; the quoted id matches one whole element of that list.
    listed = Q(
        event_type=EventType.DATA_BULK_OPERATION.value,
        additional_data__resource__type=resource_type,
        additional_data__context__ids__icontains=json.dumps(resource_id),
    )
    return own | listed


def history_for(instance: Any, *, using: str | None = None) -> QuerySet:
    """The audit model's rows about ``instance``, newest first.

    Rows are matched on the resource stored with each event
    (``resource_type`` = the model's ``_meta.label_lower``, ``resource_id`` =
    ``str(pk)``) plus the ``data.bulk`` events whose listed ``ids`` hold the
    object's id (a bulk event lists at most 1,000 ids).
    """
    from rail_django.conf import get_config
    from rail_django.models import get_audit_event_model

    meta = instance._meta
    label = meta.concrete_model._meta.label_lower if meta.proxy else meta.label_lower
    rows = get_audit_event_model().objects.using(using or get_config().database_alias)
    return rows.filter(resource_filter(label, str(instance.pk))).order_by("-timestamp", "-pk")
