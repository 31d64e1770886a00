"""Regressions of async polling and stream decoding, on a MockTransport without sockets."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from langchain_lamatic import (
    LamaticAuthenticationError,
    LamaticError,
    LamaticFlow,
    LamaticRateLimitError,
    LamaticResponseError,
    LamaticTimeoutError,
)
from langchain_lamatic._polling import PollSchedule, parse_status_report
from langchain_lamatic.streaming import FlowCompleted, LamaticStreamDecoder, TextDelta

if TYPE_CHECKING:
    from tests.unit.conftest import MockLamatic, SleepRecorder

REQUEST_ID = "req-regression-7"
PER_CALL_TOKEN = "per-call-token-0123456789abcdef"


def status_reply(value: Any) -> Any:
    def build(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"data": {"checkStatus": value}}, request=request)

    return build


def rate_limited(retry_after: str) -> Any:
    def build(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            429,
            json={"errors": [{"message": "Too many requests"}]},
            headers={"Retry-After": retry_after},
            request=request,
        )

    return build


def execute_reply(value: Any) -> Any:
    def build(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"data": {"executeWorkflow": value}}, request=request)

    return build


def stream_frame(chunk: Any) -> bytes:
    return b"data: " + json.dumps({"data": {"executeWorkflowWithStream": chunk}}).encode() + b"\n\n"


# --- The poll deadline bounds retries -------------------------------------------------------


def test_retry_after_past_deadline_not_waited(
    lamatic: MockLamatic, no_sleep: SleepRecorder
) -> None:
    lamatic.default = rate_limited("30")
    client = lamatic.client(max_retries=2)

    with pytest.raises(LamaticRateLimitError) as caught:
        client.check_status(REQUEST_ID, wait=True, poll_interval=3, deadline=5)

    assert caught.value.request_id == REQUEST_ID
    assert len(lamatic.requests) == 1
    assert all(wait < 5 for wait in no_sleep.waits)


async def test_async_retry_after_past_deadline_not_waited(
    lamatic: MockLamatic, no_sleep: SleepRecorder
) -> None:
    lamatic.default = rate_limited("30")
    client = lamatic.client(max_retries=2)

    with pytest.raises(LamaticRateLimitError) as caught:
        await client.acheck_status(REQUEST_ID, wait=True, poll_interval=3, deadline=5)

    assert caught.value.request_id == REQUEST_ID
    assert len(lamatic.requests) == 1


def test_retry_within_deadline_still_sent(lamatic: MockLamatic, no_sleep: SleepRecorder) -> None:
    lamatic.respond(rate_limited("1"), status_reply({"status": "success", "output": {"a": 1}}))
    client = lamatic.client(max_retries=2)

    response = client.check_status(REQUEST_ID, wait=True, poll_interval=3, deadline=600)

    assert response.result == {"a": 1}
    assert len(lamatic.requests) == 2


def test_single_poll_keeps_its_retries(lamatic: MockLamatic, no_sleep: SleepRecorder) -> None:
    lamatic.respond(rate_limited("30"), status_reply({"status": "in-progress"}))

    response = lamatic.client(max_retries=2).check_status(REQUEST_ID)

    assert response.status == "in-progress"
    assert len(lamatic.requests) == 2


def test_poll_timeout_retry_stops_at_deadline(
    lamatic: MockLamatic, no_sleep: SleepRecorder
) -> None:
    def time_out(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    lamatic.default = time_out
    client = lamatic.client(max_retries=2, endpoint="http://127.0.0.1:9/graphql")

    with pytest.raises(LamaticTimeoutError) as caught:
        client.check_status(REQUEST_ID, wait=True, poll_interval=0.01, deadline=0.05)

    assert caught.value.request_id == REQUEST_ID
    assert len(lamatic.requests) == 1


# --- Acknowledgements and status replies ----------------------------------------------------


def test_running_status_without_request_id_raises(lamatic: MockLamatic) -> None:
    lamatic.default = execute_reply({"status": "in-progress", "result": None})
    flow = LamaticFlow(flow_id="long-job", client=lamatic.client())

    with pytest.raises(LamaticResponseError) as caught:
        flow.invoke({"q": "x"})

    assert "request id" in str(caught.value)
    assert "in-progress" in str(caught.value)


async def test_async_running_without_request_id_raises(lamatic: MockLamatic) -> None:
    lamatic.default = execute_reply({"status": "in_progress", "result": {}})
    flow = LamaticFlow(flow_id="long-job", client=lamatic.client())

    with pytest.raises(LamaticResponseError):
        await flow.ainvoke({"q": "x"})


def test_empty_status_message_says_empty() -> None:
    with pytest.raises(LamaticResponseError) as caught:
        parse_status_report({"status": "  "}, request_id=REQUEST_ID)

    assert "empty status" in caught.value.message
    assert "of type str" not in caught.value.message


def test_failed_poll_redacts_per_call_token(lamatic: MockLamatic) -> None:
    lamatic.default = status_reply(
        {"status": "failed", "output": {"errorMsg": f"rejected token {PER_CALL_TOKEN}"}}
    )

    with pytest.raises(LamaticError) as caught:
        lamatic.client().check_status(REQUEST_ID, access_token=PER_CALL_TOKEN)

    assert PER_CALL_TOKEN not in str(caught.value)
    assert "[REDACTED]" in str(caught.value)


async def test_async_failed_poll_redacts_per_call_token(lamatic: MockLamatic) -> None:
    lamatic.default = status_reply(
        {"status": "error", "data": {"output": {"result": {"errorMsg": PER_CALL_TOKEN}}}}
    )

    with pytest.raises(LamaticError) as caught:
        await lamatic.client().acheck_status(REQUEST_ID, access_token=PER_CALL_TOKEN)

    assert PER_CALL_TOKEN not in str(caught.value)


def test_deadline_error_without_status_reply() -> None:
    clock_values = iter([0.0, 0.0, 10.0, 10.0, 10.0])
    schedule = PollSchedule(
        request_id=REQUEST_ID, interval=3, deadline=5, clock=lambda: next(clock_values)
    )
    schedule.begin_poll()

    message = schedule.deadline_error().message

    assert "'unknown'" not in message
    assert "no status" in message


# --- Stream frames --------------------------------------------------------------------------


def test_bare_null_frame_is_skipped() -> None:
    decoder = LamaticStreamDecoder(flow_id="chat")
    body = (
        b"data: null\n\n"
        + stream_frame(
            {"status": "streaming", "nodeId": "LLM", "data": {"generatedResponse": "hi"}}
        )
        + b"data: null\n\n"
        + stream_frame(
            {
                "status": "success",
                "nodeId": "",
                "data": {"a": "hi"},
                "isFlowExecutionFinished": True,
            }
        )
    )

    events = decoder.feed(body) + decoder.close()

    assert [type(event) for event in events] == [TextDelta, FlowCompleted]


def test_event_stream_with_json_errors_body_is_classified() -> None:
    decoder = LamaticStreamDecoder(flow_id="chat", status_code=200)
    assert decoder.feed(b'{"errors": [{"message": "Invalid API key"}]}') == []

    with pytest.raises(LamaticAuthenticationError) as caught:
        decoder.close()

    assert "Invalid API key" in caught.value.message


def test_event_stream_with_json_result_body_completes() -> None:
    decoder = LamaticStreamDecoder(flow_id="chat")
    chunk = {"status": "success", "nodeId": "", "data": {"a": 1}, "isFlowExecutionFinished": True}
    body = json.dumps({"data": {"executeWorkflowWithStream": chunk}}).encode()

    events = decoder.feed(body) + decoder.close()

    assert len(events) == 1
    assert isinstance(events[0], FlowCompleted)
    assert events[0].output == {"a": 1}


def test_event_stream_with_html_body_names_the_cause() -> None:
    decoder = LamaticStreamDecoder(flow_id="chat")
    decoder.feed(b"<html><body>Bad gateway</body></html>")

    with pytest.raises(LamaticResponseError) as caught:
        decoder.close()

    assert "not be an event stream" in caught.value.message


def test_stream_flow_classifies_json_errors_labelled_as_stream(lamatic: MockLamatic) -> None:
    lamatic.default = lamatic.reply(
        200,
        content=b'{"errors": [{"message": "Invalid API key"}]}',
        headers={"Content-Type": "text/event-stream"},
    )

    with pytest.raises(LamaticAuthenticationError):
        list(lamatic.client(max_retries=0).stream_flow("chat", {"q": "x"}))
