"""Async flows on a MockTransport: checkStatus parsing, the poll loop, and LamaticFlow waiting."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from langchain_core.callbacks import BaseCallbackHandler

from langchain_lamatic import (
    LamaticAgent,
    LamaticExecutionError,
    LamaticFlow,
    LamaticResponseError,
    LamaticServerError,
    LamaticTimeoutError,
)
from langchain_lamatic._polling import (
    MIN_POLL_INTERVAL,
    PollProgress,
    PollSchedule,
    StatusReport,
    parse_status_report,
    pending_request_id,
)

if TYPE_CHECKING:
    from tests.unit.conftest import MockLamatic, SleepRecorder

LOOPBACK_ENDPOINT = "http://127.0.0.1:9/graphql"
REQUEST_ID = "req-42"
RESULT = {"summary": "done"}

DOCUMENTED_DONE = {
    "status": "success",
    "input": {"url": "https://example.org"},
    "output": RESULT,
    "nodes": [{"nodeId": "LLMNode_1", "status": "success", "output": {"text": "x"}}],
    "statusCode": 200,
    "timeTakenInSeconds": 4.2,
}
DATA_OUTPUT_DONE = {"status": "success", "data": {"output": {"result": RESULT}}}


def status_reply(value: Any) -> Any:
    """Return a handler returning ``data.checkStatus`` with ``value``."""

    def build(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"data": {"checkStatus": value}}, request=request)

    return build


def ack_reply(result: Any, *, status: str = "success") -> Any:
    """Return a handler returning ``executeWorkflow`` with an async acknowledgement."""

    def build(request: httpx.Request) -> httpx.Response:
        data = {"executeWorkflow": {"status": status, "result": result, "requestId": None}}
        return httpx.Response(200, json={"data": data}, request=request)

    return build


def operations(lamatic: MockLamatic) -> list[str]:
    names = []
    for body in lamatic.bodies():
        query = body["query"]
        names.append("checkStatus" if "checkStatus(" in query else "executeWorkflow")
    return names


# --- Parsing checkStatus responses ------------------------------------------------------------


def test_documented_shape_maps_output_to_result() -> None:
    answer = parse_status_report(DOCUMENTED_DONE, request_id=REQUEST_ID)

    assert answer.status == "success"
    assert answer.output == RESULT
    assert answer.metadata["timeTakenInSeconds"] == 4.2
    assert answer.metadata["nodes"][0]["nodeId"] == "LLMNode_1"


def test_data_output_shape_maps_result() -> None:
    answer = parse_status_report(DATA_OUTPUT_DONE, request_id=REQUEST_ID)

    assert answer.output == RESULT
    assert answer.finished


@pytest.mark.parametrize("running", ["in-progress", "in_progress", "IN_PROGRESS"])
def test_both_running_spellings_read_as_in_progress(running: str) -> None:
    answer = parse_status_report({"status": running}, request_id=REQUEST_ID)

    assert answer.status == "in-progress"
    assert not answer.finished


def test_selection_set_answer_with_whole_status_object() -> None:
    value = {"status": "success", "result": DOCUMENTED_DONE}

    answer = parse_status_report(value, request_id=REQUEST_ID)

    assert answer.output == RESULT
    assert answer.metadata["statusCode"] == 200


def test_selection_set_answer_with_output_as_result() -> None:
    answer = parse_status_report({"status": "success", "result": RESULT}, request_id=REQUEST_ID)

    assert answer.output == RESULT


def test_status_object_sent_as_json_string_is_decoded() -> None:
    answer = parse_status_report(json.dumps(DATA_OUTPUT_DONE), request_id=REQUEST_ID)

    assert answer.output == RESULT


def test_bare_status_string_is_read() -> None:
    answer = parse_status_report("in_progress", request_id=REQUEST_ID)

    assert answer.status == "in-progress"


def test_failure_text_comes_from_data_output_result() -> None:
    value = {"status": "failed", "data": {"output": {"result": {"errorMsg": "LLM quota hit"}}}}

    answer = parse_status_report(value, request_id=REQUEST_ID)

    assert answer.failed
    assert answer.failure_text == "LLM quota hit"


def test_failure_text_comes_from_error_field() -> None:
    value = {"status": "error", "output": None, "error": {"message": "node crashed"}}

    answer = parse_status_report(value, request_id=REQUEST_ID)

    assert answer.failure_text == "node crashed"


def test_failure_text_comes_from_failed_node() -> None:
    value = {
        "status": "failed",
        "output": {},
        "nodes": [
            {"nodeId": "triggerNode_1", "status": "success", "output": {}},
            {"nodeId": "codeNode_2", "status": "error", "error": "division by zero"},
        ],
    }

    answer = parse_status_report(value, request_id=REQUEST_ID)

    assert answer.failure_text == "division by zero (node 'codeNode_2')"


def test_failure_without_text_says_so() -> None:
    answer = parse_status_report({"status": "failed"}, request_id=REQUEST_ID)

    assert answer.failure_text == "no error message was returned"


@pytest.mark.parametrize("value", [{"output": RESULT}, {"status": 3}, [1, 2], 7])
def test_answer_without_status_string_raises_response_error(value: Any) -> None:
    with pytest.raises(LamaticResponseError) as caught:
        parse_status_report(value, request_id=REQUEST_ID)

    assert caught.value.request_id == REQUEST_ID


# --- Recognising async acknowledgements -----------------------------------------------------


@pytest.mark.parametrize(
    "result",
    [
        {"requestId": REQUEST_ID},
        {"request_id": REQUEST_ID},
        {"data": {"requestId": REQUEST_ID}},
        {"requestId": REQUEST_ID, "status": "queued", "message": "accepted"},
    ],
)
def test_acknowledgement_shapes_give_the_request_id(result: Any) -> None:
    assert pending_request_id("success", result, None) == REQUEST_ID


def test_output_with_request_id_is_realtime() -> None:
    result = {"requestId": REQUEST_ID, "summary": "a realtime flow's own output"}

    assert pending_request_id("success", result, REQUEST_ID) is None


def test_empty_output_with_request_id_is_realtime() -> None:
    assert pending_request_id("success", None, REQUEST_ID) is None


def test_running_status_is_an_acknowledgement() -> None:
    assert pending_request_id("in_progress", None, REQUEST_ID) == REQUEST_ID


# --- The schedule ---------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_schedule_raises_when_next_poll_falls_after_deadline() -> None:
    clock = FakeClock()
    schedule = PollSchedule(request_id=REQUEST_ID, interval=3.0, deadline=7.0, clock=clock)
    running = StatusReport(status="in-progress")

    for expected_wait in (0.0, 3.0, 3.0):
        assert schedule.wait_before_poll() == expected_wait
        clock.now += expected_wait
        schedule.begin_poll()
        schedule.progress(running)

    with pytest.raises(LamaticTimeoutError) as caught:
        schedule.wait_before_poll()

    assert caught.value.request_id == REQUEST_ID
    assert caught.value.attempts == 3


def test_schedule_counts_interval_from_poll_start() -> None:
    clock = FakeClock()
    schedule = PollSchedule(request_id=REQUEST_ID, interval=3.0, deadline=None, clock=clock)
    schedule.begin_poll()
    clock.now += 1.0  # the poll took a second

    progress = schedule.progress(StatusReport(status="in-progress"))

    assert progress.next_poll_in == pytest.approx(2.0)
    assert schedule.wait_before_poll() == pytest.approx(2.0)


def test_progress_reports_attempt_elapsed_and_status() -> None:
    clock = FakeClock()
    schedule = PollSchedule(
        request_id=REQUEST_ID, interval=3.0, deadline=None, clock=clock, flow_id="f"
    )
    schedule.begin_poll()
    clock.now += 0.5

    progress = schedule.progress(StatusReport(status="success", output=RESULT))

    assert progress.to_dict() == {
        "request_id": REQUEST_ID,
        "attempt": 1,
        "elapsed": 0.5,
        "status": "success",
        "next_poll_in": None,
        "flow_id": "f",
    }


# --- LamaticClient.check_status -------------------------------------------------------------


def test_single_poll_returns_running_status(lamatic: MockLamatic, no_sleep: SleepRecorder) -> None:
    lamatic.respond(status_reply({"status": "in_progress"}))

    response = lamatic.client().check_status(REQUEST_ID)

    assert response.status == "in-progress"
    assert response.request_id == REQUEST_ID
    assert no_sleep.waits == []


def test_check_status_sends_request_id_without_selection_set(lamatic: MockLamatic) -> None:
    lamatic.respond(status_reply(DOCUMENTED_DONE))

    lamatic.client().check_status(REQUEST_ID)

    body = lamatic.bodies()[0]
    assert body["variables"] == {"requestId": REQUEST_ID}
    assert "checkStatus(requestId: $requestId)\n}" in body["query"]


def test_wait_polls_until_success(lamatic: MockLamatic, no_sleep: SleepRecorder) -> None:
    lamatic.respond(
        status_reply({"status": "in-progress"}),
        status_reply({"status": "in_progress"}),
        status_reply(DOCUMENTED_DONE),
    )

    response = lamatic.client().check_status(REQUEST_ID, wait=True)

    assert response.result == RESULT
    assert response.metadata["statusCode"] == 200
    assert len(lamatic.requests) == 3


def test_wait_keeps_three_seconds_between_polls(
    lamatic: MockLamatic, no_sleep: SleepRecorder
) -> None:
    lamatic.respond(status_reply({"status": "in-progress"}), status_reply(DATA_OUTPUT_DONE))

    lamatic.client().check_status(REQUEST_ID, wait=True)

    poll_waits = [wait for wait in no_sleep.waits if wait > 0]
    assert poll_waits
    assert all(wait >= MIN_POLL_INTERVAL - 1.0 for wait in poll_waits)


def test_short_interval_is_raised_for_remote_endpoint(
    lamatic: MockLamatic, no_sleep: SleepRecorder, caplog: pytest.LogCaptureFixture
) -> None:
    lamatic.respond(status_reply({"status": "in-progress"}), status_reply(DATA_OUTPUT_DONE))

    with caplog.at_level(logging.WARNING, logger="langchain_lamatic.client"):
        lamatic.client().check_status(REQUEST_ID, wait=True, poll_interval=0.123)

    assert max(no_sleep.waits) > 2.0
    assert any("0.123" in record.getMessage() for record in caplog.records)


def test_short_interval_is_kept_for_loopback_endpoint(lamatic: MockLamatic) -> None:
    lamatic.respond(status_reply({"status": "in-progress"}), status_reply(DATA_OUTPUT_DONE))
    client = lamatic.client(endpoint=LOOPBACK_ENDPOINT)

    response = client.check_status(REQUEST_ID, wait=True, poll_interval=0.01, deadline=30)

    assert response.result == RESULT


def test_failed_run_raises_execution_error_with_request_id(
    lamatic: MockLamatic, no_sleep: SleepRecorder
) -> None:
    failed = {"status": "failed", "data": {"output": {"result": {"errorMsg": "node timed out"}}}}
    lamatic.respond(status_reply({"status": "in-progress"}), status_reply(failed))

    with pytest.raises(LamaticExecutionError) as caught:
        lamatic.client().check_status(REQUEST_ID, wait=True)

    assert caught.value.request_id == REQUEST_ID
    assert "node timed out" in str(caught.value)


def test_single_poll_of_failed_run_raises(lamatic: MockLamatic) -> None:
    lamatic.respond(status_reply({"status": "error", "output": {"errorMsg": "bad input"}}))

    with pytest.raises(LamaticExecutionError, match="bad input"):
        lamatic.client().check_status(REQUEST_ID)


def test_deadline_raises_timeout_with_resume_hint(lamatic: MockLamatic) -> None:
    lamatic.default = status_reply({"status": "in-progress"})
    client = lamatic.client(endpoint=LOOPBACK_ENDPOINT)

    with pytest.raises(LamaticTimeoutError) as caught:
        client.check_status(REQUEST_ID, wait=True, poll_interval=0.02, deadline=0.1)

    assert caught.value.request_id == REQUEST_ID
    assert f"check_status({REQUEST_ID!r}, wait=True)" in str(caught.value)
    assert len(lamatic.requests) >= 2


def test_poll_is_retried_after_http_500(lamatic: MockLamatic, no_sleep: SleepRecorder) -> None:
    lamatic.respond(lamatic.reply(500, json_body={"errors": [{"message": "boom"}]}))
    lamatic.respond(status_reply(DATA_OUTPUT_DONE))

    response = lamatic.client().check_status(REQUEST_ID)

    assert response.result == RESULT
    assert len(lamatic.requests) == 2


def test_poll_is_retried_after_read_timeout(lamatic: MockLamatic, no_sleep: SleepRecorder) -> None:
    lamatic.respond(httpx.ReadTimeout("slow"), status_reply(DATA_OUTPUT_DONE))

    response = lamatic.client().check_status(REQUEST_ID)

    assert response.result == RESULT


def test_poll_failure_carries_request_id(lamatic: MockLamatic, no_sleep: SleepRecorder) -> None:
    lamatic.default = lamatic.reply(500, json_body={"errors": [{"message": "boom"}]})

    with pytest.raises(LamaticServerError) as caught:
        lamatic.client(max_retries=1).check_status(REQUEST_ID, wait=True)

    assert caught.value.request_id == REQUEST_ID


def test_server_requiring_selection_set_gets_one(lamatic: MockLamatic) -> None:
    lamatic.respond(
        lamatic.graphql_errors(
            'Field "checkStatus" of type "StatusResult" must have a selection of subfields. '
            'Did you mean "checkStatus { ... }"?',
            status=400,
        ),
        status_reply({"status": "success", "result": RESULT}),
        status_reply({"status": "success", "result": RESULT}),
    )
    client = lamatic.client()

    first = client.check_status(REQUEST_ID)
    client.check_status(REQUEST_ID)

    assert first.result == RESULT
    queries = [body["query"] for body in lamatic.bodies()]
    assert "{\n    status\n    result\n  }" in queries[1]
    assert "{\n    status\n    result\n  }" in queries[2]


@pytest.mark.parametrize("request_id", ["", "   "])
def test_empty_request_id_is_rejected_before_sending(lamatic: MockLamatic, request_id: str) -> None:
    with pytest.raises(ValueError, match="request_id"):
        lamatic.client().check_status(request_id)

    assert lamatic.requests == []


@pytest.mark.parametrize(
    ("interval", "error"),
    [(0, ValueError), (-1.0, ValueError), (float("nan"), ValueError), (True, TypeError)],
)
def test_invalid_poll_interval_is_rejected_before_sending(
    lamatic: MockLamatic, interval: Any, error: type[Exception]
) -> None:
    with pytest.raises(error, match="poll_interval"):
        lamatic.client().check_status(REQUEST_ID, wait=True, poll_interval=interval)

    assert lamatic.requests == []


def test_invalid_deadline_is_rejected_before_sending(lamatic: MockLamatic) -> None:
    with pytest.raises(ValueError, match="deadline"):
        lamatic.client().check_status(REQUEST_ID, wait=True, deadline=0)

    assert lamatic.requests == []


def test_on_poll_gets_progress_for_every_poll(
    lamatic: MockLamatic, no_sleep: SleepRecorder
) -> None:
    lamatic.respond(status_reply({"status": "in-progress"}), status_reply(DATA_OUTPUT_DONE))
    seen: list[PollProgress] = []

    lamatic.client().check_status(REQUEST_ID, wait=True, on_poll=seen.append)

    assert [progress.attempt for progress in seen] == [1, 2]
    assert [progress.status for progress in seen] == ["in-progress", "success"]
    assert seen[-1].finished


def test_async_callback_rejected_on_sync_path(
    lamatic: MockLamatic, no_sleep: SleepRecorder
) -> None:
    lamatic.respond(status_reply(DATA_OUTPUT_DONE))

    async def on_poll(progress: PollProgress) -> None:
        return None

    with pytest.raises(TypeError, match="acheck_status"):
        lamatic.client().check_status(REQUEST_ID, wait=True, on_poll=on_poll)


async def test_acheck_status_waits_and_awaits_async_callback(
    lamatic: MockLamatic, no_sleep: SleepRecorder
) -> None:
    lamatic.respond(status_reply({"status": "in_progress"}), status_reply(DOCUMENTED_DONE))
    seen: list[str] = []

    async def on_poll(progress: PollProgress) -> None:
        seen.append(progress.status)

    response = await lamatic.client().acheck_status(REQUEST_ID, wait=True, on_poll=on_poll)

    assert response.result == RESULT
    assert seen == ["in-progress", "success"]


async def test_acheck_status_deadline_raises_timeout(lamatic: MockLamatic) -> None:
    lamatic.default = status_reply({"status": "in-progress"})
    client = lamatic.client(endpoint=LOOPBACK_ENDPOINT)

    with pytest.raises(LamaticTimeoutError) as caught:
        await client.acheck_status(REQUEST_ID, wait=True, poll_interval=0.02, deadline=0.1)

    assert caught.value.request_id == REQUEST_ID


async def test_cancelled_wait_stops_polling(lamatic: MockLamatic) -> None:
    lamatic.default = status_reply({"status": "in-progress"})
    client = lamatic.client(endpoint=LOOPBACK_ENDPOINT)
    task = asyncio.create_task(client.acheck_status(REQUEST_ID, wait=True, poll_interval=0.05))
    await asyncio.sleep(0.2)

    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    polls = len(lamatic.requests)
    await asyncio.sleep(0.2)

    assert len(lamatic.requests) == polls


# --- LamaticFlow on async flows -------------------------------------------------------------


def async_flow(lamatic: MockLamatic, **settings: Any) -> LamaticFlow:
    client = lamatic.client(endpoint=LOOPBACK_ENDPOINT)
    return LamaticFlow(flow_id="slow-flow", client=client, poll_interval=0.01, **settings)


@pytest.mark.parametrize("done", [DOCUMENTED_DONE, DATA_OUTPUT_DONE])
def test_invoke_on_async_flow_returns_final_result(lamatic: MockLamatic, done: Any) -> None:
    lamatic.respond(
        ack_reply({"requestId": REQUEST_ID}),
        status_reply({"status": "in-progress"}),
        status_reply(done),
    )

    output = async_flow(lamatic).invoke({"topic": "queues"})

    assert output == RESULT
    assert operations(lamatic) == ["executeWorkflow", "checkStatus", "checkStatus"]


@pytest.mark.parametrize(
    "acknowledgement",
    [{"request_id": REQUEST_ID}, {"data": {"requestId": REQUEST_ID}}],
)
def test_invoke_reads_other_acknowledgement_shapes(
    lamatic: MockLamatic, acknowledgement: Any
) -> None:
    lamatic.respond(ack_reply(acknowledgement), status_reply(DATA_OUTPUT_DONE))

    assert async_flow(lamatic).invoke({}) == RESULT
    assert lamatic.bodies()[1]["variables"] == {"requestId": REQUEST_ID}


def test_invoke_applies_output_key_to_final_result(lamatic: MockLamatic) -> None:
    lamatic.respond(ack_reply({"requestId": REQUEST_ID}), status_reply(DATA_OUTPUT_DONE))

    assert async_flow(lamatic, output_key="summary").invoke({}) == "done"


def test_invoke_without_waiting_returns_request_id(lamatic: MockLamatic) -> None:
    lamatic.respond(ack_reply({"requestId": REQUEST_ID}))

    output = async_flow(lamatic, wait_for_async_result=False, output_key="summary").invoke({})

    assert output == {"requestId": REQUEST_ID, "status": "success"}
    assert len(lamatic.requests) == 1


def test_invoke_deadline_raises_timeout_with_request_id(lamatic: MockLamatic) -> None:
    lamatic.respond(ack_reply({"requestId": REQUEST_ID}))
    lamatic.default = status_reply({"status": "in-progress"})

    with pytest.raises(LamaticTimeoutError) as caught:
        async_flow(lamatic, poll_deadline=0.1).invoke({})

    assert caught.value.request_id == REQUEST_ID
    assert caught.value.flow_id == "slow-flow"


def test_failed_async_run_raises_execution_error(lamatic: MockLamatic) -> None:
    failed = {"status": "failed", "data": {"output": {"result": {"errorMsg": "scraper blocked"}}}}
    lamatic.respond(ack_reply({"requestId": REQUEST_ID}), status_reply(failed))

    with pytest.raises(LamaticExecutionError) as caught:
        async_flow(lamatic).invoke({})

    assert caught.value.request_id == REQUEST_ID
    assert caught.value.flow_id == "slow-flow"
    assert "scraper blocked" in str(caught.value)


def test_agent_invoke_waits_for_async_run(lamatic: MockLamatic) -> None:
    def agent_ack(request: httpx.Request) -> httpx.Response:
        data = {"executeAgent": {"status": "success", "result": {"requestId": REQUEST_ID}}}
        return httpx.Response(200, json={"data": data}, request=request)

    lamatic.respond(agent_ack, status_reply(DATA_OUTPUT_DONE))
    client = lamatic.client(endpoint=LOOPBACK_ENDPOINT)
    agent = LamaticAgent(agent_id="research-agent", client=client, poll_interval=0.01)

    assert agent.invoke({"question": "why?"}) == RESULT


def test_realtime_flow_is_not_polled(lamatic: MockLamatic) -> None:
    lamatic.respond(lamatic.success(RESULT, request_id=REQUEST_ID))

    assert async_flow(lamatic).invoke({}) == RESULT
    assert len(lamatic.requests) == 1


class CustomEventRecorder(BaseCallbackHandler):
    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []

    def on_custom_event(self, name: str, data: Any, **kwargs: Any) -> None:
        self.events.append((name, data))


def test_invoke_dispatches_poll_events(lamatic: MockLamatic) -> None:
    lamatic.respond(
        ack_reply({"requestId": REQUEST_ID}),
        status_reply({"status": "in-progress"}),
        status_reply(DATA_OUTPUT_DONE),
    )
    recorder = CustomEventRecorder()

    async_flow(lamatic).invoke({}, config={"callbacks": [recorder]})

    assert [name for name, _ in recorder.events] == ["lamatic_poll", "lamatic_poll"]
    assert [data["status"] for _, data in recorder.events] == ["in-progress", "success"]
    assert recorder.events[0][1]["request_id"] == REQUEST_ID
    assert recorder.events[0][1]["flow_id"] == "slow-flow"


async def test_ainvoke_poll_events_show_in_astream_events(lamatic: MockLamatic) -> None:
    lamatic.respond(
        ack_reply({"requestId": REQUEST_ID}),
        status_reply({"status": "in_progress"}),
        status_reply(DOCUMENTED_DONE),
    )
    flow = async_flow(lamatic, streaming=False)

    events = [event async for event in flow.astream_events({}, version="v2")]

    polls = [event for event in events if event["event"] == "on_custom_event"]
    assert [event["name"] for event in polls] == ["lamatic_poll", "lamatic_poll"]
    assert [event["data"]["attempt"] for event in polls] == [1, 2]
    assert events[-1]["data"]["output"] == RESULT


async def test_ainvoke_on_async_flow_returns_final_result(lamatic: MockLamatic) -> None:
    lamatic.respond(
        ack_reply({"requestId": REQUEST_ID}),
        status_reply({"status": "in-progress"}),
        status_reply(DATA_OUTPUT_DONE),
    )

    assert await async_flow(lamatic).ainvoke({}) == RESULT


def test_flow_rejects_non_positive_poll_settings() -> None:
    with pytest.raises(ValueError, match="poll_interval"):
        LamaticFlow(
            flow_id="f",
            endpoint=LOOPBACK_ENDPOINT,
            project_id="p",
            api_key="lt-abcdefghij",
            poll_interval=0,
        )
    with pytest.raises(ValueError, match="poll_deadline"):
        LamaticFlow(
            flow_id="f",
            endpoint=LOOPBACK_ENDPOINT,
            project_id="p",
            api_key="lt-abcdefghij",
            poll_deadline=-5,
        )
