"""Where events leave the process: database, JSON-lines file, webhook."""

from rail_django.sinks.base import Sink
from rail_django.sinks.database import DatabaseSink
from rail_django.sinks.file import FileSink
from rail_django.sinks.webhook import WebhookSink

__all__ = ["Sink", "DatabaseSink", "FileSink", "WebhookSink"]
