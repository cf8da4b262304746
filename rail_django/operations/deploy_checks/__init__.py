"""The findings of ``manage.py security_check``: Django's deployment checks plus rail-django's own.

:func:`run_security_checks` returns :class:`Finding` objects, each with a
stable ``id``, a ``severity`` (``ok``, ``info``, ``warning``, ``critical``),
a one-line ``message`` and a fix ``hint``.
"""

from rail_django.operations.deploy_checks.findings import SEVERITIES, Finding
from rail_django.operations.deploy_checks.runner import run_security_checks

__all__ = ["SEVERITIES", "Finding", "run_security_checks"]
