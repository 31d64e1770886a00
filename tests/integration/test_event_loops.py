"""One ``LamaticFlow`` across event loops: ``asyncio.run`` twice, sync calls, cancellation.

``httpx.AsyncClient`` connections belong to the loop that opened them, so a client reused after
``asyncio.run`` returned fails with "Event loop is closed". These tests prove the flow keeps
working and leaves no connection open, by counting this process's TCP sockets to the server.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import sys
import threading
import time
import warnings
import weakref
from collections.abc import Iterator
from typing import Any

import pytest

from langchain_lamatic import LamaticClient, LamaticFlow
from langchain_lamatic.testing import LamaticTestServer

pytestmark = pytest.mark.skipif(
    not os.path.exists("/proc/self/net/tcp"), reason="counts sockets through Linux /proc"
)


def client_connections(port: int) -> int:
    """Count this process's TCP sockets whose remote end is ``port`` on loopback.

    The server runs in this process too, but its sockets have ``port`` as the local end, so
    only client sockets count, in any state (a socket in CLOSE_WAIT is still a leak).
    """
    inodes = set()
    for name in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{name}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    count = 0
    for table in ("/proc/self/net/tcp", "/proc/self/net/tcp6"):
        try:
            with open(table) as lines:
                rows = lines.read().splitlines()[1:]
        except FileNotFoundError:
            continue
        for row in rows:
            fields = row.split()
            remote_port = int(fields[2].rsplit(":", 1)[1], 16)
            if fields[9] in inodes and remote_port == port:
                count += 1
    return count


class SlowFlow:
    """A handler that blocks until released; ``started`` is set once it runs."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.release = threading.Event()

    def __call__(self, payload: dict[str, Any]) -> dict[str, Any]:
        self.started.set()
        self.release.wait(30)
        return {"slow": True}


@pytest.fixture
def slow() -> Iterator[SlowFlow]:
    handler = SlowFlow()
    yield handler
    handler.release.set()


@pytest.fixture
def server(slow: SlowFlow) -> Iterator[LamaticTestServer]:
    with LamaticTestServer() as test_server:
        test_server.add_flow("echo", lambda payload: {"echo": payload})
        test_server.add_flow("slow", slow)
        yield test_server


def flow_for(server: LamaticTestServer, flow_id: str = "echo", **settings: Any) -> LamaticFlow:
    return LamaticFlow(
        flow_id=flow_id,
        endpoint=server.endpoint,
        project_id=server.project_id,
        api_key=server.api_key,
        **settings,
    )


class LoopProblems:
    """Collects what a misused event loop leaves behind: log records, unraisable exceptions
    and ResourceWarnings."""

    def __init__(self, caplog: pytest.LogCaptureFixture) -> None:
        self.caplog = caplog
        self.unraisable: list[str] = []
        self.warnings: list[str] = []

    def messages(self) -> list[str]:
        gc.collect()
        logged = [record.getMessage() for record in self.caplog.records]
        logged += [str(record.exc_info[1]) for record in self.caplog.records if record.exc_info]
        return logged + self.unraisable + self.warnings


@pytest.fixture
def loop_problems(caplog: pytest.LogCaptureFixture) -> Iterator[LoopProblems]:
    caplog.set_level(logging.DEBUG)
    problems = LoopProblems(caplog)
    previous_hook = sys.unraisablehook

    def hook(unraisable: Any) -> None:
        problems.unraisable.append(f"{unraisable.exc_type.__name__}: {unraisable.exc_value}")

    sys.unraisablehook = hook
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        try:
            yield problems
        finally:
            gc.collect()
            sys.unraisablehook = previous_hook
            problems.warnings.extend(str(warning.message) for warning in caught)


def wait_for_zero_connections(port: int, timeout: float = 5.0) -> int:
    deadline = time.monotonic() + timeout
    count = client_connections(port)
    while count and time.monotonic() < deadline:
        time.sleep(0.02)
        count = client_connections(port)
    return count


def test_asyncio_run_twice_then_invoke_works(
    server: LamaticTestServer, loop_problems: LoopProblems
) -> None:
    flow = flow_for(server)

    first = asyncio.run(flow.ainvoke({"n": 1}))
    second = asyncio.run(flow.ainvoke({"n": 2}))
    third = flow.invoke({"n": 3})
    batch = asyncio.run(flow.abatch([{"n": 4}, {"n": 5}], config={"max_concurrency": 2}))

    assert first == {"echo": {"n": 1}}
    assert second == {"echo": {"n": 2}}
    assert third == {"echo": {"n": 3}}
    assert batch == [{"echo": {"n": 4}}, {"echo": {"n": 5}}]
    flow.lamatic_client.close()
    assert not [text for text in loop_problems.messages() if "loop is closed" in text.lower()]
    assert loop_problems.unraisable == []
    assert loop_problems.warnings == []


def test_connections_do_not_accumulate_across_loops(server: LamaticTestServer) -> None:
    flow = flow_for(server)
    flow.invoke({"n": 0})

    for index in range(10):
        assert asyncio.run(flow.ainvoke({"n": index})) == {"echo": {"n": index}}

    # One sync connection, plus the connection of the last loop: a closed loop's
    # connections are closed when the next loop opens its own.
    assert client_connections(server.port) <= 2


