"""Where events leave the process: database (or the stream that replaces it), JSON-lines file, webhook."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rail_django.sinks.base import Sink
from rail_django.sinks.database import DatabaseSink
from rail_django.sinks.file import FileSink
from rail_django.sinks.stream import StreamSink
from rail_django.sinks.webhook import WebhookSink

if TYPE_CHECKING:
    from rail_django.conf import SecurityConfig

__all__ = ["Sink", "DatabaseSink", "FileSink", "StreamSink", "WebhookSink", "build_sinks"]


def build_sinks(config: SecurityConfig) -> list[Sink]:
    """The sinks the settings turn on, in delivery order.

    ``AUDIT_STREAM`` replaces the database sink: the events reach the database through
    ``audit_management ingest``, which writes them with :class:`DatabaseSink`.
    """
    sinks: list[Sink] = []
    if config.stream is not None:
        sinks.append(StreamSink(config.stream))
    elif config.store_in_database:
        sinks.append(DatabaseSink(config.database_alias, config.partitioning))
    if config.store_in_file:
        sinks.append(FileSink(config.log_file, config.log_file_max_bytes, config.log_file_backup_count))
    if config.webhook_url:
        sinks.append(
            WebhookSink(
                config.webhook_url,
                secret=config.webhook_secret,
                min_severity=config.webhook_min_severity,
                timeout=config.webhook_timeout,
                max_retries=config.webhook_max_retries,
                backoff=config.webhook_backoff,
                queue_size=config.queue_size,
            )
        )
    return sinks
