"""LamaticToolkit: definitions, manifests, one shared client."""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from langchain_core.messages import ToolCall
from langchain_core.tools import BaseToolkit
from pydantic import BaseModel

import langchain_lamatic
from langchain_lamatic.errors import LamaticError
from langchain_lamatic.testing import LamaticTestServer, add_demo_flows
from langchain_lamatic.toolkit import (
    LamaticToolDefinition,
    LamaticToolkit,
    example_manifest_path,
    load_manifest,
)
from langchain_lamatic.tools import TOOL_NAME_PATTERN, LamaticAgentTool, LamaticFlowTool

if TYPE_CHECKING:
    from tests.unit.conftest import MockLamatic

DEFINITIONS: list[dict[str, Any]] = [
    {
        "kind": "flow",
        "id": "plan-trip",
        "name": "plan_trip",
        "description": "Plan a trip.",
        "schema": '{"city": "string", "days": "int"}',
        "output_key": "summary",
    },
    {"kind": "flow", "id": "article-summariser", "input_names": ["url"]},
    {"kind": "flow", "id": "legal-rag-chatbot", "input_key": "chatMessage"},
    {"kind": "agent", "id": "research-agent"},
]


def write_manifest(tmp_path: Path, document: Any) -> Path:
    path = tmp_path / "tools.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


def test_toolkit_is_a_base_toolkit() -> None:
    assert issubclass(LamaticToolkit, BaseToolkit)


def test_toolkit_builds_one_tool_per_definition(lamatic: MockLamatic) -> None:
    tools = LamaticToolkit(definitions=DEFINITIONS, client=lamatic.client()).get_tools()

    assert [tool.name for tool in tools] == [
        "plan_trip",
        "article-summariser",
        "legal-rag-chatbot",
        "research-agent",
    ]


def test_toolkit_builds_flow_and_agent_tools(lamatic: MockLamatic) -> None:
    tools = LamaticToolkit(definitions=DEFINITIONS, client=lamatic.client()).get_tools()

    assert [type(tool) for tool in tools] == [
        LamaticFlowTool,
        LamaticFlowTool,
        LamaticFlowTool,
        LamaticAgentTool,
    ]


def test_toolkit_applies_each_definition(lamatic: MockLamatic) -> None:
    plan, summarise, legal, research = LamaticToolkit(
        definitions=DEFINITIONS, client=lamatic.client()
    ).get_tools()

    assert plan.description == "Plan a trip."
    assert list(plan.args) == ["city", "days"]
    assert isinstance(plan, LamaticFlowTool)
    assert plan.output_key == "summary"
    assert list(summarise.args) == ["url"]
    assert list(legal.args) == ["chatMessage"]
    assert list(research.args) == ["prompt"]


def test_toolkit_tools_share_one_client(lamatic: MockLamatic) -> None:
    client = lamatic.client()
    toolkit = LamaticToolkit(definitions=DEFINITIONS, client=client)

    clients = {id(tool.lamatic_client) for tool in toolkit.get_tools()}  # type: ignore[attr-defined]

    assert clients == {id(client)}
    assert toolkit.lamatic_client is client


def test_toolkit_builds_one_client_from_settings() -> None:
    toolkit = LamaticToolkit(
        definitions=DEFINITIONS,
        endpoint="https://demo-project.lamatic.dev",
        project_id="project-123",
        api_key="lt-" + "unit0test0key0abcdef123456",
    )

    clients = {id(tool.lamatic_client) for tool in toolkit.get_tools()}  # type: ignore[attr-defined]

    assert clients == {id(toolkit.lamatic_client)}
    assert toolkit.lamatic_client.endpoint == "https://demo-project.lamatic.dev/graphql"


def test_toolkit_reads_settings_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAMATIC_ENDPOINT", "https://env-project.lamatic.dev/graphql")
    monkeypatch.setenv("LAMATIC_PROJECT_ID", "env-project")
    monkeypatch.setenv("LAMATIC_API_KEY", "lt-env0key0abcdef")

    toolkit = LamaticToolkit(definitions=DEFINITIONS)

    assert toolkit.lamatic_client.project_id == "env-project"


