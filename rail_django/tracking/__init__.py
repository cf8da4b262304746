"""Model change tracking: which models are recorded, and their history.

``AUDIT_TRACKED_MODELS`` (settings) or :func:`track` (code) names the
models; every create, update, delete, many-to-many and bulk change of them
becomes an audit event (captured in :mod:`rail_django.capture.model_changes`).
:func:`history_for` returns an object's events; :mod:`rail_django.tracking.admin`
shows them on the object's admin "History" page.
"""

from rail_django.tracking.history import history_for
from rail_django.tracking.options import TrackOptions, track, untrack

__all__ = ["TrackOptions", "history_for", "track", "untrack"]
