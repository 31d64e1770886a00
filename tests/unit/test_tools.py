"""LamaticFlowTool and LamaticAgentTool over a scripted endpoint (httpx MockTransport)."""

from __future__ import annotations

import asyncio
import json
import pickle
from pathlib import Path
from typing import TYPE_CHECKING, Any
from uuid import UUID

import httpx
import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import ToolCall, ToolMessage
from langchain_core.tools import BaseTool, ToolException
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import BaseModel, Field, SecretStr, ValidationError

from langchain_lamatic.client import LamaticClient
from langchain_lamatic.errors import (
    LamaticAuthenticationError,
    LamaticBadRequestError,
    LamaticConnectionError,
    LamaticError,
    LamaticExecutionError,
    LamaticNotFoundError,
    LamaticPermissionError,
    LamaticRateLimitError,
    LamaticResponseError,
    LamaticServerError,
    LamaticTimeoutError,
)
from langchain_lamatic.runnables import LamaticAgent, LamaticFlow
from langchain_lamatic.tools import (
    DEFAULT_MAX_CONTENT_CHARS,
    LamaticAgentTool,
    LamaticFlowTool,
    LamaticToolError,
    describe_validation_error,
)

if TYPE_CHECKING:
    from tests.unit.conftest import MockLamatic

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "agentkit-flows.json"
PLAN_TRIP_SCHEMA = (
    '{"city": "string", "days": "int", "budget": "int", "preferences": "string", '
    '"travelDate": "string"}'
)
PLAN_TRIP_ARGS = {
    "city": "Lisbon",
    "days": 3,
    "budget": 900,
    "preferences": "food",
    "travelDate": "2027-04-10",
}


def tool_call(args: dict[str, Any], name: str = "plan-trip", call_id: str = "call-1") -> ToolCall:
    return ToolCall(name=name, args=args, id=call_id, type="tool_call")


def plan_trip(lamatic: MockLamatic, **overrides: Any) -> LamaticFlowTool:
    settings: dict[str, Any] = {
        "flow_id": "plan-trip",
        "args_schema": PLAN_TRIP_SCHEMA,
        "client": lamatic.client(max_retries=0),
    }
    settings.update(overrides)
    return LamaticFlowTool(**settings)


def sent_payloads(lamatic: MockLamatic) -> list[dict[str, Any]]:
    return [body["variables"]["payload"] for body in lamatic.bodies()]


class Question(BaseModel):
    """A module-level model, so tools built with it can be pickled."""

    question: str


# --- Construction ---------------------------------------------------------------------------


def test_tool_is_a_base_tool() -> None:
    assert issubclass(LamaticFlowTool, BaseTool)
    assert issubclass(LamaticAgentTool, BaseTool)


def test_tool_reads_settings_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAMATIC_ENDPOINT", "https://env-project.lamatic.dev/graphql")
    monkeypatch.setenv("LAMATIC_PROJECT_ID", "env-project")
    monkeypatch.setenv("LAMATIC_API_KEY", "lt-env0key0abcdef")

    tool = LamaticFlowTool(flow_id="plan-trip")

    assert tool.endpoint == "https://env-project.lamatic.dev/graphql"
    assert tool.project_id == "env-project"
    assert tool.api_key is not None
    assert tool.api_key.get_secret_value() == "lt-env0key0abcdef"
    assert tool.lamatic_client.endpoint == "https://env-project.lamatic.dev/graphql"


def test_tool_without_credential_names_the_environment_variables() -> None:
    with pytest.raises(ValueError, match="LAMATIC_API_KEY") as caught:
        LamaticFlowTool(
            flow_id="plan-trip", endpoint="https://x.lamatic.dev/graphql", project_id="p"
        )

    assert "LAMATIC_ACCESS_TOKEN" in str(caught.value)


def test_tool_rejects_client_with_connection_settings(lamatic: MockLamatic) -> None:
    with pytest.raises(ValueError, match="either client= or connection settings"):
        LamaticFlowTool(flow_id="plan-trip", client=lamatic.client(), endpoint=lamatic.endpoint)


def test_tool_rejects_client_with_timeout(lamatic: MockLamatic) -> None:
    with pytest.raises(ValueError, match="timeout"):
        LamaticFlowTool(flow_id="plan-trip", client=lamatic.client(), timeout=5)


def test_tool_requires_an_id(lamatic: MockLamatic) -> None:
    with pytest.raises(ValidationError, match="flow_id"):
        LamaticFlowTool(client=lamatic.client())


def test_tools_share_the_given_client(lamatic: MockLamatic) -> None:
    client = lamatic.client()

    flow = LamaticFlowTool(flow_id="plan-trip", client=client)
    agent = LamaticAgentTool(agent_id="research-agent", client=client)

    assert flow.lamatic_client is client
    assert agent.lamatic_client is client


def test_tool_repr_masks_the_api_key() -> None:
    tool = LamaticFlowTool(
        flow_id="plan-trip",
        endpoint="https://x.lamatic.dev/graphql",
        project_id="p",
        api_key="lt-" + "secret0value0abcdef",
    )

    assert "lt-" + "secret0value0abcdef" not in repr(tool)
    assert "lt-" + "secret0value0abcdef" not in str(tool.model_dump())


def test_max_content_chars_below_minimum_is_rejected(lamatic: MockLamatic) -> None:
    with pytest.raises(ValidationError, match="max_content_chars must be at least"):
        plan_trip(lamatic, max_content_chars=10)


def test_tool_defaults_to_content_and_artifact(lamatic: MockLamatic) -> None:
    tool = plan_trip(lamatic)

    assert tool.response_format == "content_and_artifact"
    assert tool.max_content_chars == DEFAULT_MAX_CONTENT_CHARS
    assert tool.handle_tool_error is True
    assert tool.handle_validation_error is describe_validation_error


# --- Input schemas --------------------------------------------------------------------------


def test_advance_schema_string_becomes_a_model(lamatic: MockLamatic) -> None:
    tool = plan_trip(lamatic)

    assert isinstance(tool.args_schema, type)
    assert issubclass(tool.args_schema, BaseModel)
    assert tool.tool_call_schema.model_json_schema()["required"] == list(PLAN_TRIP_ARGS)  # type: ignore[union-attr]


def test_json_schema_dict_becomes_a_model_with_enum(lamatic: MockLamatic) -> None:
    tool = LamaticFlowTool(
        flow_id="agentic-generate-content",
        args_schema={
            "type": "object",
            "properties": {
                "mode": {"type": "string", "enum": ["text", "json", "image"]},
                "instructions": {"type": "string", "description": "What to write."},
            },
            "required": ["mode", "instructions"],
        },
        client=lamatic.client(),
    )

    properties = tool.args
    assert properties["mode"]["enum"] == ["text", "json", "image"]
    assert properties["instructions"]["description"] == "What to write."


