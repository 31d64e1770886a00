"""Security guarantees, each proven against real loopback servers or a recording transport.

- Credentials never go over plain ``http://`` to a host that is not loopback unless the
  caller opts in, and the refusal comes before any connection.
- Redirects are not followed, so credentials never reach another host.
- Errors, reprs, logs, dumps and pickles carry no secret (sentinel values).
- Payloads and ids travel as JSON variables: they cannot change the GraphQL query text.
"""

from __future__ import annotations

import asyncio
import json
import logging
import pickle
import socket
import threading
import traceback
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from langchain_core.load import dumpd, dumps
from pydantic import SecretStr

from langchain_lamatic import (
    CONFIG_ACCESS_TOKEN,
    LamaticAgent,
    LamaticClient,
    LamaticError,
    LamaticFlow,
    LamaticResponseError,
)
from langchain_lamatic._queries import EXECUTE_AGENT, EXECUTE_WORKFLOW
from langchain_lamatic.testing import LamaticTestServer
from langchain_lamatic.toolkit import LamaticToolkit

# Sentinels that match none of the redaction patterns (not "lt-" keys, not JWTs), so only
# handling the exact values can keep them out.
API_KEY = "zq7SENTINELapikey0000abcdef"
ACCESS_TOKEN = "zq7SENTINELtoken1111abcdef"
CALL_TOKEN = "zq7SENTINELcalltoken2222abc"
SENTINELS = (API_KEY, ACCESS_TOKEN, CALL_TOKEN)
PROJECT_ID = "security-project"

Mode = Literal["sync", "async"]


@pytest.fixture(params=["sync", "async"])
def mode(request: pytest.FixtureRequest) -> Mode:
    return request.param  # type: ignore[no-any-return]


def run_in_mode(mode: Mode, sync_call: Callable[[], Any], async_call: Callable[[], Any]) -> Any:
    """Run the sync call, or run the coroutine that ``async_call`` returns in a new loop."""
    if mode == "sync":
        return sync_call()
    return asyncio.run(async_call())


def assert_no_sentinel(text: str | bytes, where: str, extra: tuple[str, ...] = ()) -> None:
    """Assert that no secret appears in ``text``: not whole, and not even its first 8 chars."""
    for secret in (*(sentinel[:8] for sentinel in SENTINELS), *extra):
        needle: str | bytes = secret.encode() if isinstance(text, bytes) else secret
        assert needle not in text, f"a secret appears in {where}"


# --- Plain http:// to a remote host ----------------------------------------------------------


