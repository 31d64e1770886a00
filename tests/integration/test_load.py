"""Load tests: many concurrent calls against a loopback server with latency and 503s.

Every call's outcome is known in advance: 5% of the flows, picked by a seeded random
generator, respond with 503 one to three times. A flow with one or two 503s must still return its
result after retries; a flow with three must raise ``LamaticServerError`` after three
attempts (``max_retries=2``). No call may hang, be lost or return another call's result.
"""

from __future__ import annotations

import asyncio
import os
import random
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from langchain_lamatic import LamaticClient, LamaticError, LamaticFlow, LamaticServerError
from langchain_lamatic.testing import Fault, LamaticTestServer

CALLS = 1_000
FAULTY_SHARE = 0.05
HANG_LIMIT = 120.0  # seconds; a hang detector, not a speed target
SEED = 20_241_204


def client_connections(port: int) -> int:
    """Count this process's TCP sockets whose remote end is ``port`` (the client ends)."""
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
            if fields[9] in inodes and int(fields[2].rsplit(":", 1)[1], 16) == port:
                count += 1
    return count


class RandomLatency:
    """A flow handler that sleeps 0 to 20 ms, then echoes the payload."""

    def __init__(self, seed: int) -> None:
        self._random = random.Random(seed)
        self._lock = threading.Lock()

    def __call__(self, payload: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            delay = self._random.uniform(0, 0.02)
        time.sleep(delay)
        return {"echo": payload}


@dataclass(frozen=True)
class Plan:
    """Which flows respond with 503, and how many times."""

    failures: dict[int, int]

    def expected_error(self, index: int) -> bool:
        return self.failures.get(index, 0) >= 3


def flow_id(index: int) -> str:
    return f"load-{index:04d}"


@pytest.fixture
def plan() -> Plan:
    generator = random.Random(SEED)
    faulty = generator.sample(range(CALLS), int(CALLS * FAULTY_SHARE))
    # Every count occurs, so both outcomes (recovered and exhausted) are always exercised.
    counts = [1, 2, 3] + [generator.choice([1, 2, 3]) for _ in faulty[3:]]
    return Plan(failures=dict(zip(faulty, counts, strict=True)))


@pytest.fixture
def server(plan: Plan) -> Iterator[LamaticTestServer]:
    with LamaticTestServer() as test_server:
        handler = RandomLatency(SEED)
        for index in range(CALLS):
            test_server.add_flow(flow_id(index), handler)
        for index, times in plan.failures.items():
            test_server.inject(
                Fault.status(503),
                times=times,
                operation="executeWorkflow",
                target_id=flow_id(index),
            )
        yield test_server


def make_client(server: LamaticTestServer, **settings: Any) -> LamaticClient:
    client = LamaticClient(
        endpoint=server.endpoint, project_id=server.project_id, api_key=server.api_key, **settings
    )
    # Short computed backoff keeps the test quick; which calls are retried does not change.
    client.retry_policy = type(client.retry_policy)(
        max_retries=client.retry_policy.max_retries, initial_delay=0.02, max_delay=0.1
    )
    return client


def check_outcomes(plan: Plan, outcomes: list[Any]) -> None:
    """Assert that every call ended in its planned result or typed error."""
    assert len(outcomes) == CALLS
    hung = [index for index, outcome in enumerate(outcomes) if isinstance(outcome, TimeoutError)]
    assert hung == [], f"{len(hung)} calls hung, first {hung[:5]}"
    untyped = [
        (index, repr(outcome))
        for index, outcome in enumerate(outcomes)
        if isinstance(outcome, BaseException) and not isinstance(outcome, LamaticError)
    ]
    assert untyped == [], f"calls raised untyped errors: {untyped[:5]}"

    for index, outcome in enumerate(outcomes):
        if plan.expected_error(index):
            assert isinstance(outcome, LamaticServerError), (index, outcome)
            assert outcome.status_code == 503
            assert outcome.attempts == 3
            assert outcome.flow_id == flow_id(index)
        else:
            assert outcome == {"echo": {"index": index}}, (index, outcome)


def wait_for_zero_connections(port: int, timeout: float = 10.0) -> int:
    deadline = time.monotonic() + timeout
    count = client_connections(port)
    while count and time.monotonic() < deadline:
        time.sleep(0.05)
        count = client_connections(port)
    return count


@pytest.mark.skipif(not os.path.exists("/proc/self/net/tcp"), reason="needs Linux /proc")
def test_thousand_concurrent_ainvoke_calls_all_complete(
    server: LamaticTestServer, plan: Plan
) -> None:
    client = make_client(server)
    flows = [LamaticFlow(flow_id=flow_id(index), client=client) for index in range(CALLS)]

    async def call(index: int) -> Any:
        try:
            return await asyncio.wait_for(flows[index].ainvoke({"index": index}), HANG_LIMIT)
        except asyncio.TimeoutError:
            return TimeoutError(f"call {index} hung")
        except Exception as error:
            return error

    async def run() -> list[Any]:
        outcomes = await asyncio.gather(*(call(index) for index in range(CALLS)))
        await client.aclose()
        return list(outcomes)

    outcomes = asyncio.run(run())

    check_outcomes(plan, outcomes)
    expected_requests = CALLS + sum(min(times, 2) for times in plan.failures.values())
    assert len(server.requests) == expected_requests
    assert server.pending_faults == 0
    assert server.max_in_flight <= client.max_connections
    assert wait_for_zero_connections(server.port) == 0


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("max_concurrency", [3, 16])
def test_batch_with_faults_never_exceeds_max_concurrency(max_concurrency: int, mode: str) -> None:
    with LamaticTestServer() as test_server:
        test_server.add_flow("echo", RandomLatency(SEED))
        # The first five requests get a 503; each is retried once or twice and then succeeds.
        test_server.inject(Fault.status(503), times=5, operation="executeWorkflow")
        client = make_client(test_server)
        flow = LamaticFlow(flow_id="echo", client=client)
        inputs = [{"index": index} for index in range(150)]
        config: Any = {"max_concurrency": max_concurrency}

        if mode == "sync":
            outputs = flow.batch(inputs, config=config, return_exceptions=True)
            client.close()
        else:

            async def run() -> list[Any]:
                outputs = await asyncio.wait_for(
                    flow.abatch(inputs, config=config, return_exceptions=True), HANG_LIMIT
                )
                await client.aclose()
                return outputs

            outputs = asyncio.run(run())

        assert outputs == [{"echo": payload} for payload in inputs]
        assert test_server.max_in_flight <= max_concurrency
        assert len(test_server.requests) == len(inputs) + 5