def test_short_form_dict_becomes_a_model(lamatic: MockLamatic) -> None:
    tool = LamaticFlowTool(
        flow_id="research",
        args_schema={"question": "string", "filters": {"year": "int?"}},
        client=lamatic.client(),
    )

    assert set(tool.args) == {"question", "filters"}


def test_pydantic_model_is_used_as_given(lamatic: MockLamatic) -> None:
    class TripInput(BaseModel):
        city: str = Field(description="The city to visit.")
        days: int = Field(ge=1, le=30)

    tool = LamaticFlowTool(flow_id="plan-trip", args_schema=TripInput, client=lamatic.client())

    assert tool.args_schema is TripInput


def test_empty_schema_with_input_names_gets_string_arguments(lamatic: MockLamatic) -> None:
    tool = LamaticFlowTool(
        flow_id="automation-hiring",
        args_schema="",
        input_names=["name", "email", "job_description", "resume_url"],
        client=lamatic.client(),
    )

    assert list(tool.args) == ["name", "email", "job_description", "resume_url"]
    assert all(spec["type"] == "string" for spec in tool.args.values())


def test_no_schema_gets_one_argument_named_input_key(lamatic: MockLamatic) -> None:
    tool = LamaticFlowTool(
        flow_id="legal-rag-chatbot", input_key="chatMessage", client=lamatic.client()
    )

    assert list(tool.args) == ["chatMessage"]


def test_model_sees_odd_input_names(lamatic: MockLamatic) -> None:
    tool = LamaticFlowTool(
        flow_id="odd-names",
        args_schema='{"class": "string", "model_config": "string", "my-key": "int?"}',
        client=lamatic.client(),
    )

    function = convert_to_openai_tool(tool)["function"]

    assert list(function["parameters"]["properties"]) == ["class", "model_config", "my-key"]
    assert function["parameters"]["required"] == ["class", "model_config"]


def test_odd_input_names_are_sent_as_given(lamatic: MockLamatic) -> None:
    tool = LamaticFlowTool(
        flow_id="odd-names",
        args_schema='{"class": "string", "my-key": "int?"}',
        client=lamatic.client(),
    )

    tool.invoke(tool_call({"class": "first", "my-key": 2}, name=tool.name))

    assert sent_payloads(lamatic) == [{"class": "first", "my-key": 2}]


def test_model_sees_nested_objects_and_closed_objects(lamatic: MockLamatic) -> None:
    tool = LamaticFlowTool(
        flow_id="itinerary",
        args_schema='{"stops": [{"city": "string", "nights": "int?"}], "tags": "[string]"}',
        client=lamatic.client(),
    )

    parameters = convert_to_openai_tool(tool)["function"]["parameters"]

    assert parameters["additionalProperties"] is False
    assert parameters["properties"]["tags"] == {"items": {"type": "string"}, "type": "array"}
    stop = parameters["properties"]["stops"]["items"]
    assert stop["properties"]["nights"] == {"type": "integer"}
    assert stop["required"] == ["city"]


def test_model_sees_enums_and_unions_of_json_schema(lamatic: MockLamatic) -> None:
    tool = LamaticFlowTool(
        flow_id="generate",
        args_schema={
            "type": "object",
            "properties": {
                "mode": {"type": "string", "enum": ["text", "json"]},
                "size": {"anyOf": [{"type": "integer"}, {"type": "string"}]},
            },
            "required": ["mode"],
        },
        client=lamatic.client(),
    )

    properties = convert_to_openai_tool(tool)["function"]["parameters"]["properties"]

    assert properties["mode"] == {"enum": ["text", "json"], "type": "string"}
    assert properties["size"] == {"anyOf": [{"type": "integer"}, {"type": "string"}]}


def test_tool_call_schema_is_named_after_the_tool(lamatic: MockLamatic) -> None:
    tool = plan_trip(lamatic, name="plan_trip", description="Plan a trip.")

    schema = tool.tool_call_schema.model_json_schema()  # type: ignore[union-attr]

    assert schema["title"] == "plan_trip"
    assert schema["description"] == "Plan a trip."


def test_agent_without_schema_takes_a_prompt(lamatic: MockLamatic) -> None:
    tool = LamaticAgentTool(agent_id="research-agent", client=lamatic.client())

    assert list(tool.args) == ["prompt"]


def test_schema_and_input_names_together_are_rejected(lamatic: MockLamatic) -> None:
    with pytest.raises(ValueError, match="either args_schema or input_names"):
        plan_trip(lamatic, input_names=["city"])


def test_invalid_advance_schema_is_rejected_at_construction(lamatic: MockLamatic) -> None:
    with pytest.raises(ValueError, match="varchar"):
        plan_trip(lamatic, args_schema='{"city": "varchar"}')


def test_unsupported_schema_type_is_rejected(lamatic: MockLamatic) -> None:
    with pytest.raises(TypeError, match="args_schema"):
        plan_trip(lamatic, args_schema=42)


def test_description_defaults_to_id_and_arguments(lamatic: MockLamatic) -> None:
    tool = LamaticFlowTool(
        flow_id="repo-analyzer",
        args_schema='{"repo_url": "string", "github_token": "string?"}',
        client=lamatic.client(),
    )

    assert "'repo-analyzer'" in tool.description
    assert "repo_url (string)" in tool.description
    assert "github_token (string, optional)" in tool.description


def test_description_lists_enum_values_and_unions(lamatic: MockLamatic) -> None:
    tool = LamaticFlowTool(
        flow_id="generate",
        args_schema={
            "type": "object",
            "properties": {
                "mode": {"type": "string", "enum": ["text", "json"]},
                "size": {"anyOf": [{"type": "integer"}, {"type": "string"}]},
            },
            "required": ["mode"],
        },
        client=lamatic.client(),
    )

    assert 'mode (one of "text", "json")' in tool.description
    assert "size (integer or string, optional)" in tool.description


def test_description_names_the_output_key(lamatic: MockLamatic) -> None:
    tool = plan_trip(lamatic, output_key="summary")

    assert "'summary'" in tool.description


def test_given_description_is_kept(lamatic: MockLamatic) -> None:
    tool = plan_trip(lamatic, description="Plan a trip.")

    assert tool.description == "Plan a trip."


# --- Calls and output -----------------------------------------------------------------------


def test_tool_call_returns_json_and_artifact(lamatic: MockLamatic) -> None:
    result = {"summary": "3 days in Lisbon", "days": [{"day": 1, "plan": "Food"}]}
    lamatic.respond(lamatic.success(result))

    message = plan_trip(lamatic).invoke(tool_call(PLAN_TRIP_ARGS))

    assert isinstance(message, ToolMessage)
    assert message.status == "success"
    assert message.content == json.dumps(result, separators=(",", ":"))
    assert message.artifact == result
    assert message.tool_call_id == "call-1"