def test_toolkit_rejects_client_with_connection_settings(lamatic: MockLamatic) -> None:
    with pytest.raises(ValueError, match="either client= or connection settings"):
        LamaticToolkit(definitions=DEFINITIONS, client=lamatic.client(), project_id="other")


def test_toolkit_passes_content_settings_to_every_tool(lamatic: MockLamatic) -> None:
    toolkit = LamaticToolkit(
        definitions=DEFINITIONS,
        client=lamatic.client(),
        max_content_chars=500,
        tool_error_types=(LamaticError,),
    )

    for tool in toolkit.get_tools():
        assert isinstance(tool, (LamaticFlowTool, LamaticAgentTool))
        assert tool.max_content_chars == 500
        assert tool.tool_error_types == (LamaticError,)


def test_get_tools_returns_a_new_list(lamatic: MockLamatic) -> None:
    toolkit = LamaticToolkit(definitions=DEFINITIONS, client=lamatic.client())

    toolkit.get_tools().clear()

    assert len(toolkit.get_tools()) == len(DEFINITIONS)


def test_toolkit_tool_runs_through_the_shared_client(lamatic: MockLamatic) -> None:
    lamatic.respond(lamatic.success({"summary": "2 days in Porto"}))
    plan = LamaticToolkit(definitions=DEFINITIONS, client=lamatic.client()).get_tools()[0]

    message = plan.invoke(
        ToolCall(name="plan_trip", args={"city": "Porto", "days": 2}, id="c1", type="tool_call")
    )

    assert message.content == "2 days in Porto"
    assert lamatic.bodies()[0]["variables"]["payload"] == {"city": "Porto", "days": 2}


def test_definition_accepts_a_pydantic_model(lamatic: MockLamatic) -> None:
    class Question(BaseModel):
        question: str

    definition = LamaticToolDefinition(kind="agent", id="research-agent", args_schema=Question)
    tool = LamaticToolkit(definitions=[definition], client=lamatic.client()).get_tools()[0]

    assert tool.args_schema is Question


def test_definition_rejects_unknown_keys() -> None:
    with pytest.raises(ValueError, match="outputKey"):
        LamaticToolDefinition.model_validate({"id": "plan-trip", "outputKey": "summary"})


def test_definition_rejects_a_blank_id() -> None:
    with pytest.raises(ValueError, match="id must not be blank"):
        LamaticToolDefinition(id="   ")


def test_definition_rejects_an_unknown_kind() -> None:
    with pytest.raises(ValueError, match="kind"):
        LamaticToolDefinition.model_validate({"kind": "workflow", "id": "plan-trip"})


def test_invalid_definition_schema_names_the_flow(lamatic: MockLamatic) -> None:
    with pytest.raises(ValueError, match="flow 'plan-trip' is invalid") as caught:
        LamaticToolkit(
            definitions=[{"id": "plan-trip", "schema": '{"city": "varchar"}'}],
            client=lamatic.client(),
        )

    assert "varchar" in str(caught.value)


def test_toolkit_pickles_without_its_credential() -> None:
    toolkit = LamaticToolkit(
        definitions=DEFINITIONS,
        endpoint="https://demo-project.lamatic.dev/graphql",
        project_id="project-123",
        api_key="lt-" + "secret0value0abcdef",
    )

    data = pickle.dumps(toolkit)
    copy = pickle.loads(data)  # noqa: S301 - the test's own bytes

    assert b"lt-" + b"secret0value0abcdef" not in data
    assert [tool.name for tool in copy.get_tools()] == [tool.name for tool in toolkit.get_tools()]
    assert {id(tool.lamatic_client) for tool in copy.get_tools()} == {id(copy.lamatic_client)}


# --- Manifests ------------------------------------------------------------------------------


