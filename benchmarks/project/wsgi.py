"""WSGI entry point of the benchmark project, for the load scenario's gunicorn (``benchmarks/load.py``)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchmarks.project.settings")

application = get_wsgi_application()