def test_tool_sends_the_validated_arguments(lamatic: MockLamatic) -> None:
    plan_trip(lamatic).invoke(tool_call(PLAN_TRIP_ARGS))

    assert sent_payloads(lamatic) == [PLAN_TRIP_ARGS]
    assert lamatic.bodies()[0]["variables"]["workflowId"] == "plan-trip"


def test_agent_tool_runs_execute_agent(lamatic: MockLamatic) -> None:
    lamatic.respond(lamatic.success({"answer": "queues"}, operation="executeAgent"))
    tool = LamaticAgentTool(
        agent_id="research-agent",
        args_schema='{"question": "string", "max_sources": "int?"}',
        client=lamatic.client(),
    )

    message = tool.invoke(tool_call({"question": "Why queues?"}, name=tool.name))

    assert message.artifact == {"answer": "queues"}
    assert lamatic.bodies()[0]["variables"] == {
        "agentId": "research-agent",
        "payload": {"question": "Why queues?"},
    }


def test_output_key_selects_the_content(lamatic: MockLamatic) -> None:
    result = {"summary": "3 days in Lisbon", "map": "https://maps.example/lisbon"}
    lamatic.respond(lamatic.success(result))

    message = plan_trip(lamatic, output_key="summary").invoke(tool_call(PLAN_TRIP_ARGS))

    assert message.content == "3 days in Lisbon"
    assert message.artifact == result


def test_output_key_with_object_value_is_json(lamatic: MockLamatic) -> None:
    lamatic.respond(lamatic.success({"budget": {"total": 810, "currency": "EUR"}}))

    message = plan_trip(lamatic, output_key="budget").invoke(tool_call(PLAN_TRIP_ARGS))

    assert message.content == '{"total":810,"currency":"EUR"}'


def test_missing_output_key_raises_response_error(lamatic: MockLamatic) -> None:
    lamatic.respond(lamatic.success({"summary": "ok"}))

    with pytest.raises(LamaticResponseError, match="no key 'answer'"):
        plan_trip(lamatic, output_key="answer").invoke(tool_call(PLAN_TRIP_ARGS))


def test_unicode_content_is_not_escaped(lamatic: MockLamatic) -> None:
    lamatic.respond(lamatic.success({"summary": "Zürich, 3 Tage"}))

    message = plan_trip(lamatic).invoke(tool_call(PLAN_TRIP_ARGS))

    assert message.content == '{"summary":"Zürich, 3 Tage"}'


def test_long_content_is_capped_with_a_notice(lamatic: MockLamatic) -> None:
    lamatic.respond(lamatic.success({"text": "x" * 10_000}))

    message = plan_trip(lamatic, max_content_chars=1000).invoke(tool_call(PLAN_TRIP_ARGS))

    assert isinstance(message.content, str)
    assert len(message.content) <= 1000
    assert message.content.endswith("of 10011 characters are shown]")
    assert "[truncated: the first" in message.content


def test_capped_content_keeps_the_full_artifact(lamatic: MockLamatic) -> None:
    lamatic.respond(lamatic.success({"text": "x" * 10_000}))

    message = plan_trip(lamatic, max_content_chars=1000).invoke(tool_call(PLAN_TRIP_ARGS))

    assert message.artifact == {"text": "x" * 10_000}


def test_default_cap_applies(lamatic: MockLamatic) -> None:
    lamatic.respond(lamatic.success({"text": "y" * 50_000}))

    message = plan_trip(lamatic).invoke(tool_call(PLAN_TRIP_ARGS))

    assert len(message.content) <= DEFAULT_MAX_CONTENT_CHARS


def test_no_cap_sends_everything(lamatic: MockLamatic) -> None:
    lamatic.respond(lamatic.success({"text": "z" * 50_000}))

    message = plan_trip(lamatic, max_content_chars=None).invoke(tool_call(PLAN_TRIP_ARGS))

    assert len(message.content) == 50_011


def test_null_result_gives_an_empty_artifact(lamatic: MockLamatic) -> None:
    lamatic.respond(
        lamatic.reply(
            json_body={"data": {"executeWorkflow": {"status": "success", "result": None}}}
        )
    )

    message = plan_trip(lamatic).invoke(tool_call(PLAN_TRIP_ARGS))

    assert message.content == "null"
    assert message.artifact == {}


def test_content_format_returns_only_content(lamatic: MockLamatic) -> None:
    lamatic.respond(lamatic.success({"summary": "ok"}))

    message = plan_trip(lamatic, response_format="content", output_key="summary").invoke(
        tool_call(PLAN_TRIP_ARGS)
    )

    assert message.content == "ok"
    assert message.artifact is None


def test_invoke_without_tool_call_returns_the_content(lamatic: MockLamatic) -> None:
    lamatic.respond(lamatic.success({"summary": "ok"}))

    assert plan_trip(lamatic, output_key="summary").invoke(PLAN_TRIP_ARGS) == "ok"


def test_string_input_goes_to_the_input_key(lamatic: MockLamatic) -> None:
    tool = LamaticFlowTool(
        flow_id="legal-rag-chatbot", input_key="chatMessage", client=lamatic.client()
    )

    tool.invoke("Can my landlord keep the deposit?")

    assert sent_payloads(lamatic) == [{"chatMessage": "Can my landlord keep the deposit?"}]


async def test_async_tool_call_returns_content_and_artifact(lamatic: MockLamatic) -> None:
    lamatic.respond(lamatic.success({"summary": "async ok"}))

    message = await plan_trip(lamatic, output_key="summary").ainvoke(tool_call(PLAN_TRIP_ARGS))

    assert message.content == "async ok"
    assert message.artifact == {"summary": "async ok"}


async def test_async_call_uses_only_the_async_transport(lamatic: MockLamatic) -> None:
    def sync_transport_must_not_run(request: httpx.Request) -> httpx.Response:
        raise AssertionError("the async path sent a request through the sync client")

    client = lamatic.client(transport=httpx.MockTransport(sync_transport_must_not_run))
    tool = LamaticFlowTool(flow_id="plan-trip", args_schema=PLAN_TRIP_SCHEMA, client=client)

    message = await tool.ainvoke(tool_call(PLAN_TRIP_ARGS))

    assert message.status == "success"
    assert len(lamatic.requests) == 1


def test_tool_overrides_both_run_methods() -> None:
    assert LamaticFlowTool._arun is not BaseTool._arun
    assert LamaticFlowTool._run is not BaseTool._run


# --- Optional arguments ---------------------------------------------------------------------


