"""Streaming on a MockTransport: stream_flow, astream_flow and LamaticFlow.stream."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from langchain_core.output_parsers import StrOutputParser
from pydantic import BaseModel

from langchain_lamatic import (
    LamaticAuthenticationError,
    LamaticBadRequestError,
    LamaticExecutionError,
    LamaticFlow,
    LamaticNotFoundError,
    LamaticResponseError,
    LamaticServerError,
    LamaticTimeoutError,
)
from langchain_lamatic._stream_client import reclaim_cancelled_connections
from langchain_lamatic.streaming import FlowCompleted, NodeCompleted, TextDelta

if TYPE_CHECKING:
    from tests.unit.conftest import MockLamatic, SleepRecorder

FLOW_ID = "support-answer"
PAYLOAD = {"question": "Why queues?"}
DELTAS = ["Queues ", "absorb ", "bursts."]
TEXT = "".join(DELTAS)
OUTPUT = {"answer": TEXT, "sources": ["a", "b"]}
LOOPBACK_ENDPOINT = "http://127.0.0.1:9/graphql"


def frame(chunk: Any, newline: bytes = b"\n") -> bytes:
    body = json.dumps({"data": {"executeWorkflowWithStream": chunk}}).encode()
    return b"data: " + body + newline + newline


def flow_frames(output: Any = OUTPUT, deltas: list[str] = DELTAS) -> list[bytes]:
    frames = [
        frame(
            {
                "status": "success",
                "nodeId": "triggerNode_1",
                "data": PAYLOAD,
                "isNodeExecutionFinished": True,
            }
        )
    ]
    for delta in deltas:
        frames.append(
            frame(
                {"status": "streaming", "nodeId": "LLMNode_1", "data": {"generatedResponse": delta}}
            )
        )
    if deltas:
        frames.append(
            frame(
                {
                    "status": "success",
                    "nodeId": "LLMNode_1",
                    "data": {"generatedResponse": "".join(deltas), "_meta": {"tokens": 3}},
                    "isNodeExecutionFinished": True,
                }
            )
        )
    frames.append(
        frame({"status": "success", "nodeId": "", "data": output, "isFlowExecutionFinished": True})
    )
    return frames


class ChunkStream(httpx.SyncByteStream, httpx.AsyncByteStream):
    """A response body delivered in the given pieces; records whether it was closed.

    An exception in ``pieces`` is raised when reached, like a transport failure mid-body.
    """

    def __init__(self, pieces: list[bytes | Exception]) -> None:
        self.pieces = pieces
        self.delivered = 0
        self.closed = False

    def __iter__(self) -> Iterator[bytes]:
        for piece in self.pieces:
            if isinstance(piece, Exception):
                raise piece
            self.delivered += 1
            yield piece

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for piece in self.pieces:
            if isinstance(piece, Exception):
                raise piece
            self.delivered += 1
            yield piece

    def close(self) -> None:
        self.closed = True

    async def aclose(self) -> None:
        self.closed = True


class StreamReply:
    """A handler returning an event stream made of ``pieces``."""

    def __init__(self, pieces: list[bytes | Exception]) -> None:
        self.pieces = pieces
        self.streams: list[ChunkStream] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        stream = ChunkStream(self.pieces)
        self.streams.append(stream)
        return httpx.Response(
            200,
            headers={"content-type": "text/event-stream; charset=utf-8"},
            stream=stream,
            request=request,
        )

    @property
    def closed(self) -> bool:
        return all(stream.closed for stream in self.streams)


def json_reply(data: Any, operation: str = "executeWorkflowWithStream") -> Any:
    def build(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"data": {operation: data}}, request=request)

    return build


# --- stream_flow ----------------------------------------------------------------------------


def test_stream_flow_yields_typed_events_in_order(lamatic: MockLamatic) -> None:
    lamatic.respond(StreamReply(flow_frames()))

    events = list(lamatic.client().stream_flow(FLOW_ID, PAYLOAD))

    kinds = [type(event).__name__ for event in events]
    assert kinds == ["NodeCompleted", *["TextDelta"] * 3, "NodeCompleted", "FlowCompleted"]
    final = events[-1]
    assert isinstance(final, FlowCompleted)
    assert final.output == OUTPUT
    assert final.text == TEXT


def test_stream_request_is_subscription_accepting_event_stream(lamatic: MockLamatic) -> None:
    lamatic.respond(StreamReply(flow_frames()))

    list(lamatic.client().stream_flow(FLOW_ID, PAYLOAD))

    request = lamatic.requests[0]
    body = json.loads(request.content)
    assert request.headers["accept"] == "text/event-stream"
    assert body["query"].startswith("subscription ExecuteWorkflowWithStream")
    assert body["variables"] == {"workflowId": FLOW_ID, "payload": PAYLOAD}


def test_frames_split_into_small_reads_decode(lamatic: MockLamatic) -> None:
    body = b"".join(flow_frames()).replace(b"\n", b"\r\n")
    pieces: list[bytes | Exception] = [body[index : index + 5] for index in range(0, len(body), 5)]
    lamatic.respond(StreamReply(pieces))

    events = list(lamatic.client().stream_flow(FLOW_ID, PAYLOAD))

    assert [event.text for event in events if isinstance(event, TextDelta)] == DELTAS


def test_stream_sends_nothing_until_iterated(lamatic: MockLamatic) -> None:
    events = lamatic.client().stream_flow(FLOW_ID, PAYLOAD)

    assert lamatic.requests == []
    events.close()


def test_bad_payload_is_rejected_by_the_call_itself(lamatic: MockLamatic) -> None:
    with pytest.raises(TypeError, match="payload"):
        lamatic.client().stream_flow(FLOW_ID, ["not", "a", "mapping"])  # type: ignore[arg-type]

    assert lamatic.requests == []


def test_json_error_before_stream_is_classified(lamatic: MockLamatic) -> None:
    lamatic.respond(lamatic.reply(401, json_body={"errors": [{"message": "Invalid API key"}]}))

    with pytest.raises(LamaticAuthenticationError):
        list(lamatic.client().stream_flow(FLOW_ID, PAYLOAD))

    assert len(lamatic.requests) == 1


def test_graphql_error_with_http_200_is_classified(lamatic: MockLamatic) -> None:
    lamatic.respond(lamatic.graphql_errors("Flow not found"))

    with pytest.raises(LamaticNotFoundError):
        list(lamatic.client().stream_flow(FLOW_ID, PAYLOAD))


def test_rate_limit_before_stream_is_retried(lamatic: MockLamatic, no_sleep: SleepRecorder) -> None:
    lamatic.respond(
        lamatic.reply(
            429, json_body={"errors": [{"message": "rate limited"}]}, headers={"Retry-After": "2"}
        ),
        StreamReply(flow_frames()),
    )

    events = list(lamatic.client().stream_flow(FLOW_ID, PAYLOAD))

    assert isinstance(events[-1], FlowCompleted)
    assert no_sleep.waits == [2.0]


def test_connect_error_before_stream_is_retried(
    lamatic: MockLamatic, no_sleep: SleepRecorder
) -> None:
    lamatic.respond(httpx.ConnectError("refused"), StreamReply(flow_frames()))

    events = list(lamatic.client().stream_flow(FLOW_ID, PAYLOAD))

    assert isinstance(events[-1], FlowCompleted)
    assert len(lamatic.requests) == 2


def test_http_500_before_stream_is_not_retried(
    lamatic: MockLamatic, no_sleep: SleepRecorder
) -> None:
    lamatic.default = lamatic.reply(500, json_body={"errors": [{"message": "boom"}]})

    with pytest.raises(LamaticServerError):
        list(lamatic.client().stream_flow(FLOW_ID, PAYLOAD))

    assert len(lamatic.requests) == 1


def test_cut_stream_raises_response_error(lamatic: MockLamatic) -> None:
    lamatic.respond(StreamReply(flow_frames()[:-1]))

    with pytest.raises(LamaticResponseError, match="ended before the flow finished"):
        list(lamatic.client().stream_flow(FLOW_ID, PAYLOAD))


def test_error_frame_raises_execution_error(lamatic: MockLamatic) -> None:
    error = frame(
        {"status": "error", "nodeId": "LLMNode_1", "data": {"errorMsg": "quota exceeded"}}
    )
    reply = StreamReply([*flow_frames()[:2], error])
    lamatic.respond(reply)

    with pytest.raises(LamaticExecutionError, match="quota exceeded"):
        list(lamatic.client().stream_flow(FLOW_ID, PAYLOAD))

    assert reply.closed


def test_connection_lost_mid_stream_raises_without_retry(
    lamatic: MockLamatic, no_sleep: SleepRecorder
) -> None:
    reply = StreamReply([*flow_frames()[:3], httpx.RemoteProtocolError("peer closed connection")])
    lamatic.respond(reply)

    with pytest.raises(LamaticResponseError) as caught:
        list(lamatic.client().stream_flow(FLOW_ID, PAYLOAD))

    assert isinstance(caught.value.__cause__, httpx.RemoteProtocolError)
    assert len(lamatic.requests) == 1
    assert reply.closed


def test_read_timeout_mid_stream_raises_timeout(lamatic: MockLamatic) -> None:
    lamatic.respond(StreamReply([*flow_frames()[:2], httpx.ReadTimeout("no data")]))

    with pytest.raises(LamaticTimeoutError, match="read timeout"):
        list(lamatic.client().stream_flow(FLOW_ID, PAYLOAD))


def test_leaving_with_block_closes_response(lamatic: MockLamatic) -> None:
    reply = StreamReply(flow_frames())
    lamatic.respond(reply)

    with lamatic.client().stream_flow(FLOW_ID, PAYLOAD) as events:
        first = next(events)

    assert isinstance(first, NodeCompleted)
    assert reply.closed
    assert reply.streams[0].delivered == 1


def test_breaking_out_of_loop_closes_response(lamatic: MockLamatic) -> None:
    reply = StreamReply(flow_frames())
    lamatic.respond(reply)

    for event in lamatic.client().stream_flow(FLOW_ID, PAYLOAD):
        if isinstance(event, TextDelta):
            break

    assert reply.closed


def test_frames_after_flow_completed_are_ignored(lamatic: MockLamatic) -> None:
    trailing = frame({"status": "success", "nodeId": "late", "isNodeExecutionFinished": True})
    reply = StreamReply([*flow_frames(), trailing])
    lamatic.respond(reply)

    events = list(lamatic.client().stream_flow(FLOW_ID, PAYLOAD))

    assert isinstance(events[-1], FlowCompleted)
    assert reply.closed


def test_json_data_answer_becomes_one_flow_completed(lamatic: MockLamatic) -> None:
    lamatic.respond(json_reply({"status": "success", "result": OUTPUT, "requestId": "r-1"}))

    events = list(lamatic.client().stream_flow(FLOW_ID, PAYLOAD))

    assert len(events) == 1
    final = events[0]
    assert isinstance(final, FlowCompleted)
    assert final.output == OUTPUT
    assert final.metadata["streamed"] is False
    assert final.metadata["requestId"] == "r-1"


def test_json_failed_answer_raises_execution_error(lamatic: MockLamatic) -> None:
    lamatic.respond(json_reply({"status": "failed", "result": {"errorMsg": "bad"}}))

    with pytest.raises(LamaticExecutionError, match="bad"):
        list(lamatic.client().stream_flow(FLOW_ID, PAYLOAD))


UNSUPPORTED = "Schema is not configured to execute subscription operation."


def test_unsupported_subscription_falls_back_to_execute(lamatic: MockLamatic) -> None:
    lamatic.respond(lamatic.graphql_errors(UNSUPPORTED, status=400), lamatic.success(OUTPUT))

    events = list(lamatic.client().stream_flow(FLOW_ID, PAYLOAD, fallback_to_execute=True))

    assert len(events) == 1
    assert isinstance(events[0], FlowCompleted)
    assert events[0].output == OUTPUT
    second = lamatic.bodies()[1]
    assert "executeWorkflow(" in second["query"]
    assert second["variables"]["payload"] == PAYLOAD


def test_unsupported_subscription_raises_without_fallback(lamatic: MockLamatic) -> None:
    lamatic.respond(lamatic.graphql_errors(UNSUPPORTED, status=400))

    with pytest.raises(LamaticBadRequestError):
        list(lamatic.client().stream_flow(FLOW_ID, PAYLOAD))

    assert len(lamatic.requests) == 1


def test_not_found_does_not_fall_back(lamatic: MockLamatic) -> None:
    lamatic.respond(lamatic.graphql_errors("Flow not found", code="NOT_FOUND"))

    with pytest.raises(LamaticNotFoundError):
        list(lamatic.client().stream_flow(FLOW_ID, PAYLOAD, fallback_to_execute=True))

    assert len(lamatic.requests) == 1


def test_flow_id_naming_subscription_does_not_trigger_fallback(lamatic: MockLamatic) -> None:
    lamatic.respond(lamatic.graphql_errors('Variable "$payload" got invalid value', status=400))

    with pytest.raises(LamaticBadRequestError):
        list(lamatic.client().stream_flow("subscription-digest", PAYLOAD, fallback_to_execute=True))

    assert len(lamatic.requests) == 1


def test_expired_token_is_refreshed_before_stream(lamatic: MockLamatic) -> None:
    lamatic.respond(
        lamatic.reply(403, json_body={"errors": [{"message": "Token expired"}]}),
        StreamReply(flow_frames()),
    )
    client = lamatic.client(
        access_token="old-token-0123456789", access_token_provider=lambda: "new-token-0123456789"
    )

    events = list(client.stream_flow(FLOW_ID, PAYLOAD))

    assert isinstance(events[-1], FlowCompleted)
    assert lamatic.requests[1].headers["x-lamatic-signature"] == "new-token-0123456789"


# --- astream_flow ---------------------------------------------------------------------------


async def test_astream_flow_yields_typed_events(lamatic: MockLamatic) -> None:
    lamatic.respond(StreamReply(flow_frames()))

    events = [event async for event in lamatic.client().astream_flow(FLOW_ID, PAYLOAD)]

    assert [event.text for event in events if isinstance(event, TextDelta)] == DELTAS
    assert isinstance(events[-1], FlowCompleted)


async def test_astream_flow_aclose_closes_response(lamatic: MockLamatic) -> None:
    reply = StreamReply(flow_frames())
    lamatic.respond(reply)

    async with lamatic.client().astream_flow(FLOW_ID, PAYLOAD) as events:
        await events.__anext__()

    assert reply.closed


async def test_astream_flow_cut_stream_raises(lamatic: MockLamatic) -> None:
    reply = StreamReply(flow_frames()[:3])
    lamatic.respond(reply)

    with pytest.raises(LamaticResponseError):
        _ = [event async for event in lamatic.client().astream_flow(FLOW_ID, PAYLOAD)]

    assert reply.closed


async def test_astream_flow_falls_back_when_asked(lamatic: MockLamatic) -> None:
    lamatic.respond(lamatic.reply(406, content=b""), lamatic.success(OUTPUT))

    events = [
        event
        async for event in lamatic.client().astream_flow(FLOW_ID, PAYLOAD, fallback_to_execute=True)
    ]

    assert len(events) == 1
    assert isinstance(events[0], FlowCompleted)
    assert events[0].output == OUTPUT


# --- LamaticFlow.stream ---------------------------------------------------------------------


def streaming_flow(lamatic: MockLamatic, **settings: Any) -> LamaticFlow:
    return LamaticFlow(
        flow_id=FLOW_ID, client=lamatic.client(endpoint=LOOPBACK_ENDPOINT), **settings
    )


def test_stream_yields_text_deltas(lamatic: MockLamatic) -> None:
    lamatic.respond(StreamReply(flow_frames()))

    chunks = list(streaming_flow(lamatic, output_key="answer").stream(PAYLOAD))

    assert chunks == DELTAS


def test_stream_through_str_output_parser_joins_to_output(lamatic: MockLamatic) -> None:
    lamatic.respond(StreamReply(flow_frames()))
    chain = streaming_flow(lamatic, output_key="answer") | StrOutputParser()

    chunks = list(chain.stream(PAYLOAD))

    assert len(chunks) > 1
    assert "".join(chunks) == TEXT


def test_stream_adds_rest_of_selected_output(lamatic: MockLamatic) -> None:
    output = {"answer": TEXT + " More."}
    lamatic.respond(StreamReply(flow_frames(output=output)))

    chunks = list(streaming_flow(lamatic, output_key="answer").stream(PAYLOAD))

    assert chunks == [*DELTAS, " More."]


def test_stream_without_output_key_yields_only_text(lamatic: MockLamatic) -> None:
    lamatic.respond(StreamReply(flow_frames()))

    chunks = list(streaming_flow(lamatic).stream(PAYLOAD))

    assert chunks == DELTAS


def test_stream_ends_on_text_when_output_differs(lamatic: MockLamatic) -> None:
    output = {"answer": "Answer: " + TEXT}
    lamatic.respond(StreamReply(flow_frames(output=output)))

    chunks = list(streaming_flow(lamatic, output_key="answer").stream(PAYLOAD))

    assert chunks == DELTAS


def test_stream_ends_on_selected_non_text_output(lamatic: MockLamatic) -> None:
    lamatic.respond(StreamReply(flow_frames()))

    chunks = list(streaming_flow(lamatic, output_key="sources").stream(PAYLOAD))

    assert chunks == [*DELTAS, ["a", "b"]]


def test_stream_of_flow_without_text_yields_output_once(lamatic: MockLamatic) -> None:
    lamatic.respond(StreamReply(flow_frames(deltas=[])))

    chunks = list(streaming_flow(lamatic).stream(PAYLOAD))

    assert chunks == [OUTPUT]


class Answer(BaseModel):
    answer: str
    sources: list[str]


def test_stream_with_result_model_yields_one_model(lamatic: MockLamatic) -> None:
    lamatic.respond(StreamReply(flow_frames()))

    chunks = list(streaming_flow(lamatic, result_model=Answer).stream(PAYLOAD))

    assert chunks == [Answer(answer=TEXT, sources=["a", "b"])]


def test_stream_with_streaming_off_executes_once(lamatic: MockLamatic) -> None:
    lamatic.respond(lamatic.success(OUTPUT))

    chunks = list(streaming_flow(lamatic, streaming=False, output_key="answer").stream(PAYLOAD))

    assert chunks == [TEXT]
    assert "executeWorkflow(" in lamatic.bodies()[0]["query"]


def test_stream_falls_back_to_one_chunk(lamatic: MockLamatic) -> None:
    lamatic.respond(lamatic.graphql_errors(UNSUPPORTED, status=400), lamatic.success(OUTPUT))

    chunks = list(streaming_flow(lamatic, output_key="answer").stream(PAYLOAD))

    assert chunks == [TEXT]


def test_stream_waits_for_async_acknowledgement(lamatic: MockLamatic) -> None:
    lamatic.respond(
        json_reply({"status": "success", "result": {"requestId": "r-9"}}),
        json_reply({"status": "success", "output": OUTPUT}, operation="checkStatus"),
    )

    chunks = list(streaming_flow(lamatic, poll_interval=0.01, output_key="answer").stream(PAYLOAD))

    assert chunks == [TEXT]


def test_breaking_out_of_flow_stream_closes_response(lamatic: MockLamatic) -> None:
    reply = StreamReply(flow_frames())
    lamatic.respond(reply)

    for _chunk in streaming_flow(lamatic).stream(PAYLOAD):
        break

    assert reply.closed


def test_stream_error_reaches_caller(lamatic: MockLamatic) -> None:
    lamatic.respond(StreamReply(flow_frames()[:3]))

    with pytest.raises(LamaticResponseError):
        list(streaming_flow(lamatic).stream(PAYLOAD))


async def test_astream_events_show_node_completions(lamatic: MockLamatic) -> None:
    lamatic.respond(StreamReply(flow_frames()))
    flow = streaming_flow(lamatic, output_key="answer")

    events = [event async for event in flow.astream_events(PAYLOAD, version="v2")]

    custom = [event for event in events if event["event"] == "on_custom_event"]
    nodes = [
        event["data"]["node_id"] for event in custom if event["name"] == "lamatic_node_completed"
    ]
    assert nodes == ["triggerNode_1", "LLMNode_1"]
    completed = [event for event in custom if event["name"] == "lamatic_flow_completed"]
    assert completed[0]["data"]["output"] == OUTPUT
    streamed = [event["data"]["chunk"] for event in events if event["event"] == "on_chain_stream"]
    assert streamed == DELTAS
    assert events[-1]["data"]["output"] == TEXT


async def test_astream_yields_text_deltas(lamatic: MockLamatic) -> None:
    lamatic.respond(StreamReply(flow_frames()))

    chunks = [
        chunk async for chunk in streaming_flow(lamatic, output_key="answer").astream(PAYLOAD)
    ]

    assert chunks == DELTAS


async def test_reclaim_skips_transports_without_a_pool(lamatic: MockLamatic) -> None:
    http = httpx.AsyncClient(transport=lamatic.transport)
    request = http.build_request("POST", LOOPBACK_ENDPOINT)

    await reclaim_cancelled_connections(http, request)

    assert lamatic.requests == []
    await http.aclose()