class ConnectionRecorder:
    """Records every attempt to resolve a name or open a socket, and blocks it."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def block(self, name: str) -> Callable[..., Any]:
        def blocked(*args: Any, **kwargs: Any) -> Any:
            self.calls.append(f"{name}{args[1:] if name.startswith('socket.') else args}")
            raise AssertionError(f"{name} was called before the refusal")

        return blocked


@pytest.fixture
def connections(monkeypatch: pytest.MonkeyPatch) -> ConnectionRecorder:
    recorder = ConnectionRecorder()
    monkeypatch.setattr(socket, "getaddrinfo", recorder.block("getaddrinfo"))
    monkeypatch.setattr(socket, "create_connection", recorder.block("create_connection"))
    monkeypatch.setattr(socket.socket, "connect", recorder.block("socket.connect"))
    monkeypatch.setattr(socket.socket, "connect_ex", recorder.block("socket.connect_ex"))
    return recorder


class RecordingTransport(httpx.MockTransport):
    """A transport that records each request and returns a successful execution."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        super().__init__(self._answer)

    def _answer(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        operation = (
            "executeAgent"
            if "executeAgent" in json.loads(request.content)["query"]
            else ("executeWorkflow")
        )
        body = {"data": {operation: {"status": "success", "result": {"ok": True}}}}
        return httpx.Response(200, json=body)


REMOTE_HTTP_ENDPOINTS = [
    "http://lamatic.example.com/graphql",
    "http://demo-project.lamatic.dev",
    "http://10.1.2.3:8080/graphql",
    "http://192.168.0.10/",
    "http://[2001:db8::1]/graphql",
    "http://0.0.0.0:8000/graphql",
    "http://localhost.example.com/graphql",
    "http://127.0.0.1.nip.io/graphql",
    "HTTP://LAMATIC.EXAMPLE.COM/graphql",
]


@pytest.mark.parametrize("endpoint", REMOTE_HTTP_ENDPOINTS)
def test_plain_http_client_is_rejected_before_any_connection(
    endpoint: str, connections: ConnectionRecorder
) -> None:
    transport = RecordingTransport()

    with pytest.raises(ValueError, match="allow_insecure_http=True"):
        LamaticClient(
            endpoint=endpoint,
            project_id=PROJECT_ID,
            api_key=API_KEY,
            transport=transport,
            async_transport=transport,
        )

    assert transport.requests == []
    assert connections.calls == []


@pytest.mark.parametrize("endpoint", REMOTE_HTTP_ENDPOINTS[:3])
def test_plain_http_from_environment_is_rejected(
    endpoint: str, connections: ConnectionRecorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LAMATIC_ENDPOINT", endpoint)
    monkeypatch.setenv("LAMATIC_PROJECT_ID", PROJECT_ID)
    monkeypatch.setenv("LAMATIC_API_KEY", API_KEY)

    with pytest.raises(ValueError, match="allow_insecure_http=True") as caught:
        LamaticFlow(flow_id="any")

    assert connections.calls == []
    assert_no_sentinel(str(caught.value), "the refusal message")


def test_plain_http_toolkit_is_rejected_before_any_connection(
    connections: ConnectionRecorder,
) -> None:
    with pytest.raises(ValueError, match="allow_insecure_http=True"):
        LamaticToolkit(
            definitions=[{"kind": "flow", "id": "any"}],
            endpoint=REMOTE_HTTP_ENDPOINTS[0],
            project_id=PROJECT_ID,
            api_key=API_KEY,
        )

    assert connections.calls == []


def test_plain_http_with_opt_in_sends_the_request(
    mode: Mode, connections: ConnectionRecorder
) -> None:
    transport = RecordingTransport()
    client = LamaticClient(
        endpoint="http://lamatic.example.com",
        project_id=PROJECT_ID,
        api_key=API_KEY,
        allow_insecure_http=True,
        transport=transport,
        async_transport=transport,
    )

    if mode == "sync":
        response = client.execute_flow("any", {})
    else:
        response = asyncio.run(client.aexecute_flow("any", {}))

    assert response.result == {"ok": True}
    assert [str(request.url) for request in transport.requests] == [
        "http://lamatic.example.com/graphql"
    ]
    assert transport.requests[0].headers["authorization"] == f"Bearer {API_KEY}"
    assert connections.calls == []


@pytest.mark.parametrize(
    "endpoint", ["http://127.0.0.1:9/graphql", "http://localhost:9", "http://[::1]:9/graphql"]
)
def test_plain_http_to_loopback_is_allowed(endpoint: str) -> None:
    client = LamaticClient(endpoint=endpoint, project_id=PROJECT_ID, api_key=API_KEY)

    assert client.endpoint.startswith("http://")


# --- Redirects -------------------------------------------------------------------------------


class RedirectServer:
    """A loopback server that responds to every request with a redirect to ``location``."""

    def __init__(self, status: int, location: str) -> None:
        self.requests = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                outer.requests += 1
                self.send_response(status)
                self.send_header("Location", location)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/graphql"

    def __enter__(self) -> RedirectServer:
        self.thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def target() -> Iterator[LamaticTestServer]:
    """The redirect target: another host in the client's eyes (another port)."""
    with LamaticTestServer(project_id=PROJECT_ID, api_key=API_KEY) as server:
        server.add_flow("flow", lambda payload: {"reached": "target"})
        yield server


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_redirect_to_another_host_is_not_followed(
    status: int, mode: Mode, target: LamaticTestServer
) -> None:
    with RedirectServer(status, target.endpoint) as redirect:
        client = LamaticClient(endpoint=redirect.endpoint, project_id=PROJECT_ID, api_key=API_KEY)
        with pytest.raises(LamaticResponseError) as caught:
            run_in_mode(
                mode,
                lambda: client.execute_flow("flow", {}),
                lambda: client.aexecute_flow("flow", {}),
            )

    assert caught.value.status_code == status
    assert redirect.requests == 1
    assert target.requests == []


@pytest.mark.parametrize("status", [302, 307])
def test_redirect_is_not_followed_with_an_injected_client(
    status: int, mode: Mode, target: LamaticTestServer
) -> None:
    with RedirectServer(status, target.endpoint) as redirect:
        if mode == "sync":
            with httpx.Client(follow_redirects=True) as http:
                client = LamaticClient(
                    endpoint=redirect.endpoint,
                    project_id=PROJECT_ID,
                    api_key=API_KEY,
                    http_client=http,
                )
                with pytest.raises(LamaticResponseError):
                    client.execute_flow("flow", {})
        else:

            async def run() -> None:
                async with httpx.AsyncClient(follow_redirects=True) as http:
                    client = LamaticClient(
                        endpoint=redirect.endpoint,
                        project_id=PROJECT_ID,
                        api_key=API_KEY,
                        http_async_client=http,
                    )
                    with pytest.raises(LamaticResponseError):
                        await client.aexecute_flow("flow", {})

            asyncio.run(run())

    assert redirect.requests == 1
    assert target.requests == []


def test_redirect_is_not_followed_by_a_flow(target: LamaticTestServer) -> None:
    with RedirectServer(307, target.endpoint) as redirect:
        flow = LamaticFlow(
            flow_id="flow", endpoint=redirect.endpoint, project_id=PROJECT_ID, api_key=API_KEY
        )
        with pytest.raises(LamaticResponseError):
            flow.invoke({})

    assert target.requests == []


# --- Secrets in errors, reprs, logs, dumps and pickles ---------------------------------------


class EchoServer:
    """A loopback server that copies the credentials it received into its response.

    ``template`` is the body, with ``{credential}`` replaced by the value of the
    ``Authorization`` or ``X-Lamatic-Signature`` header. It stands for a proxy or a server that
    quotes the request back in its error pages.
    """

    def __init__(self, status: int, template: str, content_type: str = "application/json"):
        self.requests = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                outer.requests += 1
                credential = self.headers.get("X-Lamatic-Signature") or self.headers.get(
                    "Authorization", ""
                )
                body = template.replace("{credential}", credential).encode()
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                if status == 429:
                    self.send_header("Retry-After", "0")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/graphql"

    def __enter__(self) -> EchoServer:
        self.thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


ECHOING_ANSWERS = {
    "401 with the key in a GraphQL error": (
        401,
        '{"errors": [{"message": "Invalid API key: {credential}"}]}',
        "application/json",
    ),
    "200 with the key in a GraphQL error": (
        200,
        '{"errors": [{"message": "Unauthorized {credential}", '
        '"extensions": {"code": "UNAUTHENTICATED"}}]}',
        "application/json",
    ),
    "500 HTML page quoting the headers": (
        500,
        "<html><body><pre>authorization: {credential}\nx-project-id: p</pre></body></html>",
        "text/html",
    ),
    # The excerpt is cut after 600 characters, in the middle of the echoed credential.
    "502 plain text with the key after padding": (
        502,
        " " * 580 + "{credential}",
        "text/plain",
    ),
    "429 body quoting the key": (429, '{"errors": [{"message": "slow down {credential}"}]}', ""),
    "200 execution error quoting the key": (
        200,
        '{"data": {"executeWorkflow": {"status": "error", "result": null, '
        '"message": "node failed with header {credential}"}}}',
        "application/json",
    ),
    "200 body that is not JSON": (200, "oops {credential}", "text/plain"),
}


def error_surfaces(error: BaseException) -> dict[str, str | bytes]:
    """Every place an error's text can end up: message, repr, traceback, excerpt, pickle."""
    surfaces: dict[str, str | bytes] = {
        "str(error)": str(error),
        "repr(error)": repr(error),
        "traceback": "".join(traceback.format_exception(error)),
        "pickle": pickle.dumps(error),
    }
    if isinstance(error, LamaticError):
        surfaces["body_excerpt"] = error.body_excerpt or ""
        surfaces["message"] = error.message
    return surfaces


def all_log_text(caplog: pytest.LogCaptureFixture) -> str:
    parts = []
    for record in caplog.records:
        parts.append(record.getMessage())
        if record.exc_info and record.exc_info[1] is not None:
            parts.append("".join(traceback.format_exception(record.exc_info[1])))
    return "\n".join(parts)


@pytest.mark.parametrize("answer", list(ECHOING_ANSWERS))
@pytest.mark.parametrize("credential", ["api_key", "access_token"])
def test_echoed_credential_never_reaches_errors_or_logs(
    answer: str, credential: str, mode: Mode, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    status, template, content_type = ECHOING_ANSWERS[answer]
    settings: dict[str, Any] = (
        {"api_key": API_KEY} if credential == "api_key" else {"access_token": ACCESS_TOKEN}
    )

    with EchoServer(status, template, content_type) as server:
        client = LamaticClient(
            endpoint=server.endpoint, project_id=PROJECT_ID, max_retries=1, **settings
        )
        with pytest.raises(LamaticError) as caught:
            run_in_mode(
                mode,
                lambda: client.execute_flow("flow", {"question": "hi"}),
                lambda: client.aexecute_flow("flow", {"question": "hi"}),
            )

    assert server.requests >= 1
    for where, text in error_surfaces(caught.value).items():
        assert_no_sentinel(text, where)
    assert_no_sentinel(all_log_text(caplog), "the log records")


def test_per_call_token_never_reaches_errors(mode: Mode, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    status, template, content_type = ECHOING_ANSWERS["401 with the key in a GraphQL error"]
    config: Any = {"configurable": {CONFIG_ACCESS_TOKEN: SecretStr(CALL_TOKEN)}}

    with EchoServer(status, template, content_type) as server:
        flow = LamaticFlow(
            flow_id="flow", endpoint=server.endpoint, project_id=PROJECT_ID, api_key=API_KEY
        )
        with pytest.raises(LamaticError) as caught:
            run_in_mode(
                mode,
                lambda: flow.invoke({"question": "hi"}, config=config),
                lambda: flow.ainvoke({"question": "hi"}, config=config),
            )

    for where, text in error_surfaces(caught.value).items():
        assert_no_sentinel(text, where)
    assert_no_sentinel(all_log_text(caplog), "the log records")


@pytest.fixture
def server() -> Iterator[LamaticTestServer]:
    with LamaticTestServer(project_id=PROJECT_ID, api_key=API_KEY) as test_server:
        test_server.add_flow("flow", lambda payload: {"echo": payload})
        test_server.add_agent("agent", lambda payload: {"echo": payload})
        yield test_server


def test_successful_and_retried_calls_log_no_secret(
    server: LamaticTestServer, caplog: pytest.LogCaptureFixture
) -> None:
    from langchain_lamatic.testing import Fault

    caplog.set_level(logging.DEBUG)
    server.inject(Fault.status(503), times=1)
    flow = LamaticFlow(
        flow_id="flow", endpoint=server.endpoint, project_id=PROJECT_ID, api_key=API_KEY
    )
    flow.lamatic_client.retry_policy = type(flow.lamatic_client.retry_policy)(initial_delay=0.01)

    assert flow.invoke({"a": 1}) == {"echo": {"a": 1}}
    assert asyncio.run(flow.ainvoke({"a": 2})) == {"echo": {"a": 2}}

    assert len(server.requests) == 3
    assert any("Retrying" in record.getMessage() for record in caplog.records)
    assert_no_sentinel(all_log_text(caplog), "the log records")


@pytest.mark.parametrize("credential", ["api_key", "access_token"])
def test_reprs_dumps_and_pickles_hold_no_secret(credential: str, server: LamaticTestServer) -> None:
    # The access token must be one the server accepts, so the flow can make a real call.
    secret = API_KEY if credential == "api_key" else server.create_access_token()
    settings: dict[str, Any] = {
        "endpoint": server.endpoint,
        "project_id": PROJECT_ID,
        credential: secret,
    }
    client = LamaticClient(**settings)
    flow = LamaticFlow(flow_id="flow", output_key="echo", **settings)
    agent = LamaticAgent(agent_id="agent", **settings)
    shared = LamaticFlow(flow_id="flow", client=client)
    toolkit = LamaticToolkit(definitions=[{"kind": "flow", "id": "flow"}], **settings)
    # A call first, so that pooled connections and cached headers exist when pickling.
    flow.invoke({"a": 1})

    surfaces: dict[str, str | bytes] = {
        "repr(client)": repr(client),
        "str(client)": str(client),
        "pickle(client)": pickle.dumps(client),
    }
    for name, runnable in (("flow", flow), ("agent", agent), ("shared-client flow", shared)):
        surfaces[f"repr({name})"] = repr(runnable)
        surfaces[f"str({name})"] = str(runnable)
        surfaces[f"dumps({name})"] = dumps(runnable)
        surfaces[f"dumpd({name})"] = json.dumps(dumpd(runnable))
        surfaces[f"model_dump_json({name})"] = runnable.model_dump_json()
        surfaces[f"pickle({name})"] = pickle.dumps(runnable)
    for tool in toolkit.get_tools():
        surfaces[f"repr({tool.name})"] = repr(tool)
        surfaces[f"pickle({tool.name})"] = pickle.dumps(tool)
    surfaces["repr(toolkit)"] = repr(toolkit)

    for where, text in surfaces.items():
        assert_no_sentinel(text, where, extra=(secret,))
    flow.lamatic_client.close()


def test_unpickled_flow_takes_its_credential_from_the_environment(
    server: LamaticTestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    flow = LamaticFlow(
        flow_id="flow", endpoint=server.endpoint, project_id=PROJECT_ID, api_key=API_KEY
    )
    restored = pickle.loads(pickle.dumps(flow))  # noqa: S301
    monkeypatch.setenv("LAMATIC_API_KEY", API_KEY)

    assert restored.invoke({"a": 1}) == {"echo": {"a": 1}}
    assert server.requests[-1].headers["authorization"] == f"Bearer {API_KEY}"


# --- Payloads as variables -------------------------------------------------------------------

HOSTILE_IDS = [
    'x") { status } } query Evil { executeWorkflow(workflowId: "victim',
    'victim" payload: {}) { status result } #',
    'x\\") { __schema { types { name } } } #',
    '"""victim"""',
    "$payload",
    'victim\n} mutation { submitFeedback(requestId: "1") { success } }',
    "ids with spaces, 'quotes' and \u00e9\u00e8 unicode \U0001f600",
]
HOSTILE_PAYLOADS = [
    {"prompt": 'x"} } query { executeWorkflow(workflowId: "victim", payload: {}) { status } }'},
    {"$payload": "$workflowId", "workflowId": "victim"},
    {"nested": {"a": ["}", "{", "\\", '"', "#comment", "\u0000", "\n"]}},
    {"query": "query { __typename }", "variables": {"workflowId": "victim"}},
]


@pytest.fixture
def injection_server() -> Iterator[tuple[LamaticTestServer, dict[str, list[Any]]]]:
    calls: dict[str, list[Any]] = {}

    def recorder(name: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
        def handler(payload: dict[str, Any]) -> dict[str, Any]:
            calls.setdefault(name, []).append(payload)
            return {"ran": name}

        return handler

    with LamaticTestServer(project_id=PROJECT_ID, api_key=API_KEY) as test_server:
        test_server.add_flow("victim", recorder("victim"))
        test_server.add_agent("victim", recorder("victim-agent"))
        for hostile in HOSTILE_IDS:
            test_server.add_flow(hostile, recorder(hostile))
            test_server.add_agent(hostile, recorder(f"agent:{hostile}"))
        yield test_server, calls


@pytest.mark.parametrize("hostile_id", HOSTILE_IDS)
@pytest.mark.parametrize("payload", HOSTILE_PAYLOADS)
def test_hostile_flow_id_cannot_change_query(
    hostile_id: str,
    payload: dict[str, Any],
    injection_server: tuple[LamaticTestServer, dict[str, list[Any]]],
) -> None:
    server, calls = injection_server
    client = LamaticClient(endpoint=server.endpoint, project_id=PROJECT_ID, api_key=API_KEY)

    response = client.execute_flow(hostile_id, payload)
    client.close()

    assert response.result == {"ran": hostile_id}
    assert calls == {hostile_id: [payload]}
    body = server.requests[-1].json
    assert set(body) == {"query", "variables"}
    assert body["query"] == EXECUTE_WORKFLOW
    assert body["variables"] == {"workflowId": hostile_id, "payload": payload}


@pytest.mark.parametrize("hostile_id", HOSTILE_IDS)
def test_hostile_agent_id_cannot_change_query(
    hostile_id: str, injection_server: tuple[LamaticTestServer, dict[str, list[Any]]]
) -> None:
    server, calls = injection_server
    agent = LamaticAgent(
        agent_id=hostile_id, endpoint=server.endpoint, project_id=PROJECT_ID, api_key=API_KEY
    )

    output = asyncio.run(agent.ainvoke(HOSTILE_PAYLOADS[0]))

    assert output == {"ran": f"agent:{hostile_id}"}
    assert calls == {f"agent:{hostile_id}": [HOSTILE_PAYLOADS[0]]}
    assert server.requests[-1].json["query"] == EXECUTE_AGENT


json_leaves = st.none() | st.booleans() | st.integers() | st.text(max_size=30)
json_payloads = st.dictionaries(
    st.text(max_size=15),
    st.recursive(
        json_leaves,
        lambda children: (
            st.lists(children, max_size=3)
            | st.dictionaries(st.text(max_size=10), children, max_size=3)
        ),
        max_leaves=10,
    ),
    max_size=5,
)


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(flow_id=st.text(min_size=1, max_size=60).filter(str.strip), payload=json_payloads)
def test_any_id_and_payload_travel_only_as_variables(flow_id: str, payload: dict[str, Any]) -> None:
    transport = RecordingTransport()
    client = LamaticClient(
        endpoint="https://demo.lamatic.dev",
        project_id=PROJECT_ID,
        api_key=API_KEY,
        transport=transport,
    )

    client.execute_flow(flow_id, payload)

    body = json.loads(transport.requests[0].content)
    assert body["query"] == EXECUTE_WORKFLOW
    assert body["variables"] == {"workflowId": flow_id, "payload": payload}