REPO_SCHEMA = '{"repo_url": "string", "developer_role": "string", "github_token": "string?"}'


def test_optional_argument_not_given_is_left_out(lamatic: MockLamatic) -> None:
    tool = LamaticFlowTool(
        flow_id="repo-analyzer", args_schema=REPO_SCHEMA, client=lamatic.client()
    )

    tool.invoke(tool_call({"repo_url": "https://git.example/app", "developer_role": "backend"}))

    assert sent_payloads(lamatic) == [
        {"repo_url": "https://git.example/app", "developer_role": "backend"}
    ]


def test_optional_argument_given_is_sent(lamatic: MockLamatic) -> None:
    tool = LamaticFlowTool(
        flow_id="repo-analyzer", args_schema=REPO_SCHEMA, client=lamatic.client()
    )
    args = {"repo_url": "https://git.example/app", "developer_role": "backend", "github_token": "t"}

    tool.invoke(tool_call(args))

    assert sent_payloads(lamatic) == [args]


def test_optional_default_of_pydantic_model_is_left_out(lamatic: MockLamatic) -> None:
    class Question(BaseModel):
        question: str
        max_sources: int | None = None
        language: str = "en"

    tool = LamaticAgentTool(
        agent_id="research-agent", args_schema=Question, client=lamatic.client()
    )
    lamatic.default = lamatic.success({"answer": "a"}, operation="executeAgent")

    tool.invoke(tool_call({"question": "Why?"}, name=tool.name))

    assert sent_payloads(lamatic) == [{"question": "Why?"}]


# --- Every fixture flow ---------------------------------------------------------------------


def _fixture_flows() -> list[dict[str, Any]]:
    flows: list[dict[str, Any]] = json.loads(FIXTURES.read_text(encoding="utf-8"))["flows"]
    return flows


def _fixture_tool(flow: dict[str, Any], client: LamaticClient) -> LamaticFlowTool:
    settings: dict[str, Any] = {"flow_id": flow["name"], "client": client}
    if flow["trigger"] == "chatTriggerNode":
        settings["input_key"] = "chatMessage"
    elif flow.get("advance_schema"):
        settings["args_schema"] = flow["advance_schema"]
    else:
        settings["input_names"] = flow["implied_inputs"]
    return LamaticFlowTool(**settings)


@pytest.mark.parametrize("flow", _fixture_flows(), ids=lambda flow: flow["name"])
def test_fixture_flow_sends_its_sample_payload(flow: dict[str, Any], lamatic: MockLamatic) -> None:
    tool = _fixture_tool(flow, lamatic.client())

    message = tool.invoke(tool_call(flow["sample_payload"], name=tool.name))

    assert message.status == "success"
    assert sent_payloads(lamatic) == [flow["sample_payload"]]


@pytest.mark.parametrize("flow", _fixture_flows(), ids=lambda flow: flow["name"])
def test_fixture_flow_rejects_bad_payload(flow: dict[str, Any], lamatic: MockLamatic) -> None:
    tool = _fixture_tool(flow, lamatic.client())
    first_key = next(iter(flow["sample_payload"]))
    bad_payload = {**flow["sample_payload"], first_key: {"not": "a string"}}

    message = tool.invoke(tool_call(bad_payload, name=tool.name))

    assert message.status == "error"
    assert first_key in message.content
    assert lamatic.requests == []


@pytest.mark.parametrize("flow", _fixture_flows(), ids=lambda flow: flow["name"])
def test_fixture_flow_rejects_missing_argument(flow: dict[str, Any], lamatic: MockLamatic) -> None:
    tool = _fixture_tool(flow, lamatic.client())
    required = tool.tool_call_schema.model_json_schema().get("required", [])  # type: ignore[union-attr]
    incomplete = {key: value for key, value in flow["sample_payload"].items() if key != required[0]}

    message = tool.invoke(tool_call(incomplete, name=tool.name))

    assert message.status == "error"
    assert "Field required" in message.content
    assert lamatic.requests == []


# --- Pickling -------------------------------------------------------------------------------


def test_tool_with_generated_schema_pickles(lamatic: MockLamatic) -> None:
    tool = LamaticFlowTool(
        flow_id="odd-names",
        args_schema='{"class": "string", "my-key": "int?"}',
        output_key="text",
        client=lamatic.client(),
    )

    copy = pickle.loads(pickle.dumps(tool))  # noqa: S301 - the test's own bytes

    assert copy.name == "odd-names"
    assert copy.output_key == "text"
    assert copy.tool_call_schema.model_json_schema() == tool.tool_call_schema.model_json_schema()  # type: ignore[union-attr]


def test_pickled_tool_shares_its_client_with_its_runnable(lamatic: MockLamatic) -> None:
    tool = plan_trip(lamatic)

    copy = pickle.loads(pickle.dumps(tool))  # noqa: S301 - the test's own bytes

    assert copy.lamatic_client is copy.client


def test_pickled_tool_still_validates_arguments(lamatic: MockLamatic) -> None:
    copy = pickle.loads(pickle.dumps(plan_trip(lamatic)))  # noqa: S301 - the test's own bytes

    message = copy.invoke(tool_call({**PLAN_TRIP_ARGS, "days": "three"}))

    assert message.status == "error"
    assert "days" in message.content


def test_pickle_carries_no_credential() -> None:
    tool = LamaticFlowTool(
        flow_id="plan-trip",
        endpoint="https://x.lamatic.dev/graphql",
        project_id="p",
        api_key="lt-" + "secret0value0abcdef",
    )

    data = pickle.dumps(tool)

    assert b"lt-" + b"secret0value0abcdef" not in data
    assert pickle.loads(data).api_key is None  # noqa: S301 - the test's own bytes


def test_tool_with_pydantic_schema_pickles(lamatic: MockLamatic) -> None:
    tool = LamaticAgentTool(
        agent_id="research-agent", args_schema=Question, client=lamatic.client()
    )

    copy = pickle.loads(pickle.dumps(tool))  # noqa: S301 - the test's own bytes

    assert copy.args_schema is Question


# --- Invalid arguments ----------------------------------------------------------------------


def test_invalid_argument_reaches_model_unsent(lamatic: MockLamatic) -> None:
    message = plan_trip(lamatic).invoke(tool_call({**PLAN_TRIP_ARGS, "days": "three"}))

    assert message.status == "error"
    assert "days" in message.content
    assert "'three'" in message.content
    assert lamatic.requests == []


def test_unknown_argument_reaches_the_model(lamatic: MockLamatic) -> None:
    message = plan_trip(lamatic).invoke(tool_call({**PLAN_TRIP_ARGS, "hotel": "Ritz"}))

    assert message.status == "error"
    assert "hotel" in message.content


