"""Sentinel credentials must never appear in a log record, exception, repr, dump or pickle.

The endpoint here is hostile: every error body echoes the credential headers it received, the
way a debugging proxy or a careless error page might. The tokens are not JWT-shaped, so only
the client's own knowledge of its secrets can redact them.
"""

from __future__ import annotations

import json
import logging
import pickle
import traceback
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.load import dumpd, dumps
from pydantic import SecretStr, ValidationError

from langchain_lamatic import (
    CONFIG_ACCESS_TOKEN,
    LamaticAgent,
    LamaticClient,
    LamaticError,
    LamaticFlow,
)

if TYPE_CHECKING:
    from tests.unit.conftest import SleepRecorder

ENDPOINT = "https://demo-project.lamatic.dev/graphql"
PROJECT_ID = "project-123"
SENTINEL_KEY = "lt-" + "SENTINEL0key0d3adb33f00001"
SENTINEL_TOKEN = "SENTINEL-token-c0ffee-00002"
SENTINEL_PER_CALL = "SENTINEL-per-call-token-00003"
SENTINEL_REFRESHED = "SENTINEL-refreshed-token-00004"
SENTINELS = (SENTINEL_KEY, SENTINEL_TOKEN, SENTINEL_PER_CALL, SENTINEL_REFRESHED)


def _echo(request: httpx.Request) -> str:
    """The credential header values, unlabelled, as a careless server would repeat them."""
    values = [request.headers.get("authorization"), request.headers.get("x-lamatic-signature")]
    return " ".join(value for value in values if value)


def _graphql_error(request: httpx.Request, status: int, message: str) -> httpx.Response:
    body = {"errors": [{"message": f"{message} {_echo(request)}"}], "data": None}
    return httpx.Response(status, json=body)


HOSTILE_REPLIES: dict[str, Callable[[httpx.Request], httpx.Response]] = {
    "400": lambda r: _graphql_error(r, 400, "Syntax Error near"),
    "401": lambda r: _graphql_error(r, 401, "Invalid API key"),
    "403": lambda r: _graphql_error(r, 403, "Forbidden for"),
    "404": lambda r: _graphql_error(r, 404, "Flow not found for"),
    "422": lambda r: _graphql_error(r, 422, "Input rejected for"),
    "429": lambda r: httpx.Response(429, text=f"slow down {_echo(r)}"),
    "500": lambda r: httpx.Response(500, text=f"<html><pre>{_echo(r)}</pre></html>"),
    "502": lambda r: httpx.Response(502, text=f"<html>Bad Gateway {_echo(r)}</html>"),
    "503": lambda r: httpx.Response(503, text=_echo(r)),
    "200 not json": lambda r: httpx.Response(200, text=f"<html>{_echo(r)}</html>"),
    "200 graphql auth": lambda r: _graphql_error(r, 200, "Invalid token"),
    "200 graphql not found": lambda r: _graphql_error(r, 200, "Flow not found"),
    "200 graphql other": lambda r: _graphql_error(r, 200, "Something odd"),
    "200 execution error": lambda r: httpx.Response(
        200,
        json={
            "data": {
                "executeWorkflow": {
                    "status": "error",
                    "result": {"errorMsg": f"node failed calling API with {_echo(r)}"},
                }
            }
        },
    ),
    "connect error": lambda r: (_ for _ in ()).throw(
        httpx.ConnectError(f"proxy refused {_echo(r)}", request=r)
    ),
    "read timeout": lambda r: (_ for _ in ()).throw(
        httpx.ReadTimeout(f"timed out waiting, sent {_echo(r)}", request=r)
    ),
    "dropped": lambda r: (_ for _ in ()).throw(
        httpx.RemoteProtocolError(f"peer closed; last headers {_echo(r)}", request=r)
    ),
}


class EverythingRecorder(BaseCallbackHandler):
    """Keeps every callback's arguments, as a tracer would."""

    def __init__(self) -> None:
        self.events: list[str] = []

    def on_chain_start(self, serialized: Any, inputs: Any, **kwargs: Any) -> None:
        self.events.append(repr((serialized, inputs, kwargs)))

    def on_chain_end(self, outputs: Any, **kwargs: Any) -> None:
        self.events.append(repr((outputs, kwargs)))

    def on_chain_error(self, error: BaseException, **kwargs: Any) -> None:
        self.events.append(repr((error, str(error), kwargs)))


