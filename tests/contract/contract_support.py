"""Settings, flows, backend and API calls of the contract suite; conftest.py has the fixtures."""

from __future__ import annotations

import os
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pytest

from langchain_lamatic import LamaticClient
from langchain_lamatic._retry import RetryPolicy
from langchain_lamatic.auth import access_token_provider, create_access_token
from langchain_lamatic.testing import (
    Fault,
    FlowExecutionFailed,
    LamaticTestServer,
    StreamOptions,
)
from langchain_lamatic.testing.vcr import (
    REPLAY_ENDPOINT,
    CassetteHandle,
    CassetteScrubber,
)

REPO_ROOT = Path(__file__).resolve().parents[2]

CONTRACT_PROJECT_ID = "contract-project"
CONTRACT_FLOW_ID = "contract-flow"
CONTRACT_ASYNC_FLOW_ID = "contract-async-flow"
CONTRACT_FAILING_FLOW_ID = "contract-failing-flow"
CONTRACT_AGENT_ID = "contract-agent"
MISSING_FLOW_ID = "contract-missing-flow"
OTHER_PROJECT_ID = "contract-other-project"
# The local server's credentials while recording: fixed and recognisable, so the scan of the
# cassettes can search for their exact values. Keys are written as two joined literals so that
# secret scanners do not flag this test value in the source.
RECORD_API_KEY = "lt-" + "contractrecordkey0123456789abcdef"
RECORD_SECRET_KEY = "contract-record-secret-0123456789abcdef"
# Shaped like a key, so the scrubber replaces it; the server has never issued it.
INVALID_API_KEY = "lt-" + "contractinvalidkey0000000000"

# Every flow the suite calls takes this payload; a live flow must accept it.
CONTRACT_PAYLOAD: dict[str, Any] = {"question": "What does a Lamatic flow return?"}
CONTRACT_SCHEMA = {"question": "string"}
FAILURE_TEXT = "LLM node failed: the model provider rejected the request"

# Credentials the replaying client sends. Headers are not matched, so any value works.
REPLAY_API_KEY = "lt-replay-not-a-key"
REPLAY_ACCESS_TOKEN = "replay-access-token"

# Replay sleeps between polls must not slow the suite; live polls are raised to 3 s by the
# client, the rate Lamatic requests.
POLL_INTERVAL = 0.05

LIVE_BASE_VARIABLES = ("LAMATIC_ENDPOINT", "LAMATIC_PROJECT_ID")
LIVE_FLOW_VARIABLES = {
    "flow": "LAMATIC_LIVE_FLOW_ID",
    "async_flow": "LAMATIC_LIVE_ASYNC_FLOW_ID",
    "agent": "LAMATIC_LIVE_AGENT_ID",
    "failing_flow": "LAMATIC_LIVE_FAILING_FLOW_ID",
}
LIVE_FLOW_PURPOSE = {
    "flow": "a deployed realtime flow that accepts the payload {'question': <text>}",
    "async_flow": "a deployed flow with an async API trigger that accepts {'question': <text>}",
    "agent": "a deployed agent that accepts {'question': <text>}",
    "failing_flow": "a deployed flow that always reports status 'error' (for example a node "
    "with an invalid model setting)",
}

Mode = Literal["replay", "local", "live"]


@dataclass(frozen=True)
class LiveSettings:
    """What the live mode reads from the environment."""

    endpoint: str | None
    project_id: str | None
    api_key: str | None
    access_token: str | None
    secret_key: str | None
    flow_ids: dict[str, str | None]

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> LiveSettings:
        def read(name: str) -> str | None:
            return environ.get(name, "").strip() or None

        return cls(
            endpoint=read("LAMATIC_ENDPOINT"),
            project_id=read("LAMATIC_PROJECT_ID"),
            api_key=read("LAMATIC_API_KEY"),
            access_token=read("LAMATIC_ACCESS_TOKEN"),
            secret_key=read("LAMATIC_SECRET_KEY"),
            flow_ids={kind: read(name) for kind, name in LIVE_FLOW_VARIABLES.items()},
        )

    def missing(self) -> list[str]:
        """Names of the required variables that are not set."""
        missing = [
            name
            for name, value in zip(
                LIVE_BASE_VARIABLES, (self.endpoint, self.project_id), strict=True
            )
            if not value
        ]
        if not self.api_key and not self.access_token:
            missing.append("LAMATIC_API_KEY or LAMATIC_ACCESS_TOKEN")
        return missing


@dataclass(frozen=True)
class ContractSettings:
    """The suite's mode and where its cassettes live, fixed when the test run starts."""

    record_locally: bool
    cassette_dir: Path
    live: LiveSettings


SETTINGS = ContractSettings(
    record_locally=os.environ.get("LAMATIC_RECORD", "").strip().lower() in {"1", "true", "yes"},
    cassette_dir=Path(os.environ.get("LAMATIC_CASSETTE_DIR") or REPO_ROOT / "cassettes"),
    live=LiveSettings.from_environ(os.environ),
)