def test_validation_message_lists_each_problem(lamatic: MockLamatic) -> None:
    message = plan_trip(lamatic).invoke(tool_call({"city": 3}))

    assert "city: Input should be a valid string (got 3)" in message.content
    assert "days: Field required" in message.content
    assert message.content.endswith("Call the tool again with arguments that match its schema.")


def test_validation_error_raises_without_handler(lamatic: MockLamatic) -> None:
    tool = plan_trip(lamatic, handle_validation_error=False)

    with pytest.raises(ValidationError):
        tool.invoke(tool_call({**PLAN_TRIP_ARGS, "days": "three"}))
    assert lamatic.requests == []


async def test_async_invalid_argument_reaches_the_model(lamatic: MockLamatic) -> None:
    message = await plan_trip(lamatic).ainvoke(tool_call({**PLAN_TRIP_ARGS, "budget": None}))

    assert message.status == "error"
    assert "budget" in message.content
    assert lamatic.requests == []


# --- Failures that reach the model ----------------------------------------------------------


def test_failed_flow_reaches_model_as_error(lamatic: MockLamatic) -> None:
    lamatic.respond(
        lamatic.reply(
            json_body={
                "data": {
                    "executeWorkflow": {
                        "status": "error",
                        "result": None,
                        "message": "Planner node failed: days must be from 1 to 30, got 40",
                    }
                }
            }
        )
    )

    message = plan_trip(lamatic).invoke(tool_call({**PLAN_TRIP_ARGS, "days": 40}))

    assert isinstance(message, ToolMessage)
    assert message.status == "error"
    assert "days must be from 1 to 30, got 40" in message.content
    assert "'plan-trip'" in message.content


def test_rejected_payload_reaches_model_as_error(lamatic: MockLamatic) -> None:
    lamatic.respond(
        lamatic.graphql_errors("Variable payload: days must be an int", code="BAD_USER_INPUT")
    )

    message = plan_trip(lamatic).invoke(tool_call(PLAN_TRIP_ARGS))

    assert message.status == "error"
    assert "rejected the arguments" in message.content
    assert "days must be an int" in message.content


def test_rejected_payload_error_is_the_cause(lamatic: MockLamatic) -> None:
    lamatic.respond(lamatic.graphql_errors("payload is invalid", code="BAD_USER_INPUT"))

    with pytest.raises(LamaticToolError) as caught:
        plan_trip(lamatic, handle_tool_error=False).invoke(tool_call(PLAN_TRIP_ARGS))

    assert isinstance(caught.value.__cause__, LamaticBadRequestError)


def test_http_400_reaches_model_as_error(lamatic: MockLamatic) -> None:
    lamatic.respond(lamatic.reply(400, json_body={"errors": [{"message": "payload is invalid"}]}))

    message = plan_trip(lamatic).invoke(tool_call(PLAN_TRIP_ARGS))

    assert message.status == "error"


async def test_async_failed_flow_reaches_the_model(lamatic: MockLamatic) -> None:
    lamatic.respond(lamatic.success(None, status="failed"))

    message = await plan_trip(lamatic).ainvoke(tool_call(PLAN_TRIP_ARGS))

    assert message.status == "error"
    assert "ran and failed" in message.content


def test_failed_flow_raises_without_handler(lamatic: MockLamatic) -> None:
    lamatic.respond(lamatic.success(None, status="error"))

    with pytest.raises(LamaticToolError) as caught:
        plan_trip(lamatic, handle_tool_error=False).invoke(tool_call(PLAN_TRIP_ARGS))

    assert isinstance(caught.value.__cause__, LamaticExecutionError)
    assert caught.value.lamatic_error is caught.value.__cause__
    assert caught.value.flow_id == "plan-trip"
    assert caught.value.tool_name == "plan-trip"


def test_handle_tool_error_string_replaces_the_message(lamatic: MockLamatic) -> None:
    lamatic.respond(lamatic.success(None, status="error"))

    message = plan_trip(lamatic, handle_tool_error="The planner is unavailable.").invoke(
        tool_call(PLAN_TRIP_ARGS)
    )

    assert message.content == "The planner is unavailable."
    assert message.status == "error"


def test_failed_agent_names_the_agent(lamatic: MockLamatic) -> None:
    lamatic.respond(lamatic.success(None, status="error", operation="executeAgent"))
    tool = LamaticAgentTool(agent_id="research-agent", client=lamatic.client())

    with pytest.raises(LamaticToolError) as caught:
        tool.model_copy(update={"handle_tool_error": False}).invoke({"prompt": "x"})

    assert caught.value.agent_id == "research-agent"
    assert caught.value.flow_id is None


def test_tool_error_is_a_tool_exception() -> None:
    assert issubclass(LamaticToolError, ToolException)


def test_tool_error_pickles_with_its_fields() -> None:
    cause = LamaticExecutionError("flow failed", flow_id="plan-trip", request_id="req-9")
    error = LamaticToolError(
        "Error: the flow failed",
        tool_name="plan_trip",
        flow_id="plan-trip",
        request_id="req-9",
        lamatic_error=cause,
    )

    copy = pickle.loads(pickle.dumps(error))  # noqa: S301 - the test's own bytes

    assert str(copy) == "Error: the flow failed"
    assert copy.tool_name == "plan_trip"
    assert copy.request_id == "req-9"
    assert isinstance(copy.lamatic_error, LamaticExecutionError)


# --- Failures that raise to the application -------------------------------------------------


@pytest.mark.parametrize(
    ("reply_args", "expected"),
    [
        (
            {"status": 401, "json_body": {"errors": [{"message": "Invalid API key"}]}},
            LamaticAuthenticationError,
        ),
        (
            {"status": 403, "json_body": {"errors": [{"message": "Forbidden"}]}},
            LamaticPermissionError,
        ),
        (
            {"status": 404, "json_body": {"errors": [{"message": "Flow not found"}]}},
            LamaticNotFoundError,
        ),
        (
            {"status": 429, "json_body": {"errors": [{"message": "Too many requests"}]}},
            LamaticRateLimitError,
        ),
        ({"status": 500, "content": b"<html>Internal Server Error</html>"}, LamaticServerError),
        ({"status": 200, "content": b"not json"}, LamaticResponseError),
    ],
    ids=["401", "403", "404", "429", "500", "not-json"],
)
def test_application_errors_raise(
    reply_args: dict[str, Any], expected: type[LamaticError], lamatic: MockLamatic
) -> None:
    lamatic.respond(lamatic.reply(**reply_args))

    with pytest.raises(expected):
        plan_trip(lamatic).invoke(tool_call(PLAN_TRIP_ARGS))


