"""Cancelled and abandoned runs leave no open connection, on the client or the server side."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from langchain_lamatic import LamaticClient, LamaticFlow
from langchain_lamatic._http11 import AsyncHTTP11Transport
from langchain_lamatic.testing import LamaticTestServer, StreamOptions

# A stream of 400 one-character frames 50 ms apart lasts 20 s, so a server that stops
# streaming within the bounds below was stopped by the client closing the connection.
LONG_TEXT = "x" * 400
SLOW_STREAM = StreamOptions(text=lambda payload: LONG_TEXT, token_size=1, frame_delay=0.05)
CLOSE_BOUND = 5.0


def long_answer(payload: dict[str, Any]) -> dict[str, Any]:
    return {"answer": LONG_TEXT}


@pytest.fixture
def server() -> Iterator[LamaticTestServer]:
    with LamaticTestServer() as running:
        running.add_flow("long-answer", long_answer, stream=SLOW_STREAM)
        running.add_flow("slow-answer", long_answer, delay=20.0)
        running.add_flow("async-report", long_answer, response_type="async", run_time=20.0)
        yield running


@pytest.fixture
def client(server: LamaticTestServer) -> Iterator[LamaticClient]:
    with LamaticClient(
        endpoint=server.endpoint, project_id=server.project_id, api_key=server.api_key
    ) as lamatic_client:
        yield lamatic_client


def pool_connections(http_client: httpx.Client | httpx.AsyncClient) -> list[Any]:
    """Return the connections in an httpx client's pool.

    The async client's own transport and httpcore's ConnectionPool both list them, and both
    kinds of connection have is_idle() and is_closed().
    """
    transport = http_client._transport
    if isinstance(transport, AsyncHTTP11Transport):
        return transport.connections
    return list(transport._pool.connections)  # type: ignore[attr-defined]


def wait_until(condition: Callable[[], bool], bound: float = CLOSE_BOUND) -> bool:
    deadline = time.monotonic() + bound
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


async def await_until(condition: Callable[[], bool], bound: float = CLOSE_BOUND) -> bool:
    deadline = time.monotonic() + bound
    while time.monotonic() < deadline:
        if condition():
            return True
        await asyncio.sleep(0.02)
    return condition()


async def test_cancelled_astream_closes_its_connection(
    server: LamaticTestServer, client: LamaticClient
) -> None:
    flow = LamaticFlow(flow_id="long-answer", client=client)
    first_chunk = asyncio.Event()
    received: list[str] = []

    async def consume() -> None:
        async for chunk in flow.astream({"q": "x"}):
            received.append(chunk)
            first_chunk.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(first_chunk.wait(), timeout=30)
    assert server.in_flight == 1

    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert pool_connections(client._get_async_client()) == []
    assert await await_until(lambda: server.in_flight == 0)
    assert 0 < len(received) < len(LONG_TEXT)


async def test_client_works_after_a_cancelled_stream(
    server: LamaticTestServer, client: LamaticClient
) -> None:
    flow = LamaticFlow(flow_id="long-answer", client=client)

    async def consume() -> None:
        async for _chunk in flow.astream({"q": "x"}):
            pass

    task = asyncio.create_task(consume())
    await asyncio.sleep(0.3)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    server.add_flow("quick", lambda payload: {"answer": "ok"})

    assert await LamaticFlow(flow_id="quick", client=client).ainvoke({}) == {"answer": "ok"}


async def test_closing_astream_flow_closes_its_connection(
    server: LamaticTestServer, client: LamaticClient
) -> None:
    async with client.astream_flow("long-answer", {"q": "x"}) as events:
        await events.__anext__()
        assert server.in_flight == 1

    assert pool_connections(client._get_async_client()) == []
    assert await await_until(lambda: server.in_flight == 0)


async def test_cancelled_ainvoke_on_slow_flow_closes_its_connection(
    server: LamaticTestServer, client: LamaticClient
) -> None:
    flow = LamaticFlow(flow_id="slow-answer", client=client, streaming=False)
    task = asyncio.create_task(flow.ainvoke({"q": "x"}))
    assert await await_until(lambda: server.in_flight == 1)

    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert pool_connections(client._get_async_client()) == []


async def test_cancelled_wait_for_async_flow_stops_polling(
    server: LamaticTestServer, client: LamaticClient
) -> None:
    flow = LamaticFlow(flow_id="async-report", client=client, poll_interval=0.05)
    task = asyncio.create_task(flow.ainvoke({"q": "x"}))
    assert await await_until(
        lambda: sum(request.operation == "checkStatus" for request in server.requests) >= 2
    )

    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    polls = len(server.requests)
    await asyncio.sleep(0.3)

    assert len(server.requests) == polls
    assert all(connection.is_idle() for connection in pool_connections(client._get_async_client()))


def busy_connections(http_client: httpx.Client | httpx.AsyncClient) -> list[Any]:
    return [
        connection
        for connection in pool_connections(http_client)
        if not connection.is_idle() and not connection.is_closed()
    ]


@pytest.mark.parametrize("streaming", [True, False], ids=["astream", "ainvoke"])
async def test_cancellations_at_any_moment_never_exhaust_the_pool(
    server: LamaticTestServer, streaming: bool
) -> None:
    # Cancelling at random moments lands in connection setup, request sending, response
    # reading and response closing. A connection left behind in any of them would use up
    # one of the two pool slots for good, and the last call would time out.
    server.add_flow("quick", long_answer, stream=StreamOptions(token_size=40, frame_delay=0.001))
    client = LamaticClient(
        endpoint=server.endpoint,
        project_id=server.project_id,
        api_key=server.api_key,
        max_connections=2,
        timeout=5.0,
    )
    flow = LamaticFlow(flow_id="quick", client=client, output_key="answer", streaming=streaming)
    seeded = random.Random(1093)

    async def consume() -> None:
        async for _chunk in flow.astream({"q": "x"}):
            pass

    left_busy = 0
    for _ in range(120):
        task = asyncio.create_task(consume())
        await asyncio.sleep(seeded.uniform(0, 0.008))
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        left_busy += bool(busy_connections(client._get_async_client()))

    assert left_busy == 0
    assert await flow.ainvoke({"q": "x"}) == LONG_TEXT
    await client.aclose()


def test_breaking_out_of_stream_closes_its_connection(
    server: LamaticTestServer, client: LamaticClient
) -> None:
    flow = LamaticFlow(flow_id="long-answer", client=client)

    for index, _chunk in enumerate(flow.stream({"q": "x"})):
        if index == 2:
            break

    assert pool_connections(client._get_sync_client()) == []
    assert wait_until(lambda: server.in_flight == 0)


def test_leaving_stream_flow_block_closes_its_connection(
    server: LamaticTestServer, client: LamaticClient
) -> None:
    with client.stream_flow("long-answer", {"q": "x"}) as events:
        next(events)
        assert server.in_flight == 1

    assert pool_connections(client._get_sync_client()) == []
    assert wait_until(lambda: server.in_flight == 0)


def test_finished_stream_returns_its_connection_to_the_pool(
    server: LamaticTestServer, client: LamaticClient
) -> None:
    server.add_flow("short-answer", long_answer, stream=StreamOptions(done_marker=True))

    chunks = list(LamaticFlow(flow_id="short-answer", client=client).stream({"q": "x"}))

    connections = pool_connections(client._get_sync_client())
    assert "".join(chunks) == LONG_TEXT
    assert len(connections) == 1
    assert connections[0].is_idle()


async def test_finished_astream_returns_its_connection_to_the_pool(
    server: LamaticTestServer, client: LamaticClient
) -> None:
    server.add_flow("short-answer", long_answer, stream=StreamOptions(done_marker=True))
    flow = LamaticFlow(flow_id="short-answer", client=client)

    chunks = [chunk async for chunk in flow.astream({"q": "x"})]

    connections = pool_connections(client._get_async_client())
    assert "".join(chunks) == LONG_TEXT
    assert len(connections) == 1
    assert connections[0].is_idle()
