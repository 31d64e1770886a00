"""The langchain-tests standard unit suite for both tool classes."""

from __future__ import annotations

from typing import Any

from langchain_core.tools import BaseTool
from langchain_tests.unit_tests import ToolsUnitTests

from langchain_lamatic.tools import LamaticAgentTool, LamaticFlowTool

ENDPOINT = "https://demo-project.lamatic.dev/graphql"
PROJECT_ID = "project-123"
API_KEY = "lt-" + "unit0test0key0abcdef123456"

PLAN_TRIP_SCHEMA = (
    '{"city": "string", "days": "int", "budget": "int", "preferences": "string", '
    '"travelDate": "string"}'
)
RESEARCH_SCHEMA = '{"question": "string", "max_sources": "int?"}'


class TestLamaticFlowToolUnit(ToolsUnitTests):
    @property
    def tool_constructor(self) -> type[BaseTool]:
        return LamaticFlowTool

    @property
    def tool_constructor_params(self) -> dict[str, Any]:
        return {
            "flow_id": "plan-trip",
            "name": "plan_trip",
            "description": "Plan a trip to a city for a number of days within a budget.",
            "args_schema": PLAN_TRIP_SCHEMA,
            "endpoint": ENDPOINT,
            "project_id": PROJECT_ID,
            "api_key": API_KEY,
        }

    @property
    def tool_invoke_params_example(self) -> dict[str, Any]:
        return {
            "city": "Lisbon",
            "days": 3,
            "budget": 900,
            "preferences": "food",
            "travelDate": "2027-04-10",
        }

    @property
    def init_from_env_params(self) -> tuple[dict[str, str], dict[str, Any], dict[str, Any]]:
        return (
            {
                "LAMATIC_ENDPOINT": ENDPOINT,
                "LAMATIC_PROJECT_ID": PROJECT_ID,
                "LAMATIC_API_KEY": API_KEY,
            },
            {"flow_id": "plan-trip", "args_schema": PLAN_TRIP_SCHEMA},
            {"endpoint": ENDPOINT, "project_id": PROJECT_ID, "api_key": API_KEY},
        )


class TestLamaticAgentToolUnit(ToolsUnitTests):
    @property
    def tool_constructor(self) -> type[BaseTool]:
        return LamaticAgentTool

    @property
    def tool_constructor_params(self) -> dict[str, Any]:
        return {
            "agent_id": "research-agent",
            "name": "research",
            "description": "Research a question and return an answer with its sources.",
            "args_schema": RESEARCH_SCHEMA,
            "endpoint": ENDPOINT,
            "project_id": PROJECT_ID,
            "api_key": API_KEY,
        }

    @property
    def tool_invoke_params_example(self) -> dict[str, Any]:
        return {"question": "How do bounded queues keep latency predictable?"}

    @property
    def init_from_env_params(self) -> tuple[dict[str, str], dict[str, Any], dict[str, Any]]:
        return (
            {
                "LAMATIC_ENDPOINT": ENDPOINT,
                "LAMATIC_PROJECT_ID": PROJECT_ID,
                "LAMATIC_API_KEY": API_KEY,
            },
            {"agent_id": "research-agent"},
            {"endpoint": ENDPOINT, "project_id": PROJECT_ID, "api_key": API_KEY},
        )
