"""Streaming against LamaticTestServer on loopback: text deltas, node events, broken streams."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from langchain_core.output_parsers import StrOutputParser

from langchain_lamatic import (
    LamaticClient,
    LamaticExecutionError,
    LamaticFlow,
    LamaticResponseError,
)
from langchain_lamatic.streaming import FlowCompleted, NodeCompleted, TextDelta
from langchain_lamatic.testing import (
    Fault,
    FlowExecutionFailed,
    LamaticTestServer,
    StreamOptions,
)

ANSWER = "Bounded queues keep latency predictable because they push back on producers."


def answer(payload: dict[str, Any]) -> dict[str, Any]:
    return {"answer": ANSWER, "sources": ["queueing-theory.md"]}


def failing(payload: dict[str, Any]) -> dict[str, Any]:
    raise FlowExecutionFailed("LLM node failed: context window exceeded")


@pytest.fixture
def server() -> Iterator[LamaticTestServer]:
    with LamaticTestServer() as running:
        yield running


@pytest.fixture
def client(server: LamaticTestServer) -> Iterator[LamaticClient]:
    with LamaticClient(
        endpoint=server.endpoint, project_id=server.project_id, api_key=server.api_key
    ) as lamatic_client:
        yield lamatic_client


def answer_flow(
    server: LamaticTestServer, client: LamaticClient, options: StreamOptions, **settings: Any
) -> LamaticFlow:
    server.add_flow("answer", answer, stream=options)
    return LamaticFlow(flow_id="answer", client=client, **settings)


STREAM_VARIANTS = {
    "plain": StreamOptions(),
    "crlf": StreamOptions(crlf=True),
    "keep_alive": StreamOptions(keep_alive=True),
    "null_chunks": StreamOptions(null_chunks=True),
    "done_marker": StreamOptions(done_marker=True),
    "one_character_tokens": StreamOptions(token_size=1),
    "everything": StreamOptions(
        crlf=True, keep_alive=True, null_chunks=True, done_marker=True, token_size=3
    ),
}


@pytest.mark.parametrize("options", STREAM_VARIANTS.values(), ids=STREAM_VARIANTS.keys())
def test_str_output_parser_streams_text_in_chunks(
    server: LamaticTestServer, client: LamaticClient, options: StreamOptions
) -> None:
    flow = answer_flow(server, client, options, output_key="answer")
    chain = flow | StrOutputParser()

    chunks = list(chain.stream({"question": "why queues?"}))

    assert len(chunks) > 1
    assert "".join(chunks) == chain.invoke({"question": "why queues?"})
    assert "".join(chunks) == ANSWER


@pytest.mark.parametrize("options", STREAM_VARIANTS.values(), ids=STREAM_VARIANTS.keys())
async def test_astream_yields_the_same_text(
    server: LamaticTestServer, client: LamaticClient, options: StreamOptions
) -> None:
    flow = answer_flow(server, client, options, output_key="answer")

    chunks = [chunk async for chunk in flow.astream({"question": "why queues?"})]

    assert len(chunks) > 1
    assert "".join(chunks) == ANSWER


def test_repeated_text_is_not_yielded_twice(
    server: LamaticTestServer, client: LamaticClient
) -> None:
    flow = answer_flow(server, client, StreamOptions(repeat_text=True))

    chunks = list(flow.stream({"question": "why queues?"}))

    assert "".join(chunks) == ANSWER


def test_first_chunk_arrives_while_server_still_streams(
    server: LamaticTestServer, client: LamaticClient
) -> None:
    flow = answer_flow(server, client, StreamOptions(token_size=2, frame_delay=0.1))
    chunks = flow.stream({"question": "why queues?"})

    first = next(chunks)

    assert first == ANSWER[:2]
    assert server.in_flight == 1
    rest = list(chunks)
    assert first + "".join(rest) == ANSWER


def test_flow_without_text_streams_its_output_once(
    server: LamaticTestServer, client: LamaticClient
) -> None:
    flow = answer_flow(server, client, StreamOptions(tokens=False))

    chunks = list(flow.stream({"question": "why queues?"}))

    assert chunks == [answer({})]


async def test_astream_events_show_node_completions(
    server: LamaticTestServer, client: LamaticClient
) -> None:
    flow = answer_flow(server, client, StreamOptions(keep_alive=True), output_key="answer")

    events = [event async for event in flow.astream_events({"q": "x"}, version="v2")]

    nodes = [
        event["data"]
        for event in events
        if event["event"] == "on_custom_event" and event["name"] == "lamatic_node_completed"
    ]
    assert [node["node_id"] for node in nodes] == ["triggerNode_1", "LLMNode_1"]
    assert nodes[1]["metadata"]["_meta"]["completion_tokens"] > 0
    assert nodes[0]["flow_id"] == "answer"
    final = events[-1]
    assert final["event"] == "on_chain_end"
    assert final["data"]["output"] == ANSWER


def test_client_stream_flow_yields_typed_events(
    server: LamaticTestServer, client: LamaticClient
) -> None:
    server.add_flow("answer", answer, stream=StreamOptions(crlf=True, null_chunks=True))

    with client.stream_flow("answer", {"q": "x"}) as events:
        collected = list(events)

    deltas = [event for event in collected if isinstance(event, TextDelta)]
    nodes = [event for event in collected if isinstance(event, NodeCompleted)]
    final = collected[-1]
    assert "".join(delta.text for delta in deltas) == ANSWER
    assert {delta.node_id for delta in deltas} == {"LLMNode_1"}
    assert [node.node_id for node in nodes] == ["triggerNode_1", "LLMNode_1"]
    assert isinstance(final, FlowCompleted)
    assert final.output == answer({})
    assert final.text == ANSWER


@pytest.mark.parametrize("abruptly", [False, True], ids=["ended", "reset"])
def test_cut_stream_raises_response_error(
    server: LamaticTestServer, client: LamaticClient, abruptly: bool
) -> None:
    flow = answer_flow(server, client, StreamOptions(cut_after=4, cut_abruptly=abruptly))

    with pytest.raises(LamaticResponseError):
        list(flow.stream({"question": "why queues?"}))


@pytest.mark.parametrize("abruptly", [False, True], ids=["ended", "reset"])
async def test_cut_stream_raises_on_async_path(
    server: LamaticTestServer, client: LamaticClient, abruptly: bool
) -> None:
    flow = answer_flow(server, client, StreamOptions(cut_after=4, cut_abruptly=abruptly))

    with pytest.raises(LamaticResponseError):
        _ = [chunk async for chunk in flow.astream({"question": "why queues?"})]


def test_error_frame_raises_execution_error(
    server: LamaticTestServer, client: LamaticClient
) -> None:
    flow = answer_flow(server, client, StreamOptions(error="rate limit of the model provider"))

    with pytest.raises(LamaticExecutionError, match="rate limit of the model provider"):
        list(flow.stream({"question": "why queues?"}))


async def test_failing_flow_raises_execution_error_while_streaming(
    server: LamaticTestServer, client: LamaticClient
) -> None:
    server.add_flow("broken", failing)
    flow = LamaticFlow(flow_id="broken", client=client)

    with pytest.raises(LamaticExecutionError, match="context window exceeded"):
        _ = [chunk async for chunk in flow.astream({})]


def test_rate_limit_before_stream_is_retried(
    server: LamaticTestServer, client: LamaticClient
) -> None:
    flow = answer_flow(server, client, StreamOptions(), output_key="answer")
    server.inject(Fault.rate_limit(0), operation="executeWorkflowWithStream")

    chunks = list(flow.stream({"question": "why queues?"}))

    assert "".join(chunks) == ANSWER
    assert server.execution_count("answer") == 1


def test_server_without_subscriptions_falls_back_to_one_chunk(
    server: LamaticTestServer, client: LamaticClient
) -> None:
    flow = answer_flow(server, client, StreamOptions(), output_key="answer")
    server.inject(
        Fault.graphql_error(
            "Schema is not configured to execute subscription operation.",
            code="GRAPHQL_VALIDATION_FAILED",
            status=400,
        ),
        operation="executeWorkflowWithStream",
    )

    chunks = list(flow.stream({"question": "why queues?"}))

    assert chunks == [ANSWER]
    assert server.execution_count("answer") == 1
    assert [request.operation for request in server.requests] == [
        "executeWorkflowWithStream",
        "executeWorkflow",
    ]


def test_streaming_off_runs_a_normal_execution(
    server: LamaticTestServer, client: LamaticClient
) -> None:
    flow = answer_flow(server, client, StreamOptions(), output_key="answer", streaming=False)

    chunks = list(flow.stream({"question": "why queues?"}))

    assert chunks == [ANSWER]
    assert [request.operation for request in server.requests] == ["executeWorkflow"]
