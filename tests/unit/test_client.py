"""LamaticClient on a MockTransport: requests, retries, token refresh, timeouts, lifecycle."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import math
import pickle
from email.utils import format_datetime
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from pydantic import SecretStr

from langchain_lamatic import (
    DEFAULT_TIMEOUT,
    LamaticAuthenticationError,
    LamaticBadRequestError,
    LamaticConnectionError,
    LamaticExecutionError,
    LamaticFlow,
    LamaticNotFoundError,
    LamaticPermissionError,
    LamaticRateLimitError,
    LamaticResponse,
    LamaticResponseError,
    LamaticServerError,
    LamaticTimeoutError,
    __version__,
    _queries,
)

if TYPE_CHECKING:
    from tests.unit.conftest import MockLamatic, SleepRecorder

NEW_TOKEN = "refreshed-access-token-0001"


def _error_body(message: str) -> dict[str, Any]:
    return {"errors": [{"message": message}]}


class ClosingTransport(httpx.MockTransport):
    """A MockTransport that records whether its httpx client closed it."""

    def __init__(self, lamatic: MockLamatic) -> None:
        super().__init__(lamatic.handle)
        self.closed = False
        self.aclosed = False

    def close(self) -> None:
        self.closed = True

    async def aclose(self) -> None:
        self.aclosed = True


# --- Requests -------------------------------------------------------------------------------


def test_request_is_a_post_to_the_endpoint(lamatic: MockLamatic) -> None:
    lamatic.client().execute_flow("flow-1", {"prompt": "hi"})
    request = lamatic.requests[0]
    assert request.method == "POST"
    assert str(request.url) == lamatic.endpoint


def test_request_sends_json_content_type(lamatic: MockLamatic) -> None:
    lamatic.client().execute_flow("flow-1", {})
    assert lamatic.requests[0].headers["content-type"] == "application/json"


def test_request_sends_project_id(lamatic: MockLamatic) -> None:
    lamatic.client().execute_flow("flow-1", {})
    assert lamatic.requests[0].headers["x-project-id"] == lamatic.project_id


def test_request_sends_user_agent_with_version(lamatic: MockLamatic) -> None:
    lamatic.client().execute_flow("flow-1", {})
    assert lamatic.requests[0].headers["user-agent"] == f"langchain-lamatic/{__version__}"


def test_api_key_is_sent_as_bearer_only(lamatic: MockLamatic) -> None:
    lamatic.client().execute_flow("flow-1", {})
    headers = lamatic.requests[0].headers
    assert headers["authorization"] == f"Bearer {lamatic.api_key}"
    assert "x-lamatic-signature" not in headers


def test_access_token_is_sent_as_signature_only(lamatic: MockLamatic) -> None:
    lamatic.client(access_token=lamatic.access_token).execute_flow("flow-1", {})
    headers = lamatic.requests[0].headers
    assert headers["x-lamatic-signature"] == lamatic.access_token
    assert "authorization" not in headers


def test_bypass_cache_header_only_when_set(lamatic: MockLamatic) -> None:
    lamatic.client().execute_flow("flow-1", {})
    lamatic.client(bypass_cache=True).execute_flow("flow-1", {})
    assert "x-bypass-cache" not in lamatic.requests[0].headers
    assert lamatic.requests[1].headers["x-bypass-cache"] == "True"


def test_query_and_variables_are_sent(lamatic: MockLamatic) -> None:
    lamatic.client().execute_flow("flow-1", {"url": "https://example.org", "n": 3})
    assert lamatic.bodies()[0] == {
        "query": _queries.EXECUTE_WORKFLOW,
        "variables": {"workflowId": "flow-1", "payload": {"url": "https://example.org", "n": 3}},
    }


def test_agent_sends_execute_agent_query(lamatic: MockLamatic) -> None:
    lamatic.default = lamatic.success({"reply": "hi"}, operation="executeAgent")
    response = lamatic.client().execute_agent("agent-1", {"prompt": "hello"})
    assert lamatic.bodies()[0] == {
        "query": _queries.EXECUTE_AGENT,
        "variables": {"agentId": "agent-1", "payload": {"prompt": "hello"}},
    }
    assert response.result == {"reply": "hi"}


def test_hostile_ids_and_payload_leave_query_unchanged(lamatic: MockLamatic) -> None:
    flow_id = 'x", payload: {}) { status } } query Evil { __schema { types { name } } } #'
    payload = {
        'key"with"quotes': '"}) { status result } mutation { deleteEverything }',
        "nested": {"$payload": "${workflowId}", "list": ["\\", "\n", "{{triggerNode_1}}"]},
    }
    client = lamatic.client()
    client.execute_flow(flow_id, payload)
    client.execute_flow("plain", {})
    first, second = lamatic.bodies()
    assert first["query"] == _queries.EXECUTE_WORKFLOW
    assert second["query"] == _queries.EXECUTE_WORKFLOW
    assert first["variables"] == {"workflowId": flow_id, "payload": payload}


def test_none_payload_sends_empty_object(lamatic: MockLamatic) -> None:
    lamatic.client().execute_flow("flow-1")
    assert lamatic.bodies()[0]["variables"]["payload"] == {}


def test_unicode_payload_round_trips(lamatic: MockLamatic) -> None:
    lamatic.client().execute_flow("flow-1", {"prompt": "Grüße, 世界 🌍"})
    assert lamatic.bodies()[0]["variables"]["payload"] == {"prompt": "Grüße, 世界 🌍"}


@pytest.mark.parametrize("payload", [["a", "b"], "text", 42])
def test_non_mapping_payload_is_rejected_before_sending(
    lamatic: MockLamatic, payload: object
) -> None:
    with pytest.raises(TypeError, match="must be a mapping"):
        lamatic.client().execute_flow("flow-1", payload)  # type: ignore[arg-type]
    assert lamatic.requests == []


def test_non_string_payload_key_is_rejected_before_sending(lamatic: MockLamatic) -> None:
    with pytest.raises(TypeError, match="not a str"):
        lamatic.client().execute_flow("flow-1", {1: "one"})  # type: ignore[dict-item]
    assert lamatic.requests == []


@pytest.mark.parametrize("value", [dt.datetime(2024, 1, 1), {1, 2}, object(), math.nan])
def test_non_json_payload_rejected_before_sending(lamatic: MockLamatic, value: object) -> None:
    with pytest.raises(TypeError, match="cannot be sent as JSON"):
        lamatic.client().execute_flow("flow-1", {"value": value})
    assert lamatic.requests == []


@pytest.mark.parametrize("flow_id", ["", "   "])
def test_empty_flow_id_is_rejected_before_sending(lamatic: MockLamatic, flow_id: str) -> None:
    with pytest.raises(ValueError, match="flow_id must not be empty"):
        lamatic.client().execute_flow(flow_id, {})
    assert lamatic.requests == []


def test_non_string_agent_id_is_rejected_before_sending(lamatic: MockLamatic) -> None:
    with pytest.raises(TypeError, match="agent_id must be a str"):
        lamatic.client().execute_agent(42, {})  # type: ignore[arg-type]
    assert lamatic.requests == []


def test_per_call_project_id_is_sent(lamatic: MockLamatic) -> None:
    lamatic.client().execute_flow("flow-1", {}, project_id="other-project")
    assert lamatic.requests[0].headers["x-project-id"] == "other-project"


def test_per_call_access_token_replaces_api_key(lamatic: MockLamatic) -> None:
    lamatic.client().execute_flow("flow-1", {}, access_token=SecretStr("per-call-token"))
    headers = lamatic.requests[0].headers
    assert headers["x-lamatic-signature"] == "per-call-token"
    assert "authorization" not in headers


def test_per_call_access_token_is_not_kept(lamatic: MockLamatic) -> None:
    client = lamatic.client()
    client.execute_flow("flow-1", {}, access_token="per-call-token")
    client.execute_flow("flow-1", {})
    assert lamatic.requests[1].headers["authorization"] == f"Bearer {lamatic.api_key}"


# --- Responses ------------------------------------------------------------------------------


def test_success_returns_lamatic_response(lamatic: MockLamatic) -> None:
    lamatic.respond(lamatic.success({"summary": "short"}, request_id="req-42"))
    response = lamatic.client().execute_flow("flow-1", {})
    assert isinstance(response, LamaticResponse)
    assert response.status == "success"
    assert response.result == {"summary": "short"}
    assert response.request_id == "req-42"
    assert response.status_code == 200
    assert response.message is None


def test_request_id_is_read_from_result(lamatic: MockLamatic) -> None:
    body = {"data": {"executeWorkflow": {"status": "success", "result": {"requestId": "r-9"}}}}
    lamatic.respond(lamatic.reply(json_body=body))
    assert lamatic.client().execute_flow("flow-1", {}).request_id == "r-9"


def test_message_is_kept(lamatic: MockLamatic) -> None:
    body = {
        "data": {"executeWorkflow": {"status": "success", "result": {"a": 1}, "message": "cached"}}
    }
    lamatic.respond(lamatic.reply(json_body=body))
    assert lamatic.client().execute_flow("flow-1", {}).message == "cached"


def test_failed_execution_raises_with_node_message(lamatic: MockLamatic) -> None:
    body = {
        "data": {
            "executeWorkflow": {
                "status": "failed",
                "result": {"errorMsg": "LLM node: context window exceeded"},
                "requestId": "req-7",
            }
        }
    }
    lamatic.respond(lamatic.reply(json_body=body))
    with pytest.raises(LamaticExecutionError) as caught:
        lamatic.client().execute_flow("flow-1", {})
    assert "context window exceeded" in str(caught.value)
    assert caught.value.request_id == "req-7"
    assert len(lamatic.requests) == 1


# --- Retries --------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [429, 502, 503, 504])
def test_retryable_status_is_retried_then_succeeds(
    lamatic: MockLamatic, no_sleep: SleepRecorder, status: int
) -> None:
    lamatic.respond(lamatic.reply(status), lamatic.reply(status), lamatic.success({"ok": True}))
    response = lamatic.client(max_retries=2).execute_flow("flow-1", {})
    assert response.result == {"ok": True}
    assert len(lamatic.requests) == 3
    assert len(no_sleep.waits) == 2


@pytest.mark.parametrize("status", [429, 502, 503, 504])
async def test_retryable_status_is_retried_then_succeeds_async(
    lamatic: MockLamatic, no_sleep: SleepRecorder, status: int
) -> None:
    lamatic.respond(lamatic.reply(status), lamatic.success({"ok": True}))
    response = await lamatic.client(max_retries=2).aexecute_flow("flow-1", {})
    assert response.result == {"ok": True}
    assert len(lamatic.requests) == 2
    assert len(no_sleep.waits) == 1


@pytest.mark.parametrize(
    ("status", "error_class"),
    [(429, LamaticRateLimitError), (502, LamaticServerError), (503, LamaticServerError)],
)
def test_exhausted_retries_raise_typed_error(
    lamatic: MockLamatic, no_sleep: SleepRecorder, status: int, error_class: type[Exception]
) -> None:
    lamatic.default = lamatic.reply(status)
    with pytest.raises(error_class) as caught:
        lamatic.client(max_retries=3).execute_flow("flow-1", {})
    assert caught.value.attempts == 4  # type: ignore[attr-defined]
    assert caught.value.status_code == status  # type: ignore[attr-defined]
    assert len(lamatic.requests) == 4
    assert "attempts=4" in str(caught.value)


async def test_exhausted_retries_raise_typed_error_async(
    lamatic: MockLamatic, no_sleep: SleepRecorder
) -> None:
    lamatic.default = lamatic.reply(504)
    with pytest.raises(LamaticServerError) as caught:
        await lamatic.client(max_retries=2).aexecute_flow("flow-1", {})
    assert caught.value.attempts == 3
    assert len(lamatic.requests) == 3


def test_max_retries_zero_sends_one_request(lamatic: MockLamatic, no_sleep: SleepRecorder) -> None:
    lamatic.default = lamatic.reply(503)
    with pytest.raises(LamaticServerError) as caught:
        lamatic.client(max_retries=0).execute_flow("flow-1", {})
    assert caught.value.attempts == 1
    assert len(lamatic.requests) == 1
    assert no_sleep.waits == []


def test_retry_after_seconds_is_honoured(lamatic: MockLamatic, no_sleep: SleepRecorder) -> None:
    lamatic.respond(lamatic.reply(429, headers={"Retry-After": "7"}), lamatic.success())
    lamatic.client().execute_flow("flow-1", {})
    assert no_sleep.waits == [7.0]


async def test_retry_after_seconds_is_honoured_async(
    lamatic: MockLamatic, no_sleep: SleepRecorder
) -> None:
    lamatic.respond(lamatic.reply(429, headers={"Retry-After": "3"}), lamatic.success())
    await lamatic.client().aexecute_flow("flow-1", {})
    assert no_sleep.waits == [3.0]


def test_retry_after_http_date_is_honoured(lamatic: MockLamatic, no_sleep: SleepRecorder) -> None:
    when = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=30)
    retry_after = format_datetime(when, usegmt=True)
    lamatic.respond(lamatic.reply(429, headers={"Retry-After": retry_after}), lamatic.success())
    lamatic.client().execute_flow("flow-1", {})
    assert len(no_sleep.waits) == 1
    assert 20.0 <= no_sleep.waits[0] <= 31.0


def test_retry_after_above_cap_raises_at_once(
    lamatic: MockLamatic, no_sleep: SleepRecorder
) -> None:
    lamatic.respond(lamatic.reply(429, headers={"Retry-After": "3600"}), lamatic.success())
    with pytest.raises(LamaticRateLimitError) as caught:
        lamatic.client(max_retries=5).execute_flow("flow-1", {})
    assert caught.value.retry_after == 3600.0
    assert len(lamatic.requests) == 1
    assert no_sleep.waits == []


@pytest.mark.parametrize("status", [502, 503, 504])
def test_gateway_retry_after_seconds_is_honoured(
    lamatic: MockLamatic, no_sleep: SleepRecorder, status: int
) -> None:
    lamatic.respond(lamatic.reply(status, headers={"Retry-After": "1"}), lamatic.success())
    lamatic.client().execute_flow("flow-1", {})
    assert no_sleep.waits == [1.0]
    assert len(lamatic.requests) == 2


@pytest.mark.parametrize("status", [502, 503, 504])
async def test_gateway_retry_after_seconds_is_honoured_async(
    lamatic: MockLamatic, no_sleep: SleepRecorder, status: int
) -> None:
    lamatic.respond(lamatic.reply(status, headers={"Retry-After": "1"}), lamatic.success())
    await lamatic.client().aexecute_flow("flow-1", {})
    assert no_sleep.waits == [1.0]
    assert len(lamatic.requests) == 2


def _in_thirty_seconds() -> str:
    when = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=30)
    return format_datetime(when, usegmt=True)


def test_unavailable_retry_after_date_honoured(
    lamatic: MockLamatic, no_sleep: SleepRecorder
) -> None:
    lamatic.respond(
        lamatic.reply(503, headers={"Retry-After": _in_thirty_seconds()}), lamatic.success()
    )
    lamatic.client().execute_flow("flow-1", {})
    assert len(no_sleep.waits) == 1
    assert 20.0 <= no_sleep.waits[0] <= 31.0


async def test_unavailable_retry_after_date_honoured_async(
    lamatic: MockLamatic, no_sleep: SleepRecorder
) -> None:
    lamatic.respond(
        lamatic.reply(503, headers={"Retry-After": _in_thirty_seconds()}), lamatic.success()
    )
    await lamatic.client().aexecute_flow("flow-1", {})
    assert len(no_sleep.waits) == 1
    assert 20.0 <= no_sleep.waits[0] <= 31.0


def test_retry_after_zero_retries_at_once(lamatic: MockLamatic, no_sleep: SleepRecorder) -> None:
    lamatic.respond(lamatic.reply(503, headers={"Retry-After": "0"}), lamatic.success())
    lamatic.client().execute_flow("flow-1", {})
    assert no_sleep.waits == [0.0]


def test_unparsable_retry_after_falls_back_to_backoff(
    lamatic: MockLamatic, no_sleep: SleepRecorder
) -> None:
    lamatic.respond(lamatic.reply(503, headers={"Retry-After": "soon"}), lamatic.success())
    lamatic.client().execute_flow("flow-1", {})
    assert len(no_sleep.waits) == 1
    assert 0.25 <= no_sleep.waits[0] <= 0.5


@pytest.mark.parametrize("status", [502, 503, 504])
def test_gateway_retry_after_above_cap_raises_at_once(
    lamatic: MockLamatic, no_sleep: SleepRecorder, status: int
) -> None:
    lamatic.respond(lamatic.reply(status, headers={"Retry-After": "3600"}), lamatic.success())
    with pytest.raises(LamaticServerError) as caught:
        lamatic.client(max_retries=5).execute_flow("flow-1", {})
    assert caught.value.retry_after == 3600.0
    assert caught.value.status_code == status
    assert caught.value.attempts == 1
    assert "the server asked to wait 3600 s" in str(caught.value)
    assert len(lamatic.requests) == 1
    assert no_sleep.waits == []


async def test_gateway_retry_after_above_cap_raises_async(
    lamatic: MockLamatic, no_sleep: SleepRecorder
) -> None:
    lamatic.respond(lamatic.reply(503, headers={"Retry-After": "61"}), lamatic.success())
    with pytest.raises(LamaticServerError) as caught:
        await lamatic.client(max_retries=5).aexecute_flow("flow-1", {})
    assert caught.value.retry_after == 61.0
    assert "the server asked to wait 61 s" in str(caught.value)
    assert len(lamatic.requests) == 1
    assert no_sleep.waits == []


def test_retry_after_at_cap_is_waited(lamatic: MockLamatic, no_sleep: SleepRecorder) -> None:
    lamatic.respond(lamatic.reply(503, headers={"Retry-After": "60"}), lamatic.success())
    lamatic.client().execute_flow("flow-1", {})
    assert no_sleep.waits == [60.0]


def test_rate_limit_message_shows_long_wait(lamatic: MockLamatic, no_sleep: SleepRecorder) -> None:
    lamatic.respond(lamatic.reply(429, headers={"Retry-After": "3600"}))
    with pytest.raises(LamaticRateLimitError) as caught:
        lamatic.client().execute_flow("flow-1", {})
    assert "the server asked to wait 3600 s" in str(caught.value)


def test_exhausted_503_keeps_retry_after(lamatic: MockLamatic, no_sleep: SleepRecorder) -> None:
    lamatic.default = lamatic.reply(503, headers={"Retry-After": "2"})
    with pytest.raises(LamaticServerError) as caught:
        lamatic.client(max_retries=2).execute_flow("flow-1", {})
    assert no_sleep.waits == [2.0, 2.0]
    assert caught.value.attempts == 3
    assert caught.value.retry_after == 2.0
    assert "attempts=3" in str(caught.value)


async def test_exhausted_503_keeps_retry_after_async(
    lamatic: MockLamatic, no_sleep: SleepRecorder
) -> None:
    lamatic.default = lamatic.reply(503, headers={"Retry-After": "2"})
    with pytest.raises(LamaticServerError) as caught:
        await lamatic.client(max_retries=2).aexecute_flow("flow-1", {})
    assert no_sleep.waits == [2.0, 2.0]
    assert caught.value.attempts == 3
    assert caught.value.retry_after == 2.0


def test_flow_500_with_retry_after_not_retried(
    lamatic: MockLamatic, no_sleep: SleepRecorder
) -> None:
    lamatic.default = lamatic.reply(500, headers={"Retry-After": "1"})
    with pytest.raises(LamaticServerError) as caught:
        lamatic.client(max_retries=3).execute_flow("flow-1", {})
    assert caught.value.retry_after == 1.0
    assert len(lamatic.requests) == 1
    assert no_sleep.waits == []


def test_status_poll_honours_500_retry_after(lamatic: MockLamatic, no_sleep: SleepRecorder) -> None:
    status = {"status": "success", "result": {"ok": 1}}
    lamatic.respond(
        lamatic.reply(500, headers={"Retry-After": "4"}),
        lamatic.reply(200, json_body={"data": {"checkStatus": status}}),
    )
    lamatic.client().check_status("req-1")
    assert no_sleep.waits == [4.0]
    assert len(lamatic.requests) == 2


def test_graphql_rate_limit_honours_retry_after(
    lamatic: MockLamatic, no_sleep: SleepRecorder
) -> None:
    errors = {"errors": [{"message": "slow down", "extensions": {"code": "RATE_LIMITED"}}]}
    lamatic.respond(
        lamatic.reply(200, json_body=errors, headers={"Retry-After": "6"}), lamatic.success()
    )
    lamatic.client().execute_flow("flow-1", {})
    assert no_sleep.waits == [6.0]


def test_backoff_grows_with_jitter(lamatic: MockLamatic, no_sleep: SleepRecorder) -> None:
    lamatic.default = lamatic.reply(502)
    with pytest.raises(LamaticServerError):
        lamatic.client(max_retries=3).execute_flow("flow-1", {})
    first, second, third = no_sleep.waits
    assert 0.25 <= first <= 0.5
    assert 0.5 <= second <= 1.0
    assert 1.0 <= third <= 2.0


def test_server_500_is_not_retried_for_flows(lamatic: MockLamatic, no_sleep: SleepRecorder) -> None:
    lamatic.default = lamatic.reply(500, json_body=_error_body("boom"))
    with pytest.raises(LamaticServerError) as caught:
        lamatic.client(max_retries=3).execute_flow("flow-1", {})
    assert caught.value.status_code == 500
    assert len(lamatic.requests) == 1
    assert no_sleep.waits == []


def test_read_timeout_is_not_retried_for_flows(
    lamatic: MockLamatic, no_sleep: SleepRecorder
) -> None:
    lamatic.default = lambda request: (_ for _ in ()).throw(
        httpx.ReadTimeout("timed out", request=request)
    )
    with pytest.raises(LamaticTimeoutError) as caught:
        lamatic.client(max_retries=3).execute_flow("flow-1", {})
    assert "waiting for the response" in str(caught.value)
    assert "may still have run" in str(caught.value)
    assert len(lamatic.requests) == 1
    assert no_sleep.waits == []


async def test_read_timeout_is_not_retried_for_agents_async(
    lamatic: MockLamatic, no_sleep: SleepRecorder
) -> None:
    lamatic.respond(httpx.ReadTimeout("timed out"))
    with pytest.raises(LamaticTimeoutError) as caught:
        await lamatic.client(max_retries=3).aexecute_agent("agent-1", {})
    assert caught.value.agent_id == "agent-1"
    assert len(lamatic.requests) == 1


def test_connection_dropped_after_sending_is_not_retried(
    lamatic: MockLamatic, no_sleep: SleepRecorder
) -> None:
    lamatic.respond(httpx.RemoteProtocolError("Server disconnected without sending a response."))
    with pytest.raises(LamaticConnectionError) as caught:
        lamatic.client(max_retries=3).execute_flow("flow-1", {})
    assert not isinstance(caught.value, LamaticTimeoutError)
    assert len(lamatic.requests) == 1


@pytest.mark.parametrize(
    "error",
    [
        httpx.ConnectError("[Errno 111] Connection refused"),
        httpx.ConnectTimeout("timed out"),
        httpx.PoolTimeout("no free connection"),
    ],
)
def test_failure_before_sending_is_retried(
    lamatic: MockLamatic, no_sleep: SleepRecorder, error: Exception
) -> None:
    lamatic.respond(error, error, lamatic.success({"ok": 1}))
    response = lamatic.client(max_retries=2).execute_flow("flow-1", {})
    assert response.result == {"ok": 1}
    assert len(lamatic.requests) == 3


async def test_connect_error_is_retried_async(
    lamatic: MockLamatic, no_sleep: SleepRecorder
) -> None:
    lamatic.respond(httpx.ConnectError("refused"), lamatic.success({"ok": 1}))
    response = await lamatic.client().aexecute_flow("flow-1", {})
    assert response.result == {"ok": 1}
    assert len(lamatic.requests) == 2


def test_connect_errors_exhausted_raise_connection_error(
    lamatic: MockLamatic, no_sleep: SleepRecorder
) -> None:
    lamatic.respond(*[httpx.ConnectError("[Errno 111] Connection refused")] * 3)
    with pytest.raises(LamaticConnectionError) as caught:
        lamatic.client(max_retries=2).execute_flow("flow-1", {})
    assert caught.value.attempts == 3
    assert "could not reach" in str(caught.value)
    assert "Connection refused" in str(caught.value)


def test_connect_timeout_exhausted_raises_timeout_error(
    lamatic: MockLamatic, no_sleep: SleepRecorder
) -> None:
    lamatic.respond(*[httpx.ConnectTimeout("timed out")] * 2)
    with pytest.raises(LamaticTimeoutError) as caught:
        lamatic.client(max_retries=1).execute_flow("flow-1", {})
    assert "while connecting" in str(caught.value)
    assert caught.value.attempts == 2


@pytest.mark.parametrize(
    ("reply_args", "error_class"),
    [
        ({"status": 400, "json_body": _error_body("Syntax Error")}, LamaticBadRequestError),
        ({"status": 401, "json_body": _error_body("Invalid API key")}, LamaticAuthenticationError),
        ({"status": 404, "json_body": _error_body("Flow not found")}, LamaticNotFoundError),
        ({"status": 200, "content": b"<html>not json</html>"}, LamaticResponseError),
    ],
)
def test_non_retryable_errors_send_one_request(
    lamatic: MockLamatic,
    no_sleep: SleepRecorder,
    reply_args: dict[str, Any],
    error_class: type[Exception],
) -> None:
    lamatic.default = lamatic.reply(**reply_args)
    with pytest.raises(error_class):
        lamatic.client(max_retries=3).execute_flow("flow-1", {})
    assert len(lamatic.requests) == 1
    assert no_sleep.waits == []


def test_execution_failure_is_not_retried(lamatic: MockLamatic, no_sleep: SleepRecorder) -> None:
    lamatic.default = lamatic.success({"errorMsg": "node failed"}, status="error")
    with pytest.raises(LamaticExecutionError):
        lamatic.client(max_retries=3).execute_flow("flow-1", {})
    assert len(lamatic.requests) == 1


def test_retries_are_logged_with_flow_id_and_attempt(
    lamatic: MockLamatic, no_sleep: SleepRecorder, caplog: pytest.LogCaptureFixture
) -> None:
    lamatic.respond(lamatic.reply(503), lamatic.reply(429), lamatic.success())
    with caplog.at_level(logging.DEBUG, logger="langchain_lamatic"):
        lamatic.client(max_retries=2).execute_flow("summariser-7", {})
    retries = [record for record in caplog.records if "Retrying" in record.getMessage()]
    assert len(retries) == 2
    assert all(record.name == "langchain_lamatic.client" for record in retries)
    assert "summariser-7" in retries[0].getMessage()
    assert "attempt 2 of 3" in retries[0].getMessage()
    assert "attempt 3 of 3" in retries[1].getMessage()
    assert "LamaticServerError" in retries[0].getMessage()
    assert "LamaticRateLimitError" in retries[1].getMessage()


# --- Token refresh --------------------------------------------------------------------------


class TokenProvider:
    def __init__(self, token: str = NEW_TOKEN) -> None:
        self.token = token
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        return self.token


class AsyncTokenProvider(TokenProvider):
    async def __call__(self) -> str:  # type: ignore[override]
        self.calls += 1
        await asyncio.sleep(0)
        return self.token


def _auth_failure(lamatic: MockLamatic, status: int) -> Any:
    message = "Token expired" if status == 403 else "Invalid token"
    return lamatic.reply(status, json_body=_error_body(message))


@pytest.mark.parametrize("status", [401, 403])
@pytest.mark.parametrize("provider_class", [TokenProvider, AsyncTokenProvider])
def test_auth_failure_refreshes_token_once(
    lamatic: MockLamatic, status: int, provider_class: type[TokenProvider]
) -> None:
    provider = provider_class()
    lamatic.respond(_auth_failure(lamatic, status), lamatic.success({"ok": True}))
    client = lamatic.client(access_token=lamatic.access_token, access_token_provider=provider)
    response = client.execute_flow("flow-1", {})
    assert response.result == {"ok": True}
    assert provider.calls == 1
    assert lamatic.requests[0].headers["x-lamatic-signature"] == lamatic.access_token
    assert lamatic.requests[1].headers["x-lamatic-signature"] == NEW_TOKEN


@pytest.mark.parametrize("status", [401, 403])
@pytest.mark.parametrize("provider_class", [TokenProvider, AsyncTokenProvider])
async def test_auth_failure_refreshes_token_once_async(
    lamatic: MockLamatic, status: int, provider_class: type[TokenProvider]
) -> None:
    provider = provider_class()
    lamatic.respond(_auth_failure(lamatic, status), lamatic.success({"ok": True}))
    client = lamatic.client(access_token=lamatic.access_token, access_token_provider=provider)
    response = await client.aexecute_flow("flow-1", {})
    assert response.result == {"ok": True}
    assert provider.calls == 1
    assert lamatic.requests[1].headers["x-lamatic-signature"] == NEW_TOKEN


async def test_async_provider_from_sync_call_inside_running_loop(lamatic: MockLamatic) -> None:
    provider = AsyncTokenProvider()
    lamatic.respond(_auth_failure(lamatic, 403), lamatic.success())
    client = lamatic.client(access_token=lamatic.access_token, access_token_provider=provider)
    client.execute_flow("flow-1", {})
    assert provider.calls == 1
    assert lamatic.requests[1].headers["x-lamatic-signature"] == NEW_TOKEN


def test_refreshed_token_is_kept_for_later_calls(lamatic: MockLamatic) -> None:
    provider = TokenProvider()
    lamatic.respond(_auth_failure(lamatic, 403), lamatic.success(), lamatic.success())
    client = lamatic.client(access_token=lamatic.access_token, access_token_provider=provider)
    client.execute_flow("flow-1", {})
    client.execute_flow("flow-1", {})
    assert lamatic.requests[2].headers["x-lamatic-signature"] == NEW_TOKEN
    assert provider.calls == 1


@pytest.mark.parametrize(
    ("status", "error_class"), [(401, LamaticAuthenticationError), (403, LamaticPermissionError)]
)
def test_second_auth_failure_is_raised(
    lamatic: MockLamatic, status: int, error_class: type[Exception]
) -> None:
    provider = TokenProvider()
    lamatic.default = _auth_failure(lamatic, status)
    client = lamatic.client(access_token=lamatic.access_token, access_token_provider=provider)
    with pytest.raises(error_class):
        client.execute_flow("flow-1", {})
    assert provider.calls == 1
    assert len(lamatic.requests) == 2


async def test_second_auth_failure_is_raised_async(lamatic: MockLamatic) -> None:
    provider = AsyncTokenProvider()
    lamatic.default = _auth_failure(lamatic, 403)
    client = lamatic.client(access_token=lamatic.access_token, access_token_provider=provider)
    with pytest.raises(LamaticPermissionError):
        await client.aexecute_flow("flow-1", {})
    assert provider.calls == 1
    assert len(lamatic.requests) == 2


def test_expired_token_reported_in_graphql_body_refreshes(lamatic: MockLamatic) -> None:
    provider = TokenProvider()
    lamatic.respond(lamatic.graphql_errors("jwt token expired"), lamatic.success())
    client = lamatic.client(access_token=lamatic.access_token, access_token_provider=provider)
    client.execute_flow("flow-1", {})
    assert provider.calls == 1


def test_provider_is_not_called_for_api_keys(lamatic: MockLamatic) -> None:
    provider = TokenProvider()
    lamatic.default = _auth_failure(lamatic, 403)
    client = lamatic.client(access_token_provider=provider)
    with pytest.raises(LamaticPermissionError):
        client.execute_flow("flow-1", {})
    assert provider.calls == 0
    assert len(lamatic.requests) == 1


def test_provider_is_not_called_for_per_call_tokens(lamatic: MockLamatic) -> None:
    provider = TokenProvider()
    lamatic.default = _auth_failure(lamatic, 403)
    client = lamatic.client(access_token=lamatic.access_token, access_token_provider=provider)
    with pytest.raises(LamaticPermissionError):
        client.execute_flow("flow-1", {}, access_token=SecretStr("caller-token"))
    assert provider.calls == 0


def test_provider_is_not_called_for_other_errors(lamatic: MockLamatic) -> None:
    provider = TokenProvider()
    lamatic.default = lamatic.reply(404, json_body=_error_body("Flow not found"))
    client = lamatic.client(access_token=lamatic.access_token, access_token_provider=provider)
    with pytest.raises(LamaticNotFoundError):
        client.execute_flow("flow-1", {})
    assert provider.calls == 0


@pytest.mark.parametrize("bad_token", ["", "   ", None, 42])
def test_provider_returning_no_token_raises(lamatic: MockLamatic, bad_token: object) -> None:
    lamatic.default = _auth_failure(lamatic, 403)
    client = lamatic.client(
        access_token=lamatic.access_token, access_token_provider=lambda: bad_token
    )
    with pytest.raises(LamaticAuthenticationError, match="access_token_provider returned"):
        client.execute_flow("flow-1", {})
    assert len(lamatic.requests) == 1


def test_update_access_token_changes_the_header(lamatic: MockLamatic) -> None:
    client = lamatic.client(access_token=lamatic.access_token)
    client.update_access_token("second-token")
    client.execute_flow("flow-1", {})
    assert lamatic.requests[0].headers["x-lamatic-signature"] == "second-token"


def test_update_access_token_accepts_secretstr(lamatic: MockLamatic) -> None:
    client = lamatic.client(access_token=lamatic.access_token)
    client.update_access_token(SecretStr("third-token"))
    client.execute_flow("flow-1", {})
    assert lamatic.requests[0].headers["x-lamatic-signature"] == "third-token"


def test_update_access_token_replaces_an_api_key(lamatic: MockLamatic) -> None:
    client = lamatic.client()
    client.update_access_token("from-now-on-a-token")
    client.execute_flow("flow-1", {})
    headers = lamatic.requests[0].headers
    assert headers["x-lamatic-signature"] == "from-now-on-a-token"
    assert "authorization" not in headers
    assert client.credential_kind == "access_token"


@pytest.mark.parametrize("value", ["", "  ", SecretStr("")])
def test_update_access_token_rejects_empty(lamatic: MockLamatic, value: Any) -> None:
    client = lamatic.client(access_token=lamatic.access_token)
    with pytest.raises(ValueError, match="non-empty access token"):
        client.update_access_token(value)


# --- Timeouts -------------------------------------------------------------------------------


def test_default_timeout_is_finite() -> None:
    assert DEFAULT_TIMEOUT.connect is not None
    assert DEFAULT_TIMEOUT.read is not None
    assert DEFAULT_TIMEOUT.write is not None
    assert DEFAULT_TIMEOUT.pool is not None
    assert DEFAULT_TIMEOUT.connect <= 30
    assert DEFAULT_TIMEOUT.read >= 300


def test_default_timeout_reaches_the_request(lamatic: MockLamatic) -> None:
    lamatic.client().execute_flow("flow-1", {})
    assert lamatic.requests[0].extensions["timeout"] == DEFAULT_TIMEOUT.as_dict()


def test_client_timeout_in_seconds_reaches_the_request(lamatic: MockLamatic) -> None:
    lamatic.client(timeout=42).execute_flow("flow-1", {})
    timeout = lamatic.requests[0].extensions["timeout"]
    assert timeout["read"] == 42.0
    assert timeout["connect"] == DEFAULT_TIMEOUT.connect


def test_short_client_timeout_also_bounds_connect(lamatic: MockLamatic) -> None:
    lamatic.client(timeout=2.5).execute_flow("flow-1", {})
    assert lamatic.requests[0].extensions["timeout"]["connect"] == 2.5


def test_client_httpx_timeout_reaches_the_request(lamatic: MockLamatic) -> None:
    timeout = httpx.Timeout(60.0, connect=1.0, pool=5.0)
    lamatic.client(timeout=timeout).execute_flow("flow-1", {})
    assert lamatic.requests[0].extensions["timeout"] == timeout.as_dict()


def test_per_call_timeout_overrides_client_timeout(lamatic: MockLamatic) -> None:
    client = lamatic.client(timeout=100)
    client.execute_flow("flow-1", {}, timeout=7)
    client.execute_flow("flow-1", {})
    assert lamatic.requests[0].extensions["timeout"]["read"] == 7.0
    assert lamatic.requests[1].extensions["timeout"]["read"] == 100.0


async def test_per_call_timeout_overrides_client_timeout_async(lamatic: MockLamatic) -> None:
    client = lamatic.client()
    await client.aexecute_agent("agent-1", {}, timeout=httpx.Timeout(9.0))
    assert lamatic.requests[0].extensions["timeout"]["read"] == 9.0


def test_flow_timeout_reaches_the_request(lamatic: MockLamatic) -> None:
    client = lamatic.client(timeout=12)
    LamaticFlow(flow_id="flow-1", client=client).invoke({})
    assert lamatic.requests[0].extensions["timeout"]["read"] == 12.0


@pytest.mark.parametrize("value", [0, -1, math.inf, math.nan, True, "30", None])
def test_invalid_client_timeout_is_rejected(lamatic: MockLamatic, value: Any) -> None:
    with pytest.raises(ValueError, match="timeout"):
        lamatic.client(timeout=value)


@pytest.mark.parametrize("value", [0, -5, math.inf, "soon"])
def test_invalid_per_call_timeout_is_rejected_before_sending(
    lamatic: MockLamatic, value: Any
) -> None:
    with pytest.raises(ValueError, match="timeout"):
        lamatic.client().execute_flow("flow-1", {}, timeout=value)
    assert lamatic.requests == []


# --- Event loops, closing and injected clients ----------------------------------------------


def test_asyncio_run_twice_on_one_client(lamatic: MockLamatic) -> None:
    client = lamatic.client()
    first = asyncio.run(client.aexecute_flow("flow-1", {}))
    second = asyncio.run(client.aexecute_flow("flow-1", {}))
    assert first.status == "success"
    assert second.status == "success"
    assert len(lamatic.requests) == 2


def test_asyncio_run_twice_on_one_flow(lamatic: MockLamatic) -> None:
    flow = LamaticFlow(flow_id="flow-1", client=lamatic.client())
    assert asyncio.run(flow.ainvoke({"n": 1})) == {"answer": 42}
    assert asyncio.run(flow.ainvoke({"n": 2})) == {"answer": 42}
    assert [body["variables"]["payload"] for body in lamatic.bodies()] == [{"n": 1}, {"n": 2}]


def test_sync_and_async_calls_mix_on_one_client(lamatic: MockLamatic) -> None:
    client = lamatic.client()
    client.execute_flow("flow-1", {})
    asyncio.run(client.aexecute_flow("flow-1", {}))
    client.execute_flow("flow-1", {})
    assert len(lamatic.requests) == 3


def test_close_closes_own_sync_transport(lamatic: MockLamatic) -> None:
    transport = ClosingTransport(lamatic)
    client = lamatic.client(transport=transport)
    client.execute_flow("flow-1", {})
    client.close()
    assert transport.closed


def test_context_manager_closes_own_transport(lamatic: MockLamatic) -> None:
    transport = ClosingTransport(lamatic)
    with lamatic.client(transport=transport) as client:
        client.execute_flow("flow-1", {})
        assert not transport.closed
    assert transport.closed


async def test_async_context_manager_closes_own_transport(lamatic: MockLamatic) -> None:
    transport = ClosingTransport(lamatic)
    async with lamatic.client(async_transport=transport) as client:
        await client.aexecute_flow("flow-1", {})
        assert not transport.aclosed
    assert transport.aclosed


async def test_aclose_closes_sync_and_async_transports(lamatic: MockLamatic) -> None:
    sync_transport = ClosingTransport(lamatic)
    async_transport = ClosingTransport(lamatic)
    client = lamatic.client(transport=sync_transport, async_transport=async_transport)
    client.execute_flow("flow-1", {})
    await client.aexecute_flow("flow-1", {})
    await client.aclose()
    assert sync_transport.closed
    assert async_transport.aclosed


def test_client_works_again_after_close(lamatic: MockLamatic) -> None:
    client = lamatic.client()
    client.execute_flow("flow-1", {})
    client.close()
    client.execute_flow("flow-1", {})
    assert len(lamatic.requests) == 2


def test_injected_http_client_left_open(lamatic: MockLamatic) -> None:
    http_client = httpx.Client(transport=lamatic.transport)
    with lamatic.client(transport=None, http_client=http_client) as client:
        client.execute_flow("flow-1", {})
    assert len(lamatic.requests) == 1
    assert not http_client.is_closed
    http_client.close()


async def test_injected_async_client_left_open(lamatic: MockLamatic) -> None:
    http_client = httpx.AsyncClient(transport=lamatic.transport)
    async with lamatic.client(async_transport=None, http_async_client=http_client) as client:
        await client.aexecute_flow("flow-1", {})
    assert len(lamatic.requests) == 1
    assert not http_client.is_closed
    await http_client.aclose()


def test_redirect_is_not_followed(lamatic: MockLamatic) -> None:
    lamatic.default = lamatic.reply(307, headers={"Location": "https://elsewhere.example/graphql"})
    with pytest.raises(LamaticResponseError) as caught:
        lamatic.client().execute_flow("flow-1", {})
    assert caught.value.status_code == 307
    assert [request.url.host for request in lamatic.requests] == ["demo-project.lamatic.dev"]


def test_injected_client_never_redirects(lamatic: MockLamatic) -> None:
    lamatic.default = lamatic.reply(302, headers={"Location": "https://elsewhere.example/graphql"})
    http_client = httpx.Client(transport=lamatic.transport, follow_redirects=True)
    client = lamatic.client(access_token=lamatic.access_token, http_client=http_client)
    with pytest.raises(LamaticResponseError) as caught:
        client.execute_flow("flow-1", {})
    assert caught.value.status_code == 302
    assert [request.url.host for request in lamatic.requests] == ["demo-project.lamatic.dev"]


async def test_injected_async_client_never_redirects(
    lamatic: MockLamatic,
) -> None:
    lamatic.default = lamatic.reply(301, headers={"Location": "https://elsewhere.example/"})
    http_client = httpx.AsyncClient(transport=lamatic.transport, follow_redirects=True)
    client = lamatic.client(http_async_client=http_client)
    with pytest.raises(LamaticResponseError):
        await client.aexecute_flow("flow-1", {})
    assert len(lamatic.requests) == 1
    await http_client.aclose()


def test_concurrent_threads_share_one_client(lamatic: MockLamatic) -> None:
    from concurrent.futures import ThreadPoolExecutor

    client = lamatic.client()
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda n: client.execute_flow("flow-1", {"n": n}), range(32)))
    assert len(results) == 32
    sent = sorted(
        json.loads(request.content)["variables"]["payload"]["n"] for request in lamatic.requests
    )
    assert sent == list(range(32))


# --- Pickling and display -------------------------------------------------------------------


def test_repr_masks_the_credential(lamatic: MockLamatic) -> None:
    client = lamatic.client()
    text = repr(client)
    assert lamatic.api_key not in text
    assert lamatic.endpoint in text
    assert "api_key=**********" in text


def test_pickled_client_holds_no_credential(
    lamatic: MockLamatic, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = lamatic.client()
    client.execute_flow("flow-1", {})
    data = pickle.dumps(client)
    assert lamatic.api_key.encode() not in data
    monkeypatch.setenv("LAMATIC_ACCESS_TOKEN", "token-from-env")
    copy = pickle.loads(data)  # noqa: S301
    assert copy.endpoint == lamatic.endpoint
    assert copy.project_id == lamatic.project_id
    assert copy.credential_kind == "access_token"


def test_unpickled_client_without_env_credential_raises(lamatic: MockLamatic) -> None:
    copy = pickle.loads(pickle.dumps(lamatic.client()))  # noqa: S301
    with pytest.raises(ValueError, match="LAMATIC_API_KEY"):
        _ = copy.credential_kind