@pytest.fixture
def all_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """Capture DEBUG records from every logger, including httpx and httpcore."""
    caplog.set_level(logging.DEBUG)
    for name in ("langchain_lamatic", "httpx", "httpcore"):
        caplog.set_level(logging.DEBUG, logger=name)
    return caplog


def _exception_texts(error: BaseException) -> list[str]:
    texts = ["".join(traceback.format_exception(type(error), error, error.__traceback__))]
    seen: BaseException | None = error
    while seen is not None:
        texts += [str(seen), repr(seen), repr(seen.args)]
        if isinstance(seen, LamaticError):
            texts += [seen.body_excerpt or "", seen.message]
            texts.append(pickle.dumps(seen).decode("latin-1"))
        # Follow the chain as tracebacks and error reporters print it.
        seen = seen.__cause__ or (None if seen.__suppress_context__ else seen.__context__)
    return texts


def _log_texts(caplog: pytest.LogCaptureFixture) -> list[str]:
    texts = []
    handler_format = logging.Formatter("%(name)s %(levelname)s %(message)s")
    for record in caplog.records:
        texts.append(handler_format.format(record))
        texts.append(repr(record.args))
        if record.exc_info:
            texts.append("".join(traceback.format_exception(*record.exc_info)))
    return texts


def _assert_clean(texts: list[str]) -> None:
    for text in texts:
        for sentinel in SENTINELS:
            assert sentinel not in text, f"{sentinel!r} leaked into: {text[:300]!r}"


def _client(handler: Callable[[httpx.Request], httpx.Response], **settings: Any) -> LamaticClient:
    transport = httpx.MockTransport(handler)
    settings.setdefault("endpoint", ENDPOINT)
    settings.setdefault("project_id", PROJECT_ID)
    if "access_token" not in settings:
        settings.setdefault("api_key", SENTINEL_KEY)
    return LamaticClient(transport=transport, async_transport=transport, **settings)


def _success(request: httpx.Request) -> httpx.Response:
    body = {"data": {"executeWorkflow": {"status": "success", "result": {"summary": "ok"}}}}
    return httpx.Response(200, json=body)


CREDENTIAL_MODES = ["api_key", "access_token", "per_call_token", "refreshed_token"]


def _run_flow(mode: str, handler: Callable[[httpx.Request], httpx.Response]) -> Any:
    """Invoke a flow whose credential is given the way ``mode`` names, and return its output."""
    recorder = EverythingRecorder()
    config: dict[str, Any] = {"callbacks": [recorder], "metadata": {"case": mode}}
    if mode == "api_key":
        client = _client(handler)
    elif mode == "access_token":
        client = _client(handler, access_token=SENTINEL_TOKEN)
    elif mode == "per_call_token":
        client = _client(handler)
        config["configurable"] = {CONFIG_ACCESS_TOKEN: SecretStr(SENTINEL_PER_CALL)}
    else:
        calls = {"n": 0}

        def first_rejected(request: httpx.Request) -> httpx.Response:
            calls["n"] += 1
            if calls["n"] == 1:
                return _graphql_error(request, 403, "Token expired")
            return handler(request)

        client = _client(
            first_rejected,
            access_token=SENTINEL_TOKEN,
            access_token_provider=lambda: SENTINEL_REFRESHED,
        )
    flow = LamaticFlow(flow_id="flow-1", client=client)
    try:
        return flow.invoke({"prompt": "hi"}, config)  # type: ignore[arg-type]
    finally:
        _assert_clean(recorder.events)
        _assert_clean([repr(client), str(client), repr(flow), str(flow), dumps(flow)])
        _assert_clean([pickle.dumps(client).decode("latin-1")])
        _assert_clean([pickle.dumps(flow).decode("latin-1")])


@pytest.mark.parametrize("mode", CREDENTIAL_MODES)
def test_success_leaks_nothing(mode: str, all_logs: pytest.LogCaptureFixture) -> None:
    assert _run_flow(mode, _success) == {"summary": "ok"}
    assert all_logs.records
    _assert_clean(_log_texts(all_logs))


@pytest.mark.parametrize("mode", CREDENTIAL_MODES)
@pytest.mark.parametrize("case", list(HOSTILE_REPLIES))
def test_errors_leak_nothing(
    mode: str, case: str, all_logs: pytest.LogCaptureFixture, no_sleep: SleepRecorder
) -> None:
    with pytest.raises(LamaticError) as caught:
        _run_flow(mode, HOSTILE_REPLIES[case])
    _assert_clean(_exception_texts(caught.value))
    _assert_clean(_log_texts(all_logs))


