"""Integration fixtures: loopback-only sockets, a LamaticTestServer with demo flows, a client."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator

import pytest
import pytest_socket

from langchain_lamatic import LamaticClient
from langchain_lamatic.testing import LamaticTestServer, add_demo_flows

LOOPBACK_HOSTS = ["127.0.0.1", "::1", "localhost"]
PROXY_ENV_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")
SLOW_FLOW_ID = "slow-echo"
SLOW_FLOW_DELAY = 0.2


@pytest.fixture(autouse=True)
def _loopback_only(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Allow connections to loopback addresses only, and bypass any proxy from the shell."""
    for name in PROXY_ENV_VARS:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    original_connect = socket.socket.connect
    pytest_socket.socket_allow_hosts(LOOPBACK_HOSTS, allow_unix_socket=True)
    yield
    socket.socket.connect = original_connect  # type: ignore[method-assign]


def _echo(payload: dict[str, object]) -> dict[str, object]:
    return {"echo": payload}


@pytest.fixture
def server() -> Iterator[LamaticTestServer]:
    """A running LamaticTestServer with the demo flows and a ``slow-echo`` flow."""
    with LamaticTestServer(project_id="integration-project") as running:
        add_demo_flows(running)
        running.add_flow(SLOW_FLOW_ID, _echo, delay=SLOW_FLOW_DELAY)
        yield running


@pytest.fixture
def slow_flow_id() -> str:
    """The id of the flow that ``server`` delays by ``SLOW_FLOW_DELAY`` seconds and echoes."""
    return SLOW_FLOW_ID


@pytest.fixture
def client(server: LamaticTestServer) -> Iterator[LamaticClient]:
    """A LamaticClient for ``server`` with its API key."""
    with LamaticClient(
        endpoint=server.endpoint, project_id=server.project_id, api_key=server.api_key
    ) as lamatic_client:
        yield lamatic_client


@pytest.fixture
def wait_until() -> Callable[[Callable[[], bool], float], bool]:
    """Poll a condition every 20 ms until it is true or ``timeout`` seconds pass."""

    def wait(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return True
            time.sleep(0.02)
        return condition()

    return wait
