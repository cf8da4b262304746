"""Looking into the test cluster's streams with nats-py."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import nats


async def _quiet(exc: Exception) -> None:
    pass


async def _with_js(servers: list[str], work: Any) -> Any:
    client = await nats.connect(servers, connect_timeout=2, max_reconnect_attempts=3, error_cb=_quiet)
    try:
        return await work(client.jetstream(timeout=5))
    finally:
        await client.close()


def stream_state(servers: list[str], stream: str) -> Any:
    """``StreamState`` (messages, first/last sequence) of ``stream``."""

    async def work(js: Any) -> Any:
        return (await js.stream_info(stream)).state

    return asyncio.run(_with_js(servers, work))


def stream_messages(servers: list[str], stream: str) -> list[tuple[str, dict]]:
    """Every message of ``stream`` as (its Nats-Msg-Id header, its JSON payload)."""

    async def work(js: Any) -> list[tuple[str, dict]]:
        state = (await js.stream_info(stream)).state
        out = []
        for seq in range(state.first_seq, state.last_seq + 1):
            msg = await js.get_msg(stream, seq)
            out.append(((msg.headers or {}).get("Nats-Msg-Id"), json.loads(msg.data)))
        return out

    return asyncio.run(_with_js(servers, work))


def publish_raw(servers: list[str], subject: str, payloads: list[tuple[str, bytes]]) -> list[Any]:
    """Publish (msg id, payload) pairs straight to JetStream; the PubAcks."""

    async def work(js: Any) -> list[Any]:
        return [await js.publish(subject, data, headers={"Nats-Msg-Id": msg_id}) for msg_id, data in payloads]

    return asyncio.run(_with_js(servers, work))


def consumer_info(servers: list[str], stream: str, durable: str) -> Any:
    async def work(js: Any) -> Any:
        return await js.consumer_info(stream, durable)

    return asyncio.run(_with_js(servers, work))


def wait_for(predicate: Any, timeout: float, interval: float = 0.2, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)