def test_graphql_authentication_error_raises(lamatic: MockLamatic) -> None:
    lamatic.respond(lamatic.graphql_errors("Invalid API key", code="UNAUTHENTICATED"))

    with pytest.raises(LamaticAuthenticationError):
        plan_trip(lamatic).invoke(tool_call(PLAN_TRIP_ARGS))


def test_connection_error_raises(lamatic: MockLamatic) -> None:
    lamatic.respond(httpx.ConnectError("connection refused"))

    with pytest.raises(LamaticConnectionError):
        plan_trip(lamatic).invoke(tool_call(PLAN_TRIP_ARGS))


def test_timeout_raises(lamatic: MockLamatic) -> None:
    lamatic.respond(httpx.ReadTimeout("read timed out"))

    with pytest.raises(LamaticTimeoutError):
        plan_trip(lamatic).invoke(tool_call(PLAN_TRIP_ARGS))


async def test_async_authentication_error_raises(lamatic: MockLamatic) -> None:
    lamatic.respond(lamatic.reply(401, json_body={"errors": [{"message": "Invalid API key"}]}))

    with pytest.raises(LamaticAuthenticationError):
        await plan_trip(lamatic).ainvoke(tool_call(PLAN_TRIP_ARGS))


def test_tool_error_types_widen_model_errors(lamatic: MockLamatic) -> None:
    lamatic.respond(lamatic.reply(401, json_body={"errors": [{"message": "Invalid API key"}]}))

    message = plan_trip(lamatic, tool_error_types=(LamaticError,)).invoke(tool_call(PLAN_TRIP_ARGS))

    assert message.status == "error"
    assert "Invalid API key" in message.content


def test_empty_tool_error_types_raise_failures(lamatic: MockLamatic) -> None:
    lamatic.respond(lamatic.success(None, status="error"))

    with pytest.raises(LamaticExecutionError):
        plan_trip(lamatic, tool_error_types=()).invoke(tool_call(PLAN_TRIP_ARGS))


# --- Tracing --------------------------------------------------------------------------------