def _live_requested(config: pytest.Config) -> bool:
    """Whether `-m` selects the live marker, as in `pytest -m live`."""
    expression = str(config.getoption("markexpr", "") or "")
    return re.search(r"(?<!not )\blive\b", expression) is not None


def contract_mode(config: pytest.Config) -> Mode:
    if _live_requested(config):
        return "live"
    return "local" if SETTINGS.record_locally else "replay"


# --- Cassette paths -----------------------------------------------------------------------------


def cassette_path(item: pytest.Item) -> Path:
    """`cassettes/<module>/<test name>.yaml`; `test_x[async]` becomes `test_x-async.yaml`."""
    module = Path(str(item.path)).stem
    name = re.sub(r"\[(.*)\]$", r"-\1", item.name)
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", name)
    return SETTINGS.cassette_dir / module / f"{name}.yaml"


def record_command(item: pytest.Item) -> str:
    node = item.nodeid
    return f"LAMATIC_RECORD=1 .venv/bin/python -m pytest '{node}' -p no:cacheprovider"


# --- The local server's contract flows ----------------------------------------------------------


def _answer(payload: dict[str, Any]) -> dict[str, Any]:
    question = payload["question"]
    return {"answer": f"A flow returns the keys of its API Response node. You asked: {question}"}


def _fail(payload: dict[str, Any]) -> dict[str, Any]:
    raise FlowExecutionFailed(FAILURE_TEXT)


def add_contract_flows(server: LamaticTestServer) -> None:
    """Register the flows and the agent the contract tests call."""
    server.add_flow(CONTRACT_FLOW_ID, _answer, schema=CONTRACT_SCHEMA, stream=StreamOptions())
    server.add_flow(
        CONTRACT_ASYNC_FLOW_ID,
        _answer,
        schema=CONTRACT_SCHEMA,
        response_type="async",
        run_time=0.2,
    )
    server.add_flow(
        CONTRACT_FAILING_FLOW_ID,
        _fail,
        schema=CONTRACT_SCHEMA,
        stream=StreamOptions(error=FAILURE_TEXT),
    )
    server.add_agent(CONTRACT_AGENT_ID, _answer, schema=CONTRACT_SCHEMA)


# --- The backend a test talks to ----------------------------------------------------------------


class ContractBackend:
    """The endpoint, credentials and flow ids for one contract test, in the current mode.

    Attributes:
        mode: `"replay"`, `"local"` or `"live"`.
        server: The local server while recording locally, otherwise None.
        cassette: The open cassette.
    """

    def __init__(
        self,
        mode: Mode,
        cassette: CassetteHandle,
        server: LamaticTestServer | None,
    ) -> None:
        self.mode = mode
        self.cassette = cassette
        self.server = server
        self._clients: list[LamaticClient] = []
        live = SETTINGS.live
        if server is not None:
            self.endpoint = server.endpoint
            self.project_id = server.project_id
            self.api_key: str | None = server.api_key
            self._access_token: str | None = None
        elif mode == "live":
            assert live.endpoint
            assert live.project_id
            self.endpoint = live.endpoint
            self.project_id = live.project_id
            self.api_key = live.api_key
            self._access_token = live.access_token
        else:
            self.endpoint = REPLAY_ENDPOINT
            self.project_id = CONTRACT_PROJECT_ID
            self.api_key = REPLAY_API_KEY
            self._access_token = REPLAY_ACCESS_TOKEN

    # Ids

    def _id(self, kind: str, contract_id: str) -> str:
        if self.mode != "live":
            return contract_id
        value = SETTINGS.live.flow_ids[kind]
        if not value:
            pytest.skip(f"Live mode: set {LIVE_FLOW_VARIABLES[kind]} to {LIVE_FLOW_PURPOSE[kind]}")
        return value

    @property
    def flow_id(self) -> str:
        """The realtime flow; streamed too."""
        return self._id("flow", CONTRACT_FLOW_ID)

    @property
    def async_flow_id(self) -> str:
        """The flow with an async trigger, polled with checkStatus."""
        return self._id("async_flow", CONTRACT_ASYNC_FLOW_ID)

    @property
    def failing_flow_id(self) -> str:
        """A flow that reports status "error"."""
        return self._id("failing_flow", CONTRACT_FAILING_FLOW_ID)

    @property
    def agent_id(self) -> str:
        """The agent."""
        return self._id("agent", CONTRACT_AGENT_ID)

    # Clients and credentials

    def client(
        self,
        *,
        credential: Literal["api_key", "access_token"] = "api_key",
        **overrides: Any,
    ) -> LamaticClient:
        """A client for this backend, without retries unless `max_retries` is given."""
        settings: dict[str, Any] = {
            "endpoint": self.endpoint,
            "project_id": self.project_id,
            "max_retries": 0,
        }
        if "api_key" not in overrides and "access_token" not in overrides:
            if credential == "access_token":
                settings["access_token"] = self.access_token()
            else:
                if not self.api_key:
                    pytest.skip("Live mode: set LAMATIC_API_KEY for the API key tests")
                settings["api_key"] = self.api_key
        settings.update(overrides)
        client = LamaticClient(**settings)
        if self.mode != "live":
            # Backoff only paces a real service; the local server and a replay need none.
            client.retry_policy = RetryPolicy(
                max_retries=client.retry_policy.max_retries, initial_delay=0.01
            )
        self._clients.append(client)
        return client

    def access_token(self) -> str:
        """A valid access token for the project."""
        if self.server is not None:
            return self.server.create_access_token(expires_in=600)
        if self._access_token:
            return self._access_token
        secret = self._live_secret_key()
        return create_access_token(secret, self.project_id, expires_in=600)

    def expired_access_token(self) -> str:
        """An access token whose `exp` has passed."""
        if self.server is not None:
            return self.server.create_access_token(expires_in=-60)
        if self.mode == "replay":
            return "replay-expired-access-token"
        import jwt

        secret = self._live_secret_key()
        return str(jwt.encode({"project_id": self.project_id, "exp": 1}, secret, algorithm="HS256"))

    def token_provider(self) -> Callable[[], str]:
        """A provider that mints a fresh, valid access token."""
        if self.server is not None:
            server = self.server
            return lambda: server.create_access_token(expires_in=600)
        if self.mode == "replay":
            return lambda: "replay-refreshed-access-token"
        return access_token_provider(self._live_secret_key(), self.project_id, 600)

    def _live_secret_key(self) -> str:
        secret = SETTINGS.live.secret_key
        if not secret:
            pytest.skip("Live mode: set LAMATIC_SECRET_KEY to mint access tokens")
        return secret

    # Faults

    def inject(self, fault: Fault, *, times: int = 1, operation: str | None = None) -> None:
        """Inject a fault into the local server; replay needs nothing, live cannot do it."""
        if self.mode == "live":
            pytest.skip(
                f"Live mode cannot make a real project answer with {type(fault).__name__}; "
                "the locally recorded cassette is kept"
            )
        if self.server is not None:
            self.server.inject(fault, times=times, operation=operation)

    def local_only(self, reason: str) -> None:
        """Skip in live mode, for behaviour only the local server is known to have."""
        if self.mode == "live":
            pytest.skip(f"Live mode: {reason}; the locally recorded cassette is kept")

    def recorded_headers(self) -> list[dict[str, str]]:
        """The (scrubbed) headers of each request in the cassette, with lower-case names."""
        return [
            {name.lower(): value for name, value in request.headers.items()}
            for request in self.cassette.cassette.requests
        ]

    async def aclose(self) -> None:
        """Close every client's connections, sync and async, on the test's event loop."""
        for client in self._clients:
            await client.aclose()


