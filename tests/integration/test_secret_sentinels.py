"""Suite-wide sentinel: recognisable fake credentials never surface anywhere observable.

Each scenario runs one of the library's main paths against a `LamaticTestServer` on
127.0.0.1 that was started with a sentinel API key and a sentinel secret key. While it runs,
every log record of every logger (the root at DEBUG, so httpx and httpcore too) is collected,
with tracebacks. After it runs, the scenario adds the str, repr, traceback and pickle of each
exception it caught, the repr of its clients, runnables, tools and responses, their
`langchain_core.load.dumps` output, and every callback event. None may contain a sentinel:
the API key, a wrong key the test sends, the secret key, or any access token minted with it.

Servers in several scenarios echo the credential the client sent in an error body, as a
careless proxy would. The project's secret key is never echoed: the client does not hold it,
so it could not redact it.

httpcore logs response headers verbatim at DEBUG. A server that echoed a credential in a
response header would therefore put it in httpcore's log, which this library cannot filter.
`test_httpcore_debug_log_shows_response_headers` pins that behaviour.
"""

from __future__ import annotations

import asyncio
import logging
import pickle
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.load import dumpd, dumps
from langchain_core.messages import ToolMessage
from pydantic import SecretStr

from langchain_lamatic import (
    CONFIG_ACCESS_TOKEN,
    LamaticAgent,
    LamaticClient,
    LamaticError,
    LamaticFlow,
)
from langchain_lamatic.testing import Fault, FlowExecutionFailed, LamaticTestServer, StreamOptions
from langchain_lamatic.tools import LamaticAgentTool, LamaticFlowTool

SENTINEL_API_KEY = "lt-" + "SENTINELKEY0integration0000001"
SENTINEL_WRONG_KEY = "lt-" + "SENTINELWRONGKEY0integration02"
SENTINEL_SECRET_KEY = "SENTINELSECRET-integration-000003"
PROJECT_ID = "sentinel-project"
FLOW_ID = "sentinel-flow"
ASYNC_FLOW_ID = "sentinel-async-flow"
FAILING_FLOW_ID = "sentinel-failing-flow"
AGENT_ID = "sentinel-agent"
PAYLOAD = {"question": "Where are my keys?"}
SCHEMA = {"question": "string"}

WATCHED_LOGGERS = ("", "httpx", "httpcore", "langchain_lamatic", "langchain_core", "asyncio")


# --- Collection ---------------------------------------------------------------------------------


