"""LangGraph's ToolNode runs Lamatic tools, sync and async, against a local server."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from langchain_core.messages import AIMessage, ToolMessage
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode

from langchain_lamatic.client import LamaticClient
from langchain_lamatic.errors import LamaticAuthenticationError, LamaticTimeoutError
from langchain_lamatic.testing import LamaticTestServer
from langchain_lamatic.toolkit import LamaticToolkit, example_manifest_path
from langchain_lamatic.tools import LamaticFlowTool

TRIP_ARGS = {
    "city": "Kyoto",
    "days": 2,
    "budget": 600,
    "preferences": "temples",
    "travelDate": "2027-05-01",
}


@pytest.fixture
def tool_node(client: LamaticClient) -> ToolNode:
    toolkit = LamaticToolkit.from_manifest(
        example_manifest_path(), client=client, poll_interval=0.05
    )
    return ToolNode(toolkit.get_tools())


def calls(*items: tuple[str, dict[str, Any], str]) -> dict[str, Any]:
    tool_calls = [
        {"name": name, "args": args, "id": call_id, "type": "tool_call"}
        for name, args, call_id in items
    ]
    return {"messages": [AIMessage(content="", tool_calls=tool_calls)]}


def run_node(node: ToolNode, state: dict[str, Any], *, use_async: bool) -> list[ToolMessage]:
    """Run ``node`` as the only node of a graph, which gives it the runtime it needs."""
    builder = StateGraph(MessagesState)
    builder.add_node("tools", node)
    builder.add_edge(START, "tools")
    builder.add_edge("tools", END)
    graph = builder.compile()
    result = asyncio.run(graph.ainvoke(state)) if use_async else graph.invoke(state)
    return [message for message in result["messages"] if isinstance(message, ToolMessage)]


@pytest.fixture(params=["sync", "async"])
def use_async(request: pytest.FixtureRequest) -> bool:
    return bool(request.param == "async")


def test_tool_node_runs_a_flow_tool(tool_node: ToolNode, use_async: bool) -> None:
    (message,) = run_node(tool_node, calls(("plan_trip", TRIP_ARGS, "c1")), use_async=use_async)

    assert message.status == "success"
    assert message.tool_call_id == "c1"
    assert message.artifact["map"] == "https://maps.example/kyoto"


def test_tool_node_runs_an_agent_tool(tool_node: ToolNode, use_async: bool) -> None:
    (message,) = run_node(
        tool_node, calls(("research", {"question": "Why use queues?"}, "r1")), use_async=use_async
    )

    assert message.status == "success"
    assert "Research on 'Why use queues?'" in str(message.content)


def test_tool_node_runs_several_tools_in_one_step(
    tool_node: ToolNode, server: LamaticTestServer, use_async: bool
) -> None:
    messages = run_node(
        tool_node,
        calls(
            ("plan_trip", TRIP_ARGS, "c1"),
            ("summarise_article", {"url": "https://example.org/posts/backpressure"}, "c2"),
            ("ask_legal_documents", {"chatMessage": "Can a landlord keep a deposit?"}, "c3"),
        ),
        use_async=use_async,
    )

    assert [message.tool_call_id for message in messages] == ["c1", "c2", "c3"]
    assert all(message.status == "success" for message in messages)
    assert server.execution_count("legal-rag-chatbot") == 1


def test_tool_node_waits_for_an_async_flow(
    tool_node: ToolNode, server: LamaticTestServer, use_async: bool
) -> None:
    (message,) = run_node(
        tool_node,
        calls(("triage_security_alert", {"alert_text": "SSH brute force from 10.0.0.7."}, "a1")),
        use_async=use_async,
    )

    assert message.status == "success"
    assert message.artifact["attack_technique_id"] == "T1110"
    assert message.artifact["iocs"] == ["10.0.0.7"]
    assert any(request.operation == "checkStatus" for request in server.requests)


def test_tool_node_reports_failed_flow(tool_node: ToolNode, use_async: bool) -> None:
    (message,) = run_node(
        tool_node, calls(("plan_trip", {**TRIP_ARGS, "budget": -5}, "c1")), use_async=use_async
    )

    assert message.status == "error"
    assert message.tool_call_id == "c1"
    assert "reported status 'error'" in str(message.content)


def test_tool_node_reports_invalid_arguments(
    tool_node: ToolNode, server: LamaticTestServer, use_async: bool
) -> None:
    (message,) = run_node(
        tool_node, calls(("plan_trip", {"city": "Kyoto"}, "c1")), use_async=use_async
    )

    assert message.status == "error"
    assert "days: Field required" in str(message.content)
    assert server.requests == []


def test_tool_node_keeps_other_results(tool_node: ToolNode, use_async: bool) -> None:
    failed, succeeded = run_node(
        tool_node,
        calls(
            ("plan_trip", {**TRIP_ARGS, "days": 99}, "bad"),
            ("summarise_article", {"url": "https://example.org/posts/queues"}, "good"),
        ),
        use_async=use_async,
    )

    assert failed.status == "error"
    assert succeeded.status == "success"


def test_tool_node_raises_an_authentication_error(
    server: LamaticTestServer, use_async: bool
) -> None:
    tool = LamaticFlowTool(
        flow_id="plan-trip",
        name="plan_trip",
        endpoint=server.endpoint,
        project_id=server.project_id,
        api_key="lt-" + "wrong0key0abcdef",
    )

    with pytest.raises(LamaticAuthenticationError):
        run_node(ToolNode([tool]), calls(("plan_trip", {"prompt": "x"}, "c1")), use_async=use_async)


def test_tool_node_raises_a_timeout(server: LamaticTestServer, use_async: bool) -> None:
    server.add_flow("slow-flow", lambda payload: {"done": True}, delay=5.0)
    tool = LamaticFlowTool(
        flow_id="slow-flow",
        endpoint=server.endpoint,
        project_id=server.project_id,
        api_key=server.api_key,
        timeout=0.5,
    )

    with pytest.raises(LamaticTimeoutError):
        run_node(ToolNode([tool]), calls(("slow-flow", {"prompt": "x"}, "c1")), use_async=use_async)


def test_tool_node_handler_catches_auth_error(server: LamaticTestServer, use_async: bool) -> None:
    tool = LamaticFlowTool(
        flow_id="plan-trip",
        name="plan_trip",
        endpoint=server.endpoint,
        project_id=server.project_id,
        api_key="lt-" + "wrong0key0abcdef",
    )

    (message,) = run_node(
        ToolNode([tool], handle_tool_errors=True),
        calls(("plan_trip", {"prompt": "x"}, "c1")),
        use_async=use_async,
    )

    assert message.status == "error"
    assert "LamaticAuthenticationError" in str(message.content)
    assert "lt-" + "wrong0key0abcdef" not in str(message.content)
