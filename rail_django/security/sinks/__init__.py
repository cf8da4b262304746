"""Where events leave the process: database, JSON-lines file, webhook."""

from rail_django.security.sinks.base import Sink
from rail_django.security.sinks.database import DatabaseSink
from rail_django.security.sinks.file import FileSink
from rail_django.security.sinks.webhook import WebhookSink

__all__ = ["Sink", "DatabaseSink", "FileSink", "WebhookSink"]