def contract_scrubber(mode: Mode, server: LamaticTestServer | None) -> CassetteScrubber:
    if server is not None:
        return CassetteScrubber(
            api_keys=[server.api_key, INVALID_API_KEY],
            secrets=[server.secret_key],
            project_ids=[server.project_id],
        )
    if mode == "live":
        live = SETTINGS.live
        contract_ids = {
            "flow": CONTRACT_FLOW_ID,
            "async_flow": CONTRACT_ASYNC_FLOW_ID,
            "agent": CONTRACT_AGENT_ID,
            "failing_flow": CONTRACT_FAILING_FLOW_ID,
        }
        aliases = {value: contract_ids[kind] for kind, value in live.flow_ids.items() if value}
        return CassetteScrubber(
            api_keys=[live.api_key, INVALID_API_KEY],
            access_tokens=[live.access_token],
            secrets=[live.secret_key],
            project_ids=[live.project_id],
            hosts=[_host_of(live.endpoint)],
            aliases=aliases,
        )
    return CassetteScrubber()


def _host_of(endpoint: str | None) -> str | None:
    if not endpoint:
        return None
    match = re.match(r"^[a-z]+://([^/:]+)", endpoint.strip(), re.IGNORECASE)
    return match.group(1) if match else None


# --- Sync and async -----------------------------------------------------------------------------


class Api:
    """Calls the sync or the async variant of a client method, chosen by the test's parameter."""

    def __init__(self, style: Literal["sync", "async"]) -> None:
        self.style = style

    async def call(self, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Call `client.<name>` (sync) or `client.a<name>` (async) for a bound sync method."""
        if self.style == "sync":
            return method(*args, **kwargs)
        owner = method.__self__
        async_method: Callable[..., Awaitable[Any]] = getattr(owner, "a" + method.__name__)
        return await async_method(*args, **kwargs)

    async def stream(self, client: LamaticClient, flow_id: str, payload: Any) -> list[Any]:
        """Every event of `stream_flow` or `astream_flow`."""
        if self.style == "sync":
            with client.stream_flow(flow_id, payload) as events:
                return list(events)
        async with client.astream_flow(flow_id, payload) as async_events:
            return [event async for event in async_events]

    async def invoke(self, runnable: Any, value: Any) -> Any:
        """`runnable.invoke` or `runnable.ainvoke`."""
        if self.style == "sync":
            return runnable.invoke(value)
        return await runnable.ainvoke(value)
