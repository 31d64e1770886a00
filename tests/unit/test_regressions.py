"""Regression tests for defects found by trying the public API with hostile input."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import httpx
import pytest
from pydantic import BaseModel, SecretStr

from langchain_lamatic import (
    LamaticClient,
    LamaticError,
    LamaticFlow,
    LamaticFlowTool,
    LamaticRateLimitError,
    LamaticResponseError,
    LamaticToolkit,
    create_access_token,
)
from langchain_lamatic.toolkit import load_manifest

ENDPOINT = "https://demo-project.lamatic.dev/graphql"
PROJECT_ID = "project-123"
API_KEY = "lt-" + "regression0key0abcdef"
# Not shaped like an lt- key or a JWT, so only exact-value redaction could hide it.
PLAIN_SECRET = "plain0secret0value0xyz"


def _fail_if_called(request: httpx.Request) -> httpx.Response:
    raise AssertionError(f"no request may be sent, but one went to {request.url}")


FAILING_TRANSPORT = httpx.MockTransport(_fail_if_called)


def _client(**settings: object) -> LamaticClient:
    options: dict[str, object] = {
        "endpoint": ENDPOINT,
        "project_id": PROJECT_ID,
        "transport": FAILING_TRANSPORT,
    }
    options.update(settings)
    return LamaticClient(**options)  # type: ignore[arg-type]


def _sent_headers(**settings: object) -> httpx.Headers:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        body = {"data": {"executeWorkflow": {"status": "success", "result": {}}}}
        return httpx.Response(200, json=body)

    client = LamaticClient(
        endpoint=ENDPOINT,
        project_id=PROJECT_ID,
        transport=httpx.MockTransport(handler),
        **settings,  # type: ignore[arg-type]
    )
    client.execute_flow("flow-1", {})
    return seen[0].headers


# --- Credentials and project ids that an HTTP header cannot carry ---------------------------


def test_api_key_read_with_trailing_newline_is_stripped() -> None:
    headers = _sent_headers(api_key=API_KEY + "\n")
    assert headers["authorization"] == f"Bearer {API_KEY}"


def test_secretstr_token_with_surrounding_spaces_is_stripped() -> None:
    headers = _sent_headers(access_token=SecretStr(f"  {PLAIN_SECRET}  "))
    assert headers["x-lamatic-signature"] == PLAIN_SECRET


@pytest.mark.parametrize(
    ("credential", "problem"),
    [
        (PLAIN_SECRET + "\r\nX-Injected: 1", "control character"),
        (PLAIN_SECRET + "\x00", "control character"),
        ("sécret" + PLAIN_SECRET, "non-ASCII"),
        (PLAIN_SECRET + " second-half", "space"),
    ],
)
def test_unsendable_access_token_fails_at_construction(credential: str, problem: str) -> None:
    with pytest.raises(ValueError, match="access_token") as caught:
        _client(access_token=credential)
    assert problem in str(caught.value)
    assert PLAIN_SECRET not in str(caught.value)


def test_non_ascii_api_key_is_value_error() -> None:
    with pytest.raises(ValueError, match="api_key") as caught:
        _client(api_key="lt-clé0" + PLAIN_SECRET)
    assert not isinstance(caught.value, UnicodeError)
    assert PLAIN_SECRET not in str(caught.value)


def test_unsendable_env_token_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAMATIC_ACCESS_TOKEN", f"{PLAIN_SECRET}\n{PLAIN_SECRET}")
    with pytest.raises(ValueError, match="LAMATIC_ACCESS_TOKEN") as caught:
        _client()
    assert PLAIN_SECRET not in str(caught.value)


def test_unsendable_credential_is_not_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with pytest.raises(ValueError, match="api_key"):
        _client(api_key=PLAIN_SECRET + "\r\nX: 1")
    assert all(PLAIN_SECRET not in record.getMessage() for record in caplog.records)


def test_flow_with_unsendable_key_fails_at_construction() -> None:
    with pytest.raises(ValueError, match="api_key"):
        LamaticFlow(
            flow_id="flow-1", endpoint=ENDPOINT, project_id=PROJECT_ID, api_key="lt-ключ123456"
        )


@pytest.mark.parametrize("project_id", ["projét-123", "project\n123", "project\t123"])
def test_unsendable_project_id_fails_at_construction(project_id: str) -> None:
    with pytest.raises(ValueError, match="project_id") as caught:
        _client(project_id=project_id, api_key=API_KEY)
    assert "LAMATIC_PROJECT_ID" in str(caught.value)
    assert "x-project-id" in str(caught.value)


# --- Access tokens -------------------------------------------------------------------------


def test_access_token_claim_uses_the_stripped_project_id() -> None:
    import jwt

    secret = "regression-secret-key-0123456789abcdef"
    token = create_access_token(secret, "  project-123\n", expires_in=60)
    claims = jwt.decode(token, secret, algorithms=["HS256"])
    assert claims["project_id"] == "project-123"


# --- Settings that a shared client would silently ignore -------------------------------------


@pytest.mark.parametrize(
    ("setting", "value"),
    [("max_retries", 7), ("allow_insecure_http", True), ("bypass_cache", True)],
)
def test_tool_rejects_client_with_ignored_setting(setting: str, value: object) -> None:
    client = _client(api_key=API_KEY)
    with pytest.raises(ValueError, match=setting):
        LamaticFlowTool(flow_id="flow-1", client=client, **{setting: value})


@pytest.mark.parametrize(
    ("setting", "value"),
    [("max_retries", 7), ("allow_insecure_http", True), ("bypass_cache", True)],
)
def test_toolkit_rejects_client_with_ignored_setting(setting: str, value: object) -> None:
    client = _client(api_key=API_KEY)
    with pytest.raises(ValueError, match=setting):
        LamaticToolkit(definitions=[{"id": "flow-1"}], client=client, **{setting: value})


def test_tool_with_client_and_default_settings_is_accepted() -> None:
    client = _client(api_key=API_KEY)
    tool = LamaticFlowTool(flow_id="flow-1", client=client)
    assert tool.lamatic_client is client


# --- Tool descriptions -----------------------------------------------------------------------


class TreeNode(BaseModel):
    label: str
    child: TreeNode | None = None


def test_default_description_lists_arguments_of_recursive_model() -> None:
    tool = LamaticFlowTool(flow_id="flow-1", args_schema=TreeNode, client=_client(api_key=API_KEY))
    assert "takes no arguments" not in tool.description
    assert "label (string)" in tool.description


def test_default_description_lists_arguments_of_recursive_json_schema() -> None:
    schema = {"type": "object", "properties": {"child": {"$ref": "#"}}}
    tool = LamaticFlowTool(flow_id="flow-1", args_schema=schema, client=_client(api_key=API_KEY))
    assert "takes no arguments" not in tool.description
    assert "child" in tool.description


# --- Manifest files --------------------------------------------------------------------------


def test_manifest_with_byte_order_mark_loads(tmp_path: Path) -> None:
    path = tmp_path / "tools.json"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps({"tools": [{"id": "flow-1"}]}).encode())
    definitions = load_manifest(path)
    assert [definition.id for definition in definitions] == ["flow-1"]


def test_manifest_not_in_utf8_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "latin1.json"
    path.write_bytes(b'{"tools": [{"id": "caf\xe9"}]}')
    with pytest.raises(ValueError, match="not UTF-8") as caught:
        load_manifest(path)
    assert str(path) in str(caught.value)


# --- Tool ids and output keys ----------------------------------------------------------------


@pytest.mark.parametrize("flow_id", ["", "   "])
def test_tool_blank_flow_id_names_the_field(flow_id: str) -> None:
    with pytest.raises(ValueError, match="flow_id must not be empty"):
        LamaticFlowTool(flow_id=flow_id, client=_client(api_key=API_KEY))


def test_tool_missing_output_key_hint() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        body = {"data": {"executeWorkflow": {"status": "success", "result": {"answer": "x"}}}}
        return httpx.Response(200, json=body)

    client = _client(api_key=API_KEY, transport=httpx.MockTransport(handler))
    tool = LamaticFlowTool(flow_id="flow-1", output_key="summary", client=client)
    with pytest.raises(LamaticResponseError, match="has no key 'summary'") as caught:
        tool.invoke({"prompt": "hello"})
    assert "endpoint" not in str(caught.value)
    assert "['answer']" in str(caught.value)


# --- Rate limits -----------------------------------------------------------------------------


def test_rate_limit_message_states_server_wait() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(429, headers={"Retry-After": "120"}, json={"errors": []})

    client = _client(api_key=API_KEY, transport=httpx.MockTransport(handler))
    with pytest.raises(LamaticRateLimitError) as caught:
        client.execute_flow("flow-1", {})
    assert caught.value.retry_after == 120
    assert "wait 120 s" in str(caught.value)


# --- Per-call credentials, timeouts and runnable settings ------------------------------------


@pytest.mark.parametrize("token", ["abc\r\nX-Injected: 1", "tökén", "has space"])
def test_unsendable_per_call_token_fails_before_sending(token: str) -> None:
    client = _client(api_key=API_KEY)
    with pytest.raises(ValueError, match="per-call access token") as caught:
        client.execute_flow("echo", {}, access_token=SecretStr(token))
    assert token not in str(caught.value)


def test_unsendable_per_call_project_id_fails_before_sending() -> None:
    client = _client(api_key=API_KEY)
    with pytest.raises(ValueError, match="per-call project_id"):
        client.execute_flow("echo", {}, project_id="p\r\nX: 1")


def test_update_access_token_rejects_line_breaks() -> None:
    client = _client(access_token="first.token.value")
    with pytest.raises(ValueError, match="update_access_token") as caught:
        client.update_access_token("abc\r\nX: 1")
    assert "abc" not in str(caught.value)


def test_provider_token_with_line_break_is_rejected() -> None:
    calls: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        return httpx.Response(403, json={"errors": [{"message": "token expired"}]})

    client = LamaticClient(
        endpoint=ENDPOINT,
        project_id=PROJECT_ID,
        access_token="expired.token.value",
        access_token_provider=lambda: "fresh\r\nX: 1",
        transport=httpx.MockTransport(handler),
    )
    with pytest.raises(Exception, match="cannot carry") as caught:
        client.execute_flow("echo", {})
    assert "fresh" not in str(caught.value)
    assert len(calls) == 1


@pytest.mark.parametrize("timeout", [1e10, float("inf"), float("nan"), 0, -1])
def test_out_of_range_timeout_is_rejected(timeout: float) -> None:
    with pytest.raises(ValueError, match="timeout"):
        _client(api_key=API_KEY, timeout=timeout)


@pytest.mark.parametrize("flow_id", ["", "   "])
def test_flow_with_blank_id_fails_at_construction(flow_id: str) -> None:
    with pytest.raises(ValueError, match="flow_id must not be empty"):
        LamaticFlow(flow_id=flow_id, client=_client(api_key=API_KEY))


@pytest.mark.parametrize(
    ("setting", "value"),
    [("timeout", 1.0), ("max_retries", 9), ("bypass_cache", True), ("allow_insecure_http", True)],
)
def test_flow_rejects_client_with_ignored_setting(setting: str, value: object) -> None:
    with pytest.raises(ValueError, match=setting):
        LamaticFlow(flow_id="echo", client=_client(api_key=API_KEY), **{setting: value})


def test_flow_missing_output_key_hint() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        body = {"data": {"executeWorkflow": {"status": "success", "result": {"answer": "x"}}}}
        return httpx.Response(200, json=body)

    client = LamaticClient(
        endpoint=ENDPOINT,
        project_id=PROJECT_ID,
        api_key=API_KEY,
        transport=httpx.MockTransport(handler),
    )
    flow = LamaticFlow(flow_id="echo", client=client, output_key="summary")
    with pytest.raises(LamaticResponseError) as caught:
        flow.invoke({})
    assert "output_key" in str(caught.value)
    assert "/graphql" not in str(caught.value)


def test_cli_payload_with_nan_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    from langchain_lamatic.__main__ import main

    with pytest.raises(SystemExit) as caught:
        main(["run", "echo", "--payload", '{"a": NaN}'])
    assert caught.value.code == 2
    assert "NaN" in capsys.readouterr().err


def test_cli_allows_insecure_http_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    from langchain_lamatic import __main__ as cli

    monkeypatch.setenv("LAMATIC_ENDPOINT", "http://lamatic.internal/graphql")
    monkeypatch.setenv("LAMATIC_PROJECT_ID", PROJECT_ID)
    monkeypatch.setenv("LAMATIC_API_KEY", API_KEY)
    seen: list[dict[str, object]] = []

    class RecordingClient:
        def __init__(self, **options: object) -> None:
            seen.append(options)
            raise ValueError("stop here")

    monkeypatch.setattr(cli, "LamaticClient", RecordingClient)
    assert cli.main(["run", "echo", "--allow-insecure-http"]) == 1
    assert seen[0]["allow_insecure_http"] is True


def test_deeply_nested_status_string_kept() -> None:
    from langchain_lamatic._polling import _decode_json_string

    text = "[" * 100_000 + "]" * 100_000
    assert _decode_json_string(text) == text


def test_feedback_error_carries_the_request_id() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(500, json={"errors": [{"message": "internal error"}]})

    client = LamaticClient(
        endpoint=ENDPOINT,
        project_id=PROJECT_ID,
        api_key=API_KEY,
        max_retries=0,
        transport=httpx.MockTransport(handler),
    )
    with pytest.raises(LamaticError) as caught:
        client.submit_feedback("req-42", 5)
    assert getattr(caught.value, "request_id", None) == "req-42"