class RunRecorder(BaseCallbackHandler):
    """Records the tool runs and chain runs with their parents."""

    def __init__(self) -> None:
        self.tool_runs: list[UUID] = []
        self.chain_runs: list[tuple[str, UUID | None]] = []

    def on_tool_start(
        self, serialized: Any, input_str: str, *, run_id: UUID, **kwargs: Any
    ) -> None:
        self.tool_runs.append(run_id)

    def on_chain_start(
        self,
        serialized: Any,
        inputs: Any,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        self.chain_runs.append((kwargs.get("name") or "", parent_run_id))


def test_lamatic_run_nests_under_tool_run(lamatic: MockLamatic) -> None:
    recorder = RunRecorder()

    plan_trip(lamatic).invoke(tool_call(PLAN_TRIP_ARGS), config={"callbacks": [recorder]})

    assert recorder.chain_runs == [("LamaticFlow:plan-trip", recorder.tool_runs[0])]


async def test_async_lamatic_run_nests_under_tool_run(lamatic: MockLamatic) -> None:
    recorder = RunRecorder()

    await plan_trip(lamatic).ainvoke(tool_call(PLAN_TRIP_ARGS), config={"callbacks": [recorder]})

    assert recorder.chain_runs == [("LamaticFlow:plan-trip", recorder.tool_runs[0])]


def test_lamatic_run_inherits_tags_and_metadata(lamatic: MockLamatic) -> None:
    seen: dict[str, Any] = {}

    class Recorder(BaseCallbackHandler):
        def on_chain_start(self, serialized: Any, inputs: Any, **kwargs: Any) -> None:
            seen["tags"] = kwargs.get("tags")
            seen["metadata"] = kwargs.get("metadata")

    plan_trip(lamatic).invoke(
        tool_call(PLAN_TRIP_ARGS),
        config={"callbacks": [Recorder()], "tags": ["trip"], "metadata": {"user": "u-1"}},
    )

    assert "trip" in seen["tags"]
    assert seen["metadata"]["user"] == "u-1"
    assert seen["metadata"]["lamatic_flow_id"] == "plan-trip"


# --- Per-call credentials -------------------------------------------------------------------


def test_per_call_access_token_is_sent(lamatic: MockLamatic) -> None:
    plan_trip(lamatic).invoke(
        tool_call(PLAN_TRIP_ARGS),
        config={"configurable": {"lamatic_access_token": SecretStr("user-token-1")}},
    )

    headers = lamatic.requests[0].headers
    assert headers["x-lamatic-signature"] == "user-token-1"
    assert "authorization" not in headers


def test_per_call_project_id_is_sent(lamatic: MockLamatic) -> None:
    plan_trip(lamatic).invoke(
        tool_call(PLAN_TRIP_ARGS), config={"configurable": {"lamatic_project_id": "other-project"}}
    )

    assert lamatic.requests[0].headers["x-project-id"] == "other-project"


def test_plain_string_access_token_is_rejected(lamatic: MockLamatic) -> None:
    with pytest.raises(TypeError, match="SecretStr"):
        plan_trip(lamatic).invoke(
            tool_call(PLAN_TRIP_ARGS), config={"configurable": {"lamatic_access_token": "tok"}}
        )
    assert lamatic.requests == []


# --- Sync calls from async contexts ---------------------------------------------------------


async def test_sync_invoke_inside_running_loop(lamatic: MockLamatic) -> None:
    lamatic.respond(lamatic.success({"summary": "from a notebook cell"}))

    message = plan_trip(lamatic, output_key="summary").invoke(tool_call(PLAN_TRIP_ARGS))

    assert message.content == "from a notebook cell"


async def test_sync_invoke_in_thread_from_loop(lamatic: MockLamatic) -> None:
    lamatic.respond(lamatic.success({"summary": "from a worker thread"}))
    tool = plan_trip(lamatic, output_key="summary")

    message = await asyncio.to_thread(tool.invoke, tool_call(PLAN_TRIP_ARGS))

    assert message.content == "from a worker thread"


def test_async_invoke_works_in_two_event_loops(lamatic: MockLamatic) -> None:
    tool = plan_trip(lamatic)

    first = asyncio.run(tool.ainvoke(tool_call(PLAN_TRIP_ARGS)))
    second = asyncio.run(tool.ainvoke(tool_call(PLAN_TRIP_ARGS)))

    assert first.status == "success"
    assert second.status == "success"


# --- From runnables -------------------------------------------------------------------------


def test_from_runnable_shares_the_flow_client(lamatic: MockLamatic) -> None:
    flow = LamaticFlow(flow_id="plan-trip", client=lamatic.client(), output_key="summary")

    tool = LamaticFlowTool.from_runnable(flow, args_schema=PLAN_TRIP_SCHEMA)

    assert tool.lamatic_client is flow.lamatic_client
    assert tool.output_key == "summary"
    assert tool.name == "plan-trip"


def test_from_runnable_returns_the_whole_result_as_artifact(lamatic: MockLamatic) -> None:
    lamatic.respond(lamatic.success({"summary": "ok", "map": "m"}))
    flow = LamaticFlow(flow_id="plan-trip", client=lamatic.client(), output_key="summary")

    message = LamaticFlowTool.from_runnable(flow, args_schema=PLAN_TRIP_SCHEMA).invoke(
        tool_call(PLAN_TRIP_ARGS)
    )

    assert message.content == "ok"
    assert message.artifact == {"summary": "ok", "map": "m"}


def test_from_runnable_copies_name_and_input_key(lamatic: MockLamatic) -> None:
    flow = LamaticFlow(
        flow_id="legal-rag-chatbot",
        client=lamatic.client(),
        input_key="chatMessage",
        name="Legal Q&A",
    )

    tool = LamaticFlowTool.from_runnable(flow, description="Answer legal questions.")

    assert tool.name == "Legal_Q_A"
    assert list(tool.args) == ["chatMessage"]


def test_from_runnable_leaves_the_flow_unchanged(lamatic: MockLamatic) -> None:
    flow = LamaticFlow(flow_id="plan-trip", client=lamatic.client(), output_key="summary")

    LamaticFlowTool.from_runnable(flow)

    assert flow.output_key == "summary"


def test_agent_tool_from_runnable(lamatic: MockLamatic) -> None:
    agent = LamaticAgent(agent_id="research-agent", client=lamatic.client())

    tool = LamaticAgentTool.from_runnable(agent)

    assert tool.agent_id == "research-agent"
    assert tool.lamatic_client is agent.lamatic_client


def test_from_runnable_rejects_the_other_kind(lamatic: MockLamatic) -> None:
    agent = LamaticAgent(agent_id="research-agent", client=lamatic.client())

    with pytest.raises(TypeError, match="needs a LamaticFlow"):
        LamaticFlowTool.from_runnable(agent)  # type: ignore[arg-type]


def test_from_runnable_rejects_connection_settings(lamatic: MockLamatic) -> None:
    flow = LamaticFlow(flow_id="plan-trip", client=lamatic.client())

    with pytest.raises(ValueError, match="either client= or connection settings"):
        LamaticFlowTool.from_runnable(flow, endpoint=lamatic.endpoint)


@pytest.mark.filterwarnings("ignore:This API is in beta")
def test_runnable_as_tool_still_works(lamatic: MockLamatic) -> None:
    class TripInput(BaseModel):
        city: str
        days: int

    lamatic.respond(lamatic.success({"summary": "ok"}))
    flow = LamaticFlow(flow_id="plan-trip", client=lamatic.client(), output_key="summary")

    tool = flow.as_tool(args_schema=TripInput, name="plan_trip", description="Plan a trip.")
    result = tool.invoke({"city": "Lisbon", "days": 3})

    assert result == "ok"
    assert sent_payloads(lamatic) == [{"city": "Lisbon", "days": 3}]


def test_tool_rejects_a_misspelled_setting(lamatic: MockLamatic) -> None:
    with pytest.raises(ValueError, match="LamaticFlowTool has no setting 'output_kye'"):
        LamaticFlowTool(
            flow_id="plan-trip",
            name="plan_trip",
            description="Plan a trip.",
            client=lamatic.client(),
            output_kye="plan",
        )


# --- Rebuilt by LangChain beside a shared client --------------------------------------------
# configurable_fields rebuilds a tool from every field of the original, so the connection
# settings arrive again with their default values. Only a value that differs from the default
# conflicts with client=, because the client would ignore it.

from langchain_core.runnables import ConfigurableField  # noqa: E402

from langchain_lamatic.toolkit import LamaticToolkit  # noqa: E402

TOOL_CLASSES = [(LamaticFlowTool, "flow_id"), (LamaticAgentTool, "agent_id")]
CONNECTION_SETTINGS: list[dict[str, Any]] = [
    {"endpoint": "https://other.lamatic.dev/graphql"},
    {"project_id": "other-project"},
    {"timeout": 5},
    {"max_retries": 5},
    {"allow_insecure_http": True},
    {"bypass_cache": True},
]
SUMMARY_RESULT = {"summary": "short", "words": 1}


def _configured_output(key: str) -> Any:
    return {"configurable": {"output": key}}


def test_configurable_field_on_flow_tool_with_client(lamatic: MockLamatic) -> None:
    lamatic.default = lamatic.success(SUMMARY_RESULT)
    tool = plan_trip(lamatic).configurable_fields(output_key=ConfigurableField(id="output"))

    message = tool.invoke(tool_call(PLAN_TRIP_ARGS), _configured_output("summary"))

    assert message.content == "short"
    assert message.artifact == SUMMARY_RESULT
    assert sent_payloads(lamatic) == [PLAN_TRIP_ARGS]


async def test_configurable_field_on_flow_tool_with_client_async(lamatic: MockLamatic) -> None:
    lamatic.default = lamatic.success(SUMMARY_RESULT)
    tool = plan_trip(lamatic).configurable_fields(output_key=ConfigurableField(id="output"))

    content = await tool.ainvoke(PLAN_TRIP_ARGS, _configured_output("words"))

    assert content == "1"
    assert sent_payloads(lamatic) == [PLAN_TRIP_ARGS]


def test_configurable_field_on_agent_tool_with_client(lamatic: MockLamatic) -> None:
    lamatic.default = lamatic.success({"reply": "hello", "trace": []})
    tool = LamaticAgentTool(agent_id="helper", client=lamatic.client(max_retries=0))
    configurable = tool.configurable_fields(output_key=ConfigurableField(id="output"))

    content = configurable.invoke({"prompt": "hi"}, _configured_output("reply"))

    assert content == "hello"
    assert "executeAgent(" in lamatic.bodies()[0]["query"]


async def test_configurable_field_on_agent_tool_with_client_async(lamatic: MockLamatic) -> None:
    lamatic.default = lamatic.success({"reply": "hello", "trace": []})
    tool = LamaticAgentTool(agent_id="helper", client=lamatic.client(max_retries=0))
    configurable = tool.configurable_fields(output_key=ConfigurableField(id="output"))

    content = await configurable.ainvoke({"prompt": "hi"}, _configured_output("reply"))

    assert content == "hello"
    assert "executeAgent(" in lamatic.bodies()[0]["query"]


def test_tool_configured_timeout_rejected(
    lamatic: MockLamatic,
) -> None:
    tool = plan_trip(lamatic).configurable_fields(timeout=ConfigurableField(id="timeout"))

    with pytest.raises(ValueError, match=r"not both \(also got \['timeout'\]\)"):
        tool.invoke(PLAN_TRIP_ARGS, {"configurable": {"timeout": 5.0}})
    assert lamatic.requests == []


async def test_tool_configured_retries_rejected_async(
    lamatic: MockLamatic,
) -> None:
    tool = plan_trip(lamatic).configurable_fields(max_retries=ConfigurableField(id="retries"))

    with pytest.raises(ValueError, match=r"not both \(also got \['max_retries'\]\)"):
        await tool.ainvoke(PLAN_TRIP_ARGS, {"configurable": {"retries": 4}})
    assert lamatic.requests == []


def test_configurable_alternatives_on_tools(lamatic: MockLamatic) -> None:
    client = lamatic.client(max_retries=0)
    tool = LamaticFlowTool(
        flow_id="plan-trip", args_schema=PLAN_TRIP_SCHEMA, client=client
    ).configurable_alternatives(
        ConfigurableField(id="planner"),
        default_key="plan-trip",
        backup=LamaticFlowTool(flow_id="plan-trip-v2", args_schema=PLAN_TRIP_SCHEMA, client=client),
    )

    tool.invoke(PLAN_TRIP_ARGS, {"configurable": {"planner": "backup"}})
    tool.invoke(PLAN_TRIP_ARGS)

    flow_ids = [body["variables"]["workflowId"] for body in lamatic.bodies()]
    assert flow_ids == ["plan-trip-v2", "plan-trip"]


async def test_tool_alternatives_with_fields_async(
    lamatic: MockLamatic,
) -> None:
    lamatic.default = lamatic.success(SUMMARY_RESULT)
    client = lamatic.client(max_retries=0)
    tool = (
        LamaticFlowTool(flow_id="plan-trip", args_schema=PLAN_TRIP_SCHEMA, client=client)
        .configurable_fields(output_key=ConfigurableField(id="output"))
        .configurable_alternatives(
            ConfigurableField(id="planner"),
            default_key="plan-trip",
            agent=LamaticAgentTool(agent_id="planner-agent", client=client),
        )
    )

    flow_content = await tool.ainvoke(PLAN_TRIP_ARGS, _configured_output("summary"))
    agent_content = await tool.ainvoke(
        {"prompt": "plan it"}, {"configurable": {"planner": "agent"}}
    )

    assert flow_content == "short"
    assert json.loads(agent_content) == SUMMARY_RESULT
    assert "executeAgent(" in lamatic.bodies()[1]["query"]


def test_with_config_on_configurable_tool(lamatic: MockLamatic) -> None:
    lamatic.default = lamatic.success(SUMMARY_RESULT)
    tool = (
        plan_trip(lamatic)
        .configurable_fields(output_key=ConfigurableField(id="output"))
        .with_config(configurable={"output": "summary"}, run_name="plan")
    )

    assert tool.invoke(PLAN_TRIP_ARGS) == "short"


async def test_with_config_on_configurable_tool_async(lamatic: MockLamatic) -> None:
    lamatic.default = lamatic.success(SUMMARY_RESULT)
    tool = (
        plan_trip(lamatic)
        .configurable_fields(output_key=ConfigurableField(id="output"))
        .with_config(configurable={"output": "summary"})
    )

    assert await tool.ainvoke(PLAN_TRIP_ARGS) == "short"


def test_tool_copy_keeps_client(lamatic: MockLamatic) -> None:
    lamatic.default = lamatic.success(SUMMARY_RESULT)
    tool = plan_trip(lamatic)

    copy = tool.model_copy(update={"name": "plan_trip_copy"})

    assert copy.lamatic_client is tool.lamatic_client
    assert json.loads(copy.invoke(PLAN_TRIP_ARGS)) == SUMMARY_RESULT


async def test_agent_tool_copy_keeps_client_async(lamatic: MockLamatic) -> None:
    lamatic.default = lamatic.success({"reply": "hello"})
    tool = LamaticAgentTool(agent_id="helper", client=lamatic.client(max_retries=0))

    copy = tool.model_copy(update={"description": "Ask the helper agent."})

    assert copy.lamatic_client is tool.lamatic_client
    assert json.loads(await copy.ainvoke({"prompt": "hi"})) == {"reply": "hello"}


@pytest.mark.parametrize(("tool_class", "id_field"), TOOL_CLASSES)
def test_tool_rebuild_beside_client_accepted(
    lamatic: MockLamatic, tool_class: type[LamaticFlowTool | LamaticAgentTool], id_field: str
) -> None:
    # The same call that configurable_fields makes: every field, defaults included.
    client = lamatic.client()
    original = tool_class(**{id_field: "target-1"}, client=client)
    fields = {
        name: value
        for name, value in original.__dict__.items()
        if name in type(original).model_fields
    }

    rebuilt = tool_class(**fields)

    assert rebuilt.lamatic_client is client
    assert rebuilt.name == original.name


@pytest.mark.parametrize("setting", CONNECTION_SETTINGS)
@pytest.mark.parametrize(("tool_class", "id_field"), TOOL_CLASSES)
def test_tool_conflicting_setting_is_named(
    lamatic: MockLamatic,
    tool_class: type[LamaticFlowTool | LamaticAgentTool],
    id_field: str,
    setting: dict[str, Any],
) -> None:
    (name,) = setting
    with pytest.raises(ValueError, match=rf"not both \(also got \['{name}'\]\)"):
        tool_class(**{id_field: "target-1"}, client=lamatic.client(), **setting)


def test_toolkit_rebuild_beside_client_accepted(lamatic: MockLamatic) -> None:
    client = lamatic.client()
    toolkit = LamaticToolkit(definitions=[{"kind": "flow", "id": "plan-trip"}], client=client)
    fields = {
        name: value
        for name, value in toolkit.__dict__.items()
        if name in type(toolkit).model_fields
    }

    rebuilt = LamaticToolkit(**fields)

    assert rebuilt.lamatic_client is client
    assert [tool.name for tool in rebuilt.get_tools()] == ["plan-trip"]


def test_toolkit_model_copy_keeps_the_client(lamatic: MockLamatic) -> None:
    client = lamatic.client()
    toolkit = LamaticToolkit(definitions=[{"kind": "flow", "id": "plan-trip"}], client=client)

    copy = toolkit.model_copy()

    assert copy.lamatic_client is client


@pytest.mark.parametrize("setting", CONNECTION_SETTINGS)
def test_toolkit_conflicting_setting_is_named(
    lamatic: MockLamatic, setting: dict[str, Any]
) -> None:
    (name,) = setting
    with pytest.raises(ValueError, match=rf"not both \(also got \['{name}'\]\)"):
        LamaticToolkit(
            definitions=[{"kind": "flow", "id": "plan-trip"}], client=lamatic.client(), **setting
        )