class RecordCollector(logging.Handler):
    """Keeps every record, formatted with its traceback and its raw arguments."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
        self.records: list[tuple[str, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = self.format(record)
        raw = f"{record.msg!r} {record.args!r}"
        self.records.append((record.name, f"{text}\n{raw}"))


class CallbackCollector(BaseCallbackHandler):
    """Keeps the repr of every chain, tool and custom event LangChain reports."""

    def __init__(self) -> None:
        self.events: list[str] = []

    def _keep(self, name: str, *args: Any, **kwargs: Any) -> None:
        self.events.append(f"{name} {args!r} {kwargs!r}")

    def on_chain_start(self, *args: Any, **kwargs: Any) -> None:
        self._keep("on_chain_start", *args, **kwargs)

    def on_chain_end(self, *args: Any, **kwargs: Any) -> None:
        self._keep("on_chain_end", *args, **kwargs)

    def on_chain_error(self, *args: Any, **kwargs: Any) -> None:
        self._keep("on_chain_error", *args, **kwargs)

    def on_tool_start(self, *args: Any, **kwargs: Any) -> None:
        self._keep("on_tool_start", *args, **kwargs)

    def on_tool_end(self, *args: Any, **kwargs: Any) -> None:
        self._keep("on_tool_end", *args, **kwargs)

    def on_tool_error(self, *args: Any, **kwargs: Any) -> None:
        self._keep("on_tool_error", *args, **kwargs)

    def on_custom_event(self, *args: Any, **kwargs: Any) -> None:
        self._keep("on_custom_event", *args, **kwargs)


@dataclass
class Observed:
    """Everything a scenario made observable, as (where, text) pairs."""

    texts: list[tuple[str, str]] = field(default_factory=list)
    callbacks: CallbackCollector = field(default_factory=CallbackCollector)

    def add(self, where: str, value: Any) -> None:
        self.texts.append((where, value if isinstance(value, str) else repr(value)))

    def add_object(self, where: str, value: Any) -> None:
        """The repr, str and `langchain_core.load.dumps` output of a client, runnable or tool."""
        self.add(f"{where} repr", repr(value))
        self.add(f"{where} str", str(value))
        self.add(f"{where} dumps", dumps(value))
        self.add(f"{where} dumpd", repr(dumpd(value)))

    def add_error(self, where: str, error: BaseException) -> None:
        self.add(f"{where} str", str(error))
        self.add(f"{where} repr", repr(error))
        self.add(f"{where} args", repr(error.args))
        self.add(f"{where} vars", repr(vars(error)))
        self.add(f"{where} traceback", "".join(traceback.format_exception(error)))
        self.add(f"{where} pickle", pickle.dumps(error).decode("latin-1"))

    def expect_error(self, where: str, call: Callable[[], Any]) -> LamaticError:
        try:
            call()
        except LamaticError as error:
            self.add_error(where, error)
            return error
        raise AssertionError(f"{where}: expected a LamaticError")

    async def aexpect_error(self, where: str, call: Callable[[], Any]) -> LamaticError:
        try:
            await call()
        except LamaticError as error:
            self.add_error(where, error)
            return error
        raise AssertionError(f"{where}: expected a LamaticError")


@dataclass
class Sentinels:
    """The server, the client factory and every sentinel value minted so far."""

    server: LamaticTestServer
    minted: list[str] = field(default_factory=list)

    def values(self) -> list[str]:
        return [SENTINEL_API_KEY, SENTINEL_WRONG_KEY, SENTINEL_SECRET_KEY, *self.minted]

    def token(self, expires_in: float = 600) -> str:
        token = self.server.create_access_token(expires_in=expires_in)
        self.minted.append(token)
        return token

    def client(self, **overrides: Any) -> LamaticClient:
        settings: dict[str, Any] = {
            "endpoint": self.server.endpoint,
            "project_id": PROJECT_ID,
            "max_retries": 0,
        }
        if "access_token" not in overrides:
            settings["api_key"] = SENTINEL_API_KEY
        settings.update(overrides)
        return LamaticClient(**settings)


def _answer(payload: dict[str, Any]) -> dict[str, Any]:
    return {"answer": f"You asked: {payload['question']}"}


def _fail_with_key(payload: dict[str, Any]) -> dict[str, Any]:
    # A node error that quotes the credential, as a failed HTTP node's error text can.
    raise FlowExecutionFailed(f"HTTP node failed: 401 for Authorization: {SENTINEL_API_KEY}")


@pytest.fixture
def sentinels() -> Iterator[Sentinels]:
    with LamaticTestServer(
        project_id=PROJECT_ID, api_key=SENTINEL_API_KEY, secret_key=SENTINEL_SECRET_KEY
    ) as server:
        server.add_flow(FLOW_ID, _answer, schema=SCHEMA, stream=StreamOptions())
        server.add_flow(ASYNC_FLOW_ID, _answer, schema=SCHEMA, response_type="async", run_time=0.1)
        server.add_flow(
            FAILING_FLOW_ID,
            _fail_with_key,
            schema=SCHEMA,
            stream=StreamOptions(error=f"stream failed for {SENTINEL_API_KEY}"),
        )
        server.add_agent(AGENT_ID, _answer, schema=SCHEMA)
        yield Sentinels(server)


@pytest.fixture
def log_records() -> Iterator[RecordCollector]:
    """Every logger at DEBUG, collected by one handler on the root logger."""
    collector = RecordCollector()
    root = logging.getLogger()
    previous = {name: logging.getLogger(name).level for name in WATCHED_LOGGERS}
    for name in WATCHED_LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG)
    root.addHandler(collector)
    yield collector
    root.removeHandler(collector)
    for name, level in previous.items():
        logging.getLogger(name).setLevel(level)


def find_leaks(sentinels: Sentinels, observed: Observed, records: RecordCollector) -> list[str]:
    """Name every place that contains a sentinel, without printing the sentinel."""
    texts = list(observed.texts)
    texts += [(f"log {name}", text) for name, text in records.records]
    texts += [("callback", event) for event in observed.callbacks.events]
    leaks = []
    for where, text in texts:
        for index, value in enumerate(sentinels.values()):
            if value in text:
                leaks.append(f"{where} contains sentinel #{index}")
    return leaks


# --- Scenarios ----------------------------------------------------------------------------------

ERROR_FAULTS: dict[str, Callable[[], Fault]] = {
    "http-400": lambda: Fault.status(400),
    "http-404": lambda: Fault.status(404),
    "http-429": lambda: Fault.rate_limit(30),
    "http-500": lambda: Fault.status(500, message=f"upstream said Bearer {SENTINEL_API_KEY}"),
    "http-503": lambda: Fault.status(503),
    "html-502": lambda: Fault.html(502, body=f"<pre>Authorization: {SENTINEL_API_KEY}</pre>"),
    "html-200": lambda: Fault.html(200),
    "invalid-json-200": lambda: Fault.invalid_json(200),
    "empty-body-200": lambda: Fault.empty_body(200),
    "null-data-200": Fault.null_data,
    "graphql-error-echoes-key": lambda: Fault.graphql_error(f"Invalid API key {SENTINEL_API_KEY}"),
}


def scenario_success_sync(s: Sentinels, observed: Observed) -> None:
    with s.client() as client:
        observed.add_object("client", client)
        observed.add("response", client.execute_flow(FLOW_ID, PAYLOAD))
        observed.add("agent response", client.execute_agent(AGENT_ID, PAYLOAD))


def scenario_success_async(s: Sentinels, observed: Observed) -> None:
    async def run() -> None:
        async with s.client() as client:
            observed.add("response", await client.aexecute_flow(FLOW_ID, PAYLOAD))
            observed.add("agent response", await client.aexecute_agent(AGENT_ID, PAYLOAD))

    asyncio.run(run())


def scenario_access_token(s: Sentinels, observed: Observed) -> None:
    token = s.token()
    with s.client(access_token=token) as client:
        observed.add_object("token client", client)
        observed.add("response", client.execute_flow(FLOW_ID, PAYLOAD))
        observed.add(
            "per-call token", client.execute_flow(FLOW_ID, PAYLOAD, access_token=s.token())
        )
        # Servers that echo the token the client sent, in a GraphQL error and in a 403 body.
        s.server.inject(Fault.graphql_error(f"Token {token} is not valid for this flow"))
        observed.expect_error("token echo 200", lambda: client.execute_flow(FLOW_ID, PAYLOAD))
        s.server.inject(Fault.status(403, message=f"token {token} expired"))
        observed.expect_error("token echo 403", lambda: client.execute_flow(FLOW_ID, PAYLOAD))


def scenario_error_table(s: Sentinels, observed: Observed) -> None:
    with s.client() as client:
        for name, fault in ERROR_FAULTS.items():
            s.server.inject(fault())
            observed.expect_error(name, lambda c=client: c.execute_flow(FLOW_ID, PAYLOAD))
        observed.expect_error("http-422", lambda: client.execute_flow(FLOW_ID, {"question": 42}))
        observed.expect_error("not-found", lambda: client.execute_flow("no-such-flow", PAYLOAD))
        observed.expect_error(
            "execution-error", lambda: client.execute_flow(FAILING_FLOW_ID, PAYLOAD)
        )
    with s.client(api_key=SENTINEL_WRONG_KEY) as wrong:
        observed.add_object("wrong-key client", wrong)
        observed.expect_error("http-401", lambda: wrong.execute_flow(FLOW_ID, PAYLOAD))
    with s.client(project_id="another-project") as other:
        observed.expect_error("http-403", lambda: other.execute_flow(FLOW_ID, PAYLOAD))


def scenario_error_table_async(s: Sentinels, observed: Observed) -> None:
    async def run() -> None:
        async with s.client() as client:
            for name, fault in ERROR_FAULTS.items():
                s.server.inject(fault())
                await observed.aexpect_error(
                    name, lambda c=client: c.aexecute_flow(FLOW_ID, PAYLOAD)
                )
            await observed.aexpect_error(
                "execution-error", lambda: client.aexecute_flow(FAILING_FLOW_ID, PAYLOAD)
            )
        async with s.client(api_key=SENTINEL_WRONG_KEY) as wrong:
            await observed.aexpect_error("http-401", lambda: wrong.aexecute_flow(FLOW_ID, PAYLOAD))

    asyncio.run(run())


def scenario_retries(s: Sentinels, observed: Observed) -> None:
    with s.client(max_retries=2) as client:
        s.server.inject(Fault.rate_limit(0))
        observed.add("after 429", client.execute_flow(FLOW_ID, PAYLOAD))
        s.server.inject(Fault.status(503, message=f"busy {SENTINEL_API_KEY}"), times=3)
        error = observed.expect_error("503 x3", lambda: client.execute_flow(FLOW_ID, PAYLOAD))
        assert error.attempts == 3


def scenario_token_refresh(s: Sentinels, observed: Observed) -> None:
    with s.client(access_token=s.token(expires_in=-60), access_token_provider=s.token) as client:
        observed.add("refreshed", client.execute_flow(FLOW_ID, PAYLOAD))
        observed.add_object("refreshed client", client)
    expired = s.token(expires_in=-60)
    with s.client(access_token=expired) as client:
        observed.expect_error("expired token", lambda: client.execute_flow(FLOW_ID, PAYLOAD))

    async def provide() -> str:
        return s.token()

    async def run() -> None:
        async with s.client(
            access_token=s.token(expires_in=-60), access_token_provider=provide
        ) as client:
            observed.add("async refreshed", await client.aexecute_flow(FLOW_ID, PAYLOAD))

    asyncio.run(run())


def scenario_async_flow_and_feedback(s: Sentinels, observed: Observed) -> None:
    with s.client() as client:
        started = client.execute_flow(ASYNC_FLOW_ID, PAYLOAD)
        observed.add("started", started)
        assert started.request_id
        observed.add(
            "finished", client.check_status(started.request_id, wait=True, poll_interval=0.05)
        )
        observed.add("feedback", client.submit_feedback(started.request_id, 4, "fine"))
        observed.expect_error("unknown status", lambda: client.check_status("no-such-request"))
        observed.expect_error("unknown feedback", lambda: client.submit_feedback("nope-id", 1))


def scenario_streaming(s: Sentinels, observed: Observed) -> None:
    with s.client() as client:
        with client.stream_flow(FLOW_ID, PAYLOAD) as events:
            for event in events:
                observed.add("stream event", event)
        observed.expect_error(
            "stream error", lambda: list(client.stream_flow(FAILING_FLOW_ID, PAYLOAD))
        )

    async def run() -> None:
        async with s.client() as client, client.astream_flow(FLOW_ID, PAYLOAD) as events:
            async for event in events:
                observed.add("async stream event", event)

    asyncio.run(run())


def scenario_runnables(s: Sentinels, observed: Observed) -> None:
    flow = LamaticFlow(
        flow_id=FLOW_ID,
        endpoint=s.server.endpoint,
        project_id=PROJECT_ID,
        api_key=SecretStr(SENTINEL_API_KEY),
        max_retries=0,
    )
    agent = LamaticAgent(
        agent_id=AGENT_ID,
        endpoint=s.server.endpoint,
        project_id=PROJECT_ID,
        access_token=SecretStr(s.token()),
        max_retries=0,
    )
    config: Any = {"callbacks": [observed.callbacks]}

    observed.add_object("flow", flow)
    observed.add_object("agent", agent)
    observed.add("flow output", flow.invoke(PAYLOAD, config=config))
    observed.add("agent output", agent.invoke(PAYLOAD, config=config))
    observed.add("batch", flow.batch([PAYLOAD, PAYLOAD], config=config))
    per_call = {**config, "configurable": {CONFIG_ACCESS_TOKEN: SecretStr(s.token())}}
    observed.add("per-call", flow.invoke(PAYLOAD, config=per_call))

    failing = LamaticFlow(
        flow_id=FAILING_FLOW_ID,
        endpoint=s.server.endpoint,
        project_id=PROJECT_ID,
        api_key=SecretStr(SENTINEL_API_KEY),
        max_retries=0,
    )
    observed.expect_error("flow error", lambda: failing.invoke(PAYLOAD, config=config))

    observed.add("async flow output", asyncio.run(flow.ainvoke(PAYLOAD, config=config)))


def scenario_tools(s: Sentinels, observed: Observed) -> None:
    client = s.client()
    tool = LamaticFlowTool(
        flow_id=FLOW_ID, client=client, args_schema='{"question": "string"}', name="ask"
    )
    failing = LamaticFlowTool(
        flow_id=FAILING_FLOW_ID, client=client, args_schema='{"question": "string"}'
    )
    agent_tool = LamaticAgentTool(
        agent_id=AGENT_ID,
        endpoint=s.server.endpoint,
        project_id=PROJECT_ID,
        api_key=SecretStr(SENTINEL_API_KEY),
        max_retries=0,
        args_schema='{"question": "string"}',
    )
    config: Any = {"callbacks": [observed.callbacks]}
    for name, each in (("tool", tool), ("failing tool", failing), ("agent tool", agent_tool)):
        observed.add(f"{name} repr", repr(each))
        observed.add(f"{name} dumps", dumps(each))
        call = {"type": "tool_call", "id": "call-1", "name": each.name, "args": PAYLOAD}
        message = each.invoke(call, config=config)
        assert isinstance(message, ToolMessage)
        observed.add(f"{name} message", message)
        observed.add(f"{name} message dumps", dumps(message))
    client.close()


SCENARIOS: dict[str, Callable[[Sentinels, Observed], None]] = {
    "success-sync": scenario_success_sync,
    "success-async": scenario_success_async,
    "access-token": scenario_access_token,
    "error-table-sync": scenario_error_table,
    "error-table-async": scenario_error_table_async,
    "retries": scenario_retries,
    "token-refresh": scenario_token_refresh,
    "async-flow-and-feedback": scenario_async_flow_and_feedback,
    "streaming": scenario_streaming,
    "runnables": scenario_runnables,
    "tools": scenario_tools,
}


@pytest.mark.parametrize("scenario", SCENARIOS.values(), ids=SCENARIOS.keys())
def test_sentinels_never_surface(
    sentinels: Sentinels,
    log_records: RecordCollector,
    scenario: Callable[[Sentinels, Observed], None],
) -> None:
    observed = Observed()

    scenario(sentinels, observed)

    assert observed.texts, "the scenario observed nothing"
    assert log_records.records, "no log record was collected"
    leaks = find_leaks(sentinels, observed, log_records)
    assert leaks == [], "\n".join(leaks)


def test_sentinel_check_detects_a_leak(sentinels: Sentinels, log_records: RecordCollector) -> None:
    observed = Observed()
    logging.getLogger("tests.sentinel").debug("leaked %s", SENTINEL_API_KEY)
    observed.add("planted", f"token={sentinels.token()}")

    leaks = find_leaks(sentinels, observed, log_records)

    assert leaks == ["planted contains sentinel #3", "log tests.sentinel contains sentinel #0"]


def test_httpcore_debug_log_shows_response_headers(
    sentinels: Sentinels, log_records: RecordCollector
) -> None:
    # NOTE: httpcore 1.0 logs response headers verbatim at DEBUG ("receive_response_headers.
    # complete return_value=..."). A server or proxy that echoed a credential in a response
    # header would leak it there. The library cannot filter another package's records, so
    # applications should not run httpcore at DEBUG in production.
    sentinels.server.inject(Fault.status(401, headers={"X-Debug-Echo": SENTINEL_API_KEY}))
    observed = Observed()
    with sentinels.client() as client:
        observed.expect_error("header echo", lambda: client.execute_flow(FLOW_ID, PAYLOAD))

    leaks = find_leaks(sentinels, observed, log_records)

    assert leaks
    assert all(leak.startswith("log httpcore.") for leak in leaks), leaks
