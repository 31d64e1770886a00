"""Server-Sent Event plans built by the test server for streamed executions."""

from __future__ import annotations

import json
from typing import Any

import pytest

from langchain_lamatic.testing import StreamOptions
from langchain_lamatic.testing._streaming import StreamPlan, build_stream_plan

PAYLOAD = {"topic": "queues"}
RESULT = {"answer": "Bounded queues keep latency flat.", "count": 1}


def chunks(plan: StreamPlan) -> list[Any]:
    """Decode the chunk of every `data:` frame except `[DONE]`."""
    decoded = []
    for event in plan.events:
        if event.is_data and "[DONE]" not in event.text:
            body = event.text.removeprefix("data: ").strip()
            decoded.append(json.loads(body)["data"]["executeWorkflowWithStream"])
    return decoded


def test_frames_follow_the_documented_order() -> None:
    frames = chunks(build_stream_plan(StreamOptions(token_size=10), PAYLOAD, RESULT, None))
    assert frames[0]["nodeId"] == "triggerNode_1"
    assert [frame["status"] for frame in frames[1:-2]] == ["streaming"] * 4
    assert frames[-2]["isNodeExecutionFinished"] is True
    assert frames[-1] == {
        "status": "success",
        "nodeId": "",
        "data": RESULT,
        "isNodeExecutionFinished": True,
        "isFlowExecutionFinished": True,
    }


def test_deltas_rebuild_the_first_string_value() -> None:
    frames = chunks(build_stream_plan(StreamOptions(token_size=3), PAYLOAD, RESULT, None))
    deltas = [f["data"]["generatedResponse"] for f in frames if f["status"] == "streaming"]
    assert "".join(deltas) == RESULT["answer"]
    assert all(len(delta) <= 3 for delta in deltas)


def test_completion_frame_repeats_text_with_meta() -> None:
    frames = chunks(build_stream_plan(StreamOptions(), PAYLOAD, RESULT, None))
    completion = frames[-2]
    assert completion["data"]["generatedResponse"] == RESULT["answer"]
    assert completion["data"]["_meta"]["completion_tokens"] == len(frames) - 3
    assert completion["data"]["_meta"]["cost"] > 0


def test_repeat_text_can_be_turned_off() -> None:
    frames = chunks(build_stream_plan(StreamOptions(repeat_text=False), PAYLOAD, RESULT, None))
    assert "generatedResponse" not in frames[-2]["data"]


def test_text_function_receives_the_payload() -> None:
    options = StreamOptions(text=lambda payload: f"about {payload['topic']}", token_size=100)
    frames = chunks(build_stream_plan(options, PAYLOAD, RESULT, None))
    assert frames[1]["data"]["generatedResponse"] == "about queues"


def test_flow_without_tokens_sends_trigger_and_final_frames() -> None:
    frames = chunks(build_stream_plan(StreamOptions(tokens=False), PAYLOAD, RESULT, None))
    assert [frame["nodeId"] for frame in frames] == ["triggerNode_1", ""]


def test_handler_failure_ends_with_an_error_frame() -> None:
    frames = chunks(build_stream_plan(StreamOptions(), PAYLOAD, None, "node broke"))
    assert frames[-1] == {
        "status": "error",
        "nodeId": "LLMNode_1",
        "data": {"errorMsg": "node broke"},
    }


def test_error_option_replaces_the_final_frames() -> None:
    plan = build_stream_plan(StreamOptions(error="quota", token_size=100), PAYLOAD, RESULT, None)
    frames = chunks(plan)
    assert frames[-1]["data"] == {"errorMsg": "quota"}
    assert not any(frame.get("isFlowExecutionFinished") for frame in frames)


def test_crlf_keep_alive_null_and_done_options() -> None:
    options = StreamOptions(crlf=True, keep_alive=True, null_chunks=True, done_marker=True)
    plan = build_stream_plan(options, PAYLOAD, RESULT, None)
    texts = [event.text for event in plan.events]
    assert texts[0] == ": keep-alive\r\n\r\n"
    assert all(text.endswith("\r\n\r\n") for text in texts)
    assert texts[-1] == "data: [DONE]\r\n\r\n"
    assert chunks(plan).count(None) == 2


def test_cut_after_stops_before_the_final_frame() -> None:
    plan = build_stream_plan(StreamOptions(cut_after=2, done_marker=True), PAYLOAD, RESULT, None)
    frames = chunks(plan)
    assert len(frames) == 2
    assert plan.abort is False
    assert "[DONE]" not in plan.events[-1].text


def test_cut_abruptly_marks_the_plan_for_reset() -> None:
    plan = build_stream_plan(StreamOptions(cut_after=1, cut_abruptly=True), PAYLOAD, RESULT, None)
    assert plan.abort is True


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"token_size": 0}, "token_size"),
        ({"frame_delay": -1.0}, "frame_delay"),
        ({"cut_after": -1}, "cut_after"),
        ({"cut_abruptly": True}, "cut_abruptly needs cut_after"),
        ({"node_id": ""}, "node_id"),
    ],
)
def test_invalid_options_raise(kwargs: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        StreamOptions(**kwargs)