def test_manifest_file_builds_the_toolkit(tmp_path: Path, lamatic: MockLamatic) -> None:
    path = write_manifest(tmp_path, {"description": "Trip tools", "tools": DEFINITIONS})

    toolkit = LamaticToolkit.from_manifest(path, client=lamatic.client())

    assert toolkit.get_tools()[0].name == "plan_trip"
    assert len(toolkit.get_tools()) == len(DEFINITIONS)


def test_manifest_may_be_a_bare_list(tmp_path: Path) -> None:
    path = write_manifest(tmp_path, DEFINITIONS)

    assert [definition.id for definition in load_manifest(path)] == [
        "plan-trip",
        "article-summariser",
        "legal-rag-chatbot",
        "research-agent",
    ]


def test_manifest_path_may_be_a_string(tmp_path: Path) -> None:
    path = write_manifest(tmp_path, DEFINITIONS)

    assert len(load_manifest(str(path))) == len(DEFINITIONS)


def test_manifest_schema_key_sets_args_schema(tmp_path: Path) -> None:
    path = write_manifest(tmp_path, DEFINITIONS)

    assert load_manifest(path)[0].args_schema == '{"city": "string", "days": "int"}'


def test_manifest_that_is_not_json_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text("{not json", encoding="utf-8")

    with pytest.raises(ValueError, match=r"broken\.json is not valid JSON"):
        load_manifest(path)


def test_manifest_with_unknown_top_level_key_is_rejected(tmp_path: Path) -> None:
    path = write_manifest(tmp_path, {"tools": DEFINITIONS, "flows": []})

    with pytest.raises(ValueError, match="got keys"):
        load_manifest(path)


def test_manifest_without_tools_is_rejected(tmp_path: Path) -> None:
    path = write_manifest(tmp_path, {"description": "nothing"})

    with pytest.raises(ValueError, match='"tools" list'):
        load_manifest(path)


def test_manifest_tools_must_be_a_list(tmp_path: Path) -> None:
    path = write_manifest(tmp_path, {"tools": {"id": "plan-trip"}})

    with pytest.raises(ValueError, match="must be a list"):
        load_manifest(path)


def test_manifest_entry_error_names_the_entry(tmp_path: Path) -> None:
    path = write_manifest(tmp_path, [{"id": "plan-trip"}, {"name": "no id"}])

    with pytest.raises(ValueError, match=r"Entry 1 .* id: Field required"):
        load_manifest(path)


def test_missing_manifest_raises_os_error(tmp_path: Path) -> None:
    with pytest.raises(OSError, match=r"missing\.json"):
        load_manifest(tmp_path / "missing.json")


# --- The example manifest -------------------------------------------------------------------


def test_example_manifest_ships_inside_the_package() -> None:
    package_dir = Path(langchain_lamatic.__file__).parent

    assert Path(str(example_manifest_path())) == package_dir / "examples" / "agentkit_manifest.json"
    assert example_manifest_path().is_file()


def test_example_manifest_covers_every_demo_flow_and_agent() -> None:
    server = LamaticTestServer()  # not started: registering flows needs no socket
    add_demo_flows(server)

    definitions = load_manifest(example_manifest_path())

    assert {d.id for d in definitions if d.kind == "flow"} == set(server.flow_ids)
    assert {d.id for d in definitions if d.kind == "agent"} == set(server.agent_ids)


def test_example_manifest_builds_valid_tools(lamatic: MockLamatic) -> None:
    toolkit = LamaticToolkit.from_manifest(example_manifest_path(), client=lamatic.client())

    names = [tool.name for tool in toolkit.get_tools()]

    assert all(TOOL_NAME_PATTERN.fullmatch(name) for name in names)
    assert len(set(names)) == len(names)
    assert all(tool.description for tool in toolkit.get_tools())


def test_toolkit_rejects_a_misspelled_setting(lamatic: MockLamatic) -> None:
    with pytest.raises(ValueError, match="LamaticToolkit has no setting 'max_retires'"):
        LamaticToolkit(definitions=DEFINITIONS, client=lamatic.client(), max_retires=1)