def test_hostile_endpoint_really_echoes_credentials() -> None:
    request = httpx.Request("POST", ENDPOINT, headers={"x-lamatic-signature": SENTINEL_TOKEN})
    assert SENTINEL_TOKEN in HOSTILE_REPLIES["503"](request).text


async def test_async_errors_leak_nothing(
    all_logs: pytest.LogCaptureFixture, no_sleep: SleepRecorder
) -> None:
    client = _client(HOSTILE_REPLIES["502"], access_token=SENTINEL_TOKEN, max_retries=2)
    agent = LamaticAgent(agent_id="agent-1", client=client)
    with pytest.raises(LamaticError) as caught:
        await agent.ainvoke("hi")
    assert caught.value.attempts == 3
    _assert_clean(_exception_texts(caught.value))
    _assert_clean(_log_texts(all_logs))


def test_retries_with_debug_logging_leak_nothing(
    all_logs: pytest.LogCaptureFixture, no_sleep: SleepRecorder
) -> None:
    replies = iter([HOSTILE_REPLIES["429"], HOSTILE_REPLIES["503"], HOSTILE_REPLIES["502"]])

    def handler(request: httpx.Request) -> httpx.Response:
        return next(replies, _success)(request)

    client = _client(handler, max_retries=3)
    assert client.execute_flow("flow-1", {}).result == {"summary": "ok"}
    assert any("Retrying" in record.getMessage() for record in all_logs.records)
    _assert_clean(_log_texts(all_logs))


def test_settings_objects_leak_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    flow = LamaticFlow(flow_id="f", endpoint=ENDPOINT, project_id=PROJECT_ID, api_key=SENTINEL_KEY)
    agent = LamaticAgent(
        agent_id="a", endpoint=ENDPOINT, project_id=PROJECT_ID, access_token=SENTINEL_TOKEN
    )
    texts = []
    for runnable in (flow, agent):
        texts += [
            repr(runnable),
            str(runnable),
            runnable.model_dump_json(),
            repr(runnable.model_dump()),
            dumps(runnable),
            json.dumps(dumpd(runnable)),
            pickle.dumps(runnable).decode("latin-1"),
            repr(runnable.lamatic_client),
            pickle.dumps(runnable.lamatic_client).decode("latin-1"),
        ]
    _assert_clean(texts)


def test_flow_from_env_leaks_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAMATIC_ENDPOINT", ENDPOINT)
    monkeypatch.setenv("LAMATIC_PROJECT_ID", PROJECT_ID)
    monkeypatch.setenv("LAMATIC_ACCESS_TOKEN", SENTINEL_TOKEN)
    flow = LamaticFlow(flow_id="f")
    _assert_clean([repr(flow), dumps(flow), pickle.dumps(flow).decode("latin-1")])


def test_settings_errors_leak_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAMATIC_API_KEY", SENTINEL_KEY)
    monkeypatch.setenv("LAMATIC_ACCESS_TOKEN", SENTINEL_TOKEN)
    with pytest.raises(ValueError, match="LAMATIC_API_KEY") as caught:
        LamaticClient(endpoint=ENDPOINT, project_id=PROJECT_ID)
    _assert_clean(_exception_texts(caught.value))


def test_plain_configurable_token_error_leaks_nothing() -> None:
    flow = LamaticFlow(flow_id="f", client=_client(_success))
    with pytest.raises(TypeError, match="SecretStr") as caught:
        flow.invoke({}, {"configurable": {CONFIG_ACCESS_TOKEN: SENTINEL_PER_CALL}})
    _assert_clean(_exception_texts(caught.value))


# --- Constructor validation errors ----------------------------------------------------------


def _assert_no_fragment(texts: list[str]) -> None:
    """Check that not even the last 12 characters of a sentinel appear.

    pydantic shortens a long input value to its start and end, so a full-string check would
    miss a credential whose end is printed.
    """
    for text in texts:
        for sentinel in SENTINELS:
            assert sentinel[-12:] not in text, f"{sentinel[-12:]!r} leaked into: {text[:300]!r}"


