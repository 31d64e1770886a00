"""A real LangChain agent loop calls Lamatic tools on a local server, with a scripted model.

The model is scripted, not a language model: each step reads the conversation so far and
returns the next AIMessage, so the tests check what the tools returned to the model.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from langchain.agents import create_agent
from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.runnables import Runnable
from pydantic import Field

from langchain_lamatic.client import LamaticClient
from langchain_lamatic.errors import LamaticAuthenticationError, LamaticNotFoundError
from langchain_lamatic.testing import FlowExecutionFailed, LamaticTestServer
from langchain_lamatic.toolkit import LamaticToolkit, example_manifest_path
from langchain_lamatic.tools import LamaticFlowTool

Step = Callable[[Sequence[BaseMessage]], AIMessage]

TRIP_ARGS = {
    "city": "Lisbon",
    "days": 3,
    "budget": 900,
    "preferences": "food, museums",
    "travelDate": "2027-04-10",
}


class ScriptedChatModel(BaseChatModel):
    """A chat model that replies from its script, one step per model call."""

    steps: list[Step]
    seen: list[list[BaseMessage]] = Field(default_factory=list)
    bound_tools: list[str] = Field(default_factory=list)

    @property
    def _llm_type(self) -> str:
        return "scripted"

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> Runnable[Any, BaseMessage]:
        self.bound_tools = [getattr(tool, "name", str(tool)) for tool in tools]
        return self

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        step = self.steps[len(self.seen)]
        self.seen.append(list(messages))
        return ChatResult(generations=[ChatGeneration(message=step(messages))])


def call(name: str, args: dict[str, Any], call_id: str) -> dict[str, Any]:
    return {"name": name, "args": args, "id": call_id, "type": "tool_call"}


def tool_messages(messages: Sequence[BaseMessage]) -> list[ToolMessage]:
    return [message for message in messages if isinstance(message, ToolMessage)]


def final_answer(messages: Sequence[BaseMessage]) -> AIMessage:
    """Reply with the content of every tool message so far, so tests can check them."""
    contents = [f"{message.name}: {message.content}" for message in tool_messages(messages)]
    return AIMessage(content="Final answer. " + " | ".join(contents))


@pytest.fixture
def toolkit(client: LamaticClient) -> LamaticToolkit:
    return LamaticToolkit.from_manifest(example_manifest_path(), client=client)


def run_agent(
    model: ScriptedChatModel, tools: Sequence[Any], question: str, *, use_async: bool
) -> list[BaseMessage]:
    agent = create_agent(model, list(tools))
    state = {"messages": [{"role": "user", "content": question}]}
    result = asyncio.run(agent.ainvoke(state)) if use_async else agent.invoke(state)
    messages: list[BaseMessage] = result["messages"]
    return messages


@pytest.fixture(params=["sync", "async"])
def use_async(request: pytest.FixtureRequest) -> bool:
    return bool(request.param == "async")


# --- One tool call --------------------------------------------------------------------------


def test_agent_calls_one_tool_and_answers(
    toolkit: LamaticToolkit, server: LamaticTestServer, use_async: bool
) -> None:
    model = ScriptedChatModel(
        steps=[
            lambda messages: AIMessage(content="", tool_calls=[call("plan_trip", TRIP_ARGS, "c1")]),
            final_answer,
        ]
    )

    messages = run_agent(model, toolkit.get_tools(), "Plan 3 days in Lisbon", use_async=use_async)

    (result,) = tool_messages(messages)
    assert result.status == "success"
    assert json.loads(str(result.content))["summary"].startswith("3 days in Lisbon")
    assert isinstance(result.artifact, dict)
    assert result.artifact["map"] == "https://maps.example/lisbon"
    assert messages[-1].content.startswith("Final answer. plan_trip: ")
    assert server.execution_count("plan-trip") == 1


def test_model_is_given_every_toolkit_tool(toolkit: LamaticToolkit, use_async: bool) -> None:
    model = ScriptedChatModel(steps=[lambda messages: AIMessage(content="Nothing to do.")])

    messages = run_agent(model, toolkit.get_tools(), "Hello", use_async=use_async)

    assert messages[-1].content == "Nothing to do."
    assert model.bound_tools == [tool.name for tool in toolkit.get_tools()]


def test_agent_calls_a_lamatic_agent(toolkit: LamaticToolkit, use_async: bool) -> None:
    question = {"question": "How do bounded queues keep latency predictable?", "max_sources": 1}
    model = ScriptedChatModel(
        steps=[
            lambda messages: AIMessage(content="", tool_calls=[call("research", question, "r1")]),
            final_answer,
        ]
    )

    messages = run_agent(model, toolkit.get_tools(), "Research queues", use_async=use_async)

    (result,) = tool_messages(messages)
    assert result.status == "success"
    assert result.artifact["sources"] == ["https://docs.example/bounded"]


# --- Two tool calls in one step -------------------------------------------------------------


def test_agent_runs_parallel_tool_calls(
    client: LamaticClient, server: LamaticTestServer, use_async: bool
) -> None:
    # Each flow waits until the other has started: a sequential run breaks the barrier.
    barrier = threading.Barrier(2, timeout=20)

    def weather(payload: dict[str, Any]) -> dict[str, Any]:
        barrier.wait()
        return {"forecast": f"Sunny in {payload['city']}"}

    def currency(payload: dict[str, Any]) -> dict[str, Any]:
        barrier.wait()
        return {"rate": f"1 EUR = 1.08 {payload['to']}"}

    server.add_flow("weather", weather, schema='{"city": "string"}')
    server.add_flow("currency", currency, schema='{"to": "string"}')
    tools = LamaticToolkit(
        definitions=[
            {"id": "weather", "schema": '{"city": "string"}', "output_key": "forecast"},
            {"id": "currency", "schema": '{"to": "string"}', "output_key": "rate"},
        ],
        client=client,
    ).get_tools()
    model = ScriptedChatModel(
        steps=[
            lambda messages: AIMessage(
                content="",
                tool_calls=[
                    call("weather", {"city": "Lisbon"}, "w1"),
                    call("currency", {"to": "USD"}, "x1"),
                ],
            ),
            final_answer,
        ]
    )

    messages = run_agent(model, tools, "Weather and rate?", use_async=use_async)

    results = {message.tool_call_id: message for message in tool_messages(messages)}
    assert results["w1"].content == "Sunny in Lisbon"
    assert results["x1"].content == "1 EUR = 1.08 USD"
    assert server.max_in_flight >= 2
    assert messages[-1].content == (
        "Final answer. weather: Sunny in Lisbon | currency: 1 EUR = 1.08 USD"
    )


def test_agent_runs_two_demo_tools_in_one_step(
    toolkit: LamaticToolkit, server: LamaticTestServer, use_async: bool
) -> None:
    model = ScriptedChatModel(
        steps=[
            lambda messages: AIMessage(
                content="",
                tool_calls=[
                    call("plan_trip", TRIP_ARGS, "t1"),
                    call("summarise_article", {"url": "https://example.org/posts/queues"}, "s1"),
                ],
            ),
            final_answer,
        ]
    )

    messages = run_agent(model, toolkit.get_tools(), "Trip and article", use_async=use_async)

    results = {message.tool_call_id: message for message in tool_messages(messages)}
    assert set(results) == {"t1", "s1"}
    assert all(message.status == "success" for message in results.values())
    assert str(results["s1"].content).startswith('The post "Queues" on example.org')
    assert server.execution_count("plan-trip") == 1
    assert server.execution_count("article-summariser") == 1


# --- Failures the model receives ------------------------------------------------------------


def test_agent_recovers_from_failed_flow(
    toolkit: LamaticToolkit, server: LamaticTestServer, use_async: bool
) -> None:
    def retry_after_error(messages: Sequence[BaseMessage]) -> AIMessage:
        (failed,) = tool_messages(messages)
        assert failed.status == "error"
        assert "days must be from 1 to 30, got 40" in str(failed.content)
        return AIMessage(content="", tool_calls=[call("plan_trip", {**TRIP_ARGS, "days": 5}, "c2")])

    model = ScriptedChatModel(
        steps=[
            lambda messages: AIMessage(
                content="", tool_calls=[call("plan_trip", {**TRIP_ARGS, "days": 40}, "c1")]
            ),
            retry_after_error,
            final_answer,
        ]
    )

    messages = run_agent(model, toolkit.get_tools(), "Plan 40 days", use_async=use_async)

    failed, succeeded = tool_messages(messages)
    assert failed.status == "error"
    assert succeeded.status == "success"
    assert "5 days in Lisbon" in str(succeeded.content)
    assert isinstance(messages[-1], AIMessage)
    assert messages[-1].content.startswith("Final answer.")
    assert server.execution_count("plan-trip") == 2


def test_failing_handler_error_reaches_the_model(
    client: LamaticClient, server: LamaticTestServer, use_async: bool
) -> None:
    def always_fails(payload: dict[str, Any]) -> dict[str, Any]:
        raise FlowExecutionFailed("LLM node failed: the provider quota is exhausted")

    server.add_flow("quota-flow", always_fails)
    tool = LamaticFlowTool(flow_id="quota-flow", name="write_poem", client=client)
    model = ScriptedChatModel(
        steps=[
            lambda messages: AIMessage(
                content="", tool_calls=[call("write_poem", {"prompt": "a poem"}, "p1")]
            ),
            final_answer,
        ]
    )

    messages = run_agent(model, [tool], "A poem please", use_async=use_async)

    (failed,) = tool_messages(messages)
    assert failed.status == "error"
    assert "provider quota is exhausted" in str(failed.content)
    assert "the provider quota is exhausted" in str(messages[-1].content)


def test_invalid_arguments_reach_the_model(
    toolkit: LamaticToolkit, server: LamaticTestServer, use_async: bool
) -> None:
    model = ScriptedChatModel(
        steps=[
            lambda messages: AIMessage(
                content="", tool_calls=[call("plan_trip", {**TRIP_ARGS, "days": "three"}, "c1")]
            ),
            final_answer,
        ]
    )

    messages = run_agent(model, toolkit.get_tools(), "Plan three days", use_async=use_async)

    (failed,) = tool_messages(messages)
    assert failed.status == "error"
    assert "days: Input should be a valid integer" in str(failed.content)
    assert server.execution_count("plan-trip") == 0


# --- Failures the application receives ------------------------------------------------------


def test_authentication_error_stops_the_agent(server: LamaticTestServer, use_async: bool) -> None:
    with LamaticClient(
        endpoint=server.endpoint, project_id=server.project_id, api_key="lt-" + "wrong0key0abcdef"
    ) as wrong_client:
        tools = LamaticToolkit.from_manifest(example_manifest_path(), client=wrong_client)
        model = ScriptedChatModel(
            steps=[
                lambda messages: AIMessage(
                    content="", tool_calls=[call("plan_trip", TRIP_ARGS, "c1")]
                ),
                final_answer,
            ]
        )

        with pytest.raises(LamaticAuthenticationError):
            run_agent(model, tools.get_tools(), "Plan a trip", use_async=use_async)

    assert len(model.seen) == 1


def test_unknown_flow_stops_the_agent(client: LamaticClient, use_async: bool) -> None:
    tool = LamaticFlowTool(flow_id="no-such-flow", name="missing", client=client)
    model = ScriptedChatModel(
        steps=[
            lambda messages: AIMessage(
                content="", tool_calls=[call("missing", {"prompt": "x"}, "c1")]
            ),
            final_answer,
        ]
    )

    with pytest.raises(LamaticNotFoundError):
        run_agent(model, [tool], "Call it", use_async=use_async)