def test_close_after_several_loops_leaves_no_connection(server: LamaticTestServer) -> None:
    flow = flow_for(server)
    flow.invoke({"n": 0})
    asyncio.run(flow.ainvoke({"n": 1}))
    asyncio.run(flow.abatch([{"n": 2}] * 4, config={"max_concurrency": 4}))

    flow.lamatic_client.close()

    assert client_connections(server.port) == 0


def test_aclose_in_the_running_loop_leaves_no_connection(server: LamaticTestServer) -> None:
    flow = flow_for(server)

    async def run() -> None:
        await flow.abatch([{"n": 1}] * 3, config={"max_concurrency": 3})
        await flow.lamatic_client.aclose()

    asyncio.run(run())

    assert client_connections(server.port) == 0


def test_cancellation_mid_call_then_reuse(
    server: LamaticTestServer, slow: SlowFlow, loop_problems: LoopProblems
) -> None:
    slow_flow = flow_for(server, "slow")
    echo_flow = LamaticFlow(flow_id="echo", client=slow_flow.lamatic_client)

    async def cancel_mid_call() -> Any:
        task = asyncio.create_task(slow_flow.ainvoke({}))
        started = await asyncio.to_thread(slow.started.wait, 10)
        assert started, "the slow flow never started"
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # The same client keeps working in the same loop.
        return await echo_flow.ainvoke({"after": "cancel"})

    after_cancel = asyncio.run(cancel_mid_call())
    next_loop = asyncio.run(echo_flow.ainvoke({"next": "loop"}))
    sync_call = echo_flow.invoke({"sync": True})
    slow.release.set()

    assert after_cancel == {"echo": {"after": "cancel"}}
    assert next_loop == {"echo": {"next": "loop"}}
    assert sync_call == {"echo": {"sync": True}}
    slow_flow.lamatic_client.close()
    assert wait_for_zero_connections(server.port) == 0
    assert not [text for text in loop_problems.messages() if "loop is closed" in text.lower()]
    assert loop_problems.unraisable == []


def test_wait_for_timeout_cancels_the_call_cleanly(
    server: LamaticTestServer, slow: SlowFlow
) -> None:
    flow = flow_for(server, "slow")

    async def run() -> None:
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(flow.ainvoke({}), timeout=0.3)
        await flow.lamatic_client.aclose()

    asyncio.run(run())
    slow.release.set()

    assert client_connections(server.port) == 0


def test_flow_used_from_a_loop_in_another_thread(server: LamaticTestServer) -> None:
    flow = flow_for(server)
    results: dict[str, Any] = {}

    def in_thread() -> None:
        results["thread"] = asyncio.run(flow.ainvoke({"where": "thread"}))

    worker = threading.Thread(target=in_thread)
    worker.start()
    results["main"] = flow.invoke({"where": "main"})
    worker.join(30)

    assert results == {
        "thread": {"echo": {"where": "thread"}},
        "main": {"echo": {"where": "main"}},
    }
    flow.lamatic_client.close()
    assert client_connections(server.port) == 0


def test_closed_loops_are_not_kept_alive(server: LamaticTestServer) -> None:
    # One connection for three calls, so calls wait for each other inside the client.
    client = LamaticClient(
        endpoint=server.endpoint,
        project_id=server.project_id,
        api_key=server.api_key,
        max_connections=1,
    )
    loops: list[weakref.ref[asyncio.AbstractEventLoop]] = []

    async def run() -> None:
        loops.append(weakref.ref(asyncio.get_running_loop()))
        await asyncio.gather(*(client.aexecute_flow("echo", {"n": n}) for n in range(3)))

    for _ in range(5):
        asyncio.run(run())
    client.close()
    gc.collect()

    assert [ref for ref in loops if ref() is not None] == []
    assert client_connections(server.port) == 0


def test_aclose_during_calls_raises_connection_error(server: LamaticTestServer) -> None:
    from langchain_lamatic import LamaticConnectionError
    from langchain_lamatic.testing import Fault

    client = LamaticClient(
        endpoint=server.endpoint, project_id=server.project_id, api_key=server.api_key
    )
    server.add_flow("slow-close", lambda payload: {"ok": True}, delay=5.0)
    # The second call waits out a Retry-After of 2 s when aclose() runs.
    server.inject(Fault.status(503, retry_after=2), times=1)

    async def run() -> list[Any]:
        waiting = asyncio.create_task(client.aexecute_flow("slow-close", {}))
        await asyncio.sleep(0.5)
        in_flight = asyncio.create_task(client.aexecute_flow("slow-close", {}))
        await asyncio.sleep(0.5)
        await client.aclose()
        return await asyncio.gather(waiting, in_flight, return_exceptions=True)

    outcomes = asyncio.run(run())

    assert all(isinstance(outcome, LamaticConnectionError) for outcome in outcomes), outcomes
    assert all("closed with aclose()" in str(outcome) for outcome in outcomes)