def _constructor_cases() -> list[tuple[str, Callable[[], Any]]]:
    from langchain_lamatic import LamaticFlowTool, LamaticToolkit

    connection: dict[str, Any] = {
        "endpoint": ENDPOINT,
        "project_id": PROJECT_ID,
        "api_key": SENTINEL_KEY,
    }
    shared = LamaticClient(endpoint=ENDPOINT, project_id=PROJECT_ID, api_key="lt-" + "x" * 24)
    return [
        (
            "client and credential together",
            lambda: LamaticFlow(flow_id="f", client=shared, api_key=SENTINEL_KEY),
        ),
        ("misspelled credential", lambda: LamaticFlow(flow_id="f", api_kye=SENTINEL_KEY)),
        ("invalid setting", lambda: LamaticFlow(flow_id="f", max_retries=-1, **connection)),
        (
            "invalid poll interval",
            lambda: LamaticAgent(agent_id="a", poll_interval=0, **connection),
        ),
        (
            "tool with a misspelled token",
            lambda: LamaticFlowTool(
                flow_id="f", name="f", description="d", acces_token=SENTINEL_TOKEN, **connection
            ),
        ),
        (
            "toolkit with an invalid setting",
            lambda: LamaticToolkit(definitions=[], max_retries=-1, **connection),
        ),
    ]


@pytest.mark.parametrize(
    "make", [case for _, case in _constructor_cases()], ids=[n for n, _ in _constructor_cases()]
)
def test_constructor_errors_leak_nothing(make: Callable[[], Any]) -> None:
    with pytest.raises(ValidationError) as caught:
        make()
    texts = _exception_texts(caught.value)
    _assert_clean(texts)
    _assert_no_fragment(texts)


def test_environment_credential_stays_out_of_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    # The credential read from the environment joins the validated input, so an unrelated
    # invalid setting must not print it either.
    monkeypatch.setenv("LAMATIC_API_KEY", SENTINEL_KEY)
    with pytest.raises(ValidationError) as caught:
        LamaticFlow(flow_id="f", endpoint=ENDPOINT, project_id=PROJECT_ID, max_retries=-1)
    texts = _exception_texts(caught.value)
    _assert_clean(texts)
    _assert_no_fragment(texts)


# --- Text a credential could be pasted or echoed into ---------------------------------------

FRAGMENT = "k9Fq2Lm8Zx4Vb7Nw3Ty6R"


@pytest.mark.parametrize(
    "message",
    [
        f"illegal status line: bytearray(b'HTTP/1.1 4x1 {FRAGMENT}')",
        f"Invalid header value b'{FRAGMENT}\\x00'",
        f'illegal header line: bytearray(b"X-{FRAGMENT}: \\"quoted\\"")',
    ],
    ids=["status-line", "header-value", "double-quoted"],
)
def test_quoted_response_bytes_leave_transport_errors(message: str) -> None:
    # h11 quotes a shortened part of the response it rejected, which redaction of whole
    # secrets cannot recognise when a server echoed a credential there.
    def reject(request: httpx.Request) -> httpx.Response:
        raise httpx.RemoteProtocolError(message, request=request)

    client = _client(reject, max_retries=0)

    with pytest.raises(LamaticError) as caught:
        client.execute_flow("f", {})

    texts = _exception_texts(caught.value)
    assert all(FRAGMENT not in text for text in texts)
    assert "characters of response" in str(caught.value)


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({"endpoint": f"https://x.lamatic.dev/graphql?key={SENTINEL_KEY}"}, "query string"),
        ({"endpoint": f"{SENTINEL_KEY} https://x"}, "Invalid endpoint"),
        ({"project_id": f"{SENTINEL_KEY}\x00"}, "control character"),
        ({"timeout": SENTINEL_KEY}, "got a str"),
        ({"max_retries": SENTINEL_KEY}, "got a str"),
        ({"max_connections": SENTINEL_KEY}, "got a str"),
    ],
    ids=["endpoint-query", "endpoint-text", "project-id", "timeout", "max-retries", "connections"],
)
def test_misplaced_credential_is_not_echoed(settings: dict[str, Any], expected: str) -> None:
    arguments: dict[str, Any] = {
        "endpoint": ENDPOINT,
        "project_id": PROJECT_ID,
        "api_key": "lt-" + "b" * 24,
        **settings,
    }

    with pytest.raises(ValueError, match=expected) as caught:
        LamaticClient(**arguments)

    texts = _exception_texts(caught.value)
    _assert_clean(texts)
    _assert_no_fragment(texts)
