"""The langchain-tests standard integration suite for both tool classes, on a local server."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from langchain_core.tools import BaseTool
from langchain_tests.integration_tests import ToolsIntegrationTests

from langchain_lamatic.testing import LamaticTestServer, add_demo_flows
from langchain_lamatic.tools import LamaticAgentTool, LamaticFlowTool

PLAN_TRIP_SCHEMA = (
    '{"city": "string", "days": "int", "budget": "int", "preferences": "string", '
    '"travelDate": "string"}'
)
RESEARCH_SCHEMA = '{"question": "string", "max_sources": "int?"}'


@pytest.fixture(scope="module")
def lamatic_server() -> Iterator[LamaticTestServer]:
    with LamaticTestServer() as server:
        add_demo_flows(server)
        yield server


class LocalServerParams:
    """Points the tool under test at the module's LamaticTestServer."""

    server: LamaticTestServer

    @pytest.fixture(autouse=True)
    def _use_local_server(self, lamatic_server: LamaticTestServer) -> None:
        self.server = lamatic_server

    def connection(self) -> dict[str, Any]:
        return {
            "endpoint": self.server.endpoint,
            "project_id": self.server.project_id,
            "api_key": self.server.api_key,
        }


class TestLamaticFlowToolIntegration(LocalServerParams, ToolsIntegrationTests):
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
            **self.connection(),
        }

    @property
    def tool_invoke_params_example(self) -> dict[str, Any]:
        return {
            "city": "Lisbon",
            "days": 3,
            "budget": 900,
            "preferences": "food, museums",
            "travelDate": "2027-04-10",
        }


class TestLamaticAgentToolIntegration(LocalServerParams, ToolsIntegrationTests):
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
            "output_key": "answer",
            **self.connection(),
        }

    @property
    def tool_invoke_params_example(self) -> dict[str, Any]:
        return {"question": "How do bounded queues keep latency predictable?", "max_sources": 1}
