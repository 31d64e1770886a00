"""Tool names: every flow or agent name becomes a valid, stable and unique tool name."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from langchain_lamatic.client import LamaticClient
from langchain_lamatic.toolkit import LamaticToolkit
from langchain_lamatic.tools import (
    TOOL_NAME_PATTERN,
    LamaticAgentTool,
    LamaticFlowTool,
    sanitise_tool_name,
    unique_tool_names,
)


def _client() -> LamaticClient:
    return LamaticClient(
        endpoint="https://demo-project.lamatic.dev/graphql",
        project_id="project-123",
        api_key="lt-" + "unit0test0key0abcdef123456",
    )


@pytest.mark.parametrize(
    "name",
    ["plan-trip", "plan_trip", "PlanTrip2", "a", "x" * 64, "research-agent"],
)
def test_valid_name_is_unchanged(name: str) -> None:
    assert sanitise_tool_name(name) == name


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Plan trip", "Plan_trip"),
        ("plan.trip.v2", "plan_trip_v2"),
        ("kits/hiring/flows", "kits_hiring_flows"),
        ("  padded name  ", "padded_name"),
        ("Résumé screener", "Resume_screener"),
        ("Straße über Köln", "Strasse_uber_Koln"),
        ("Ærø Łódź", "AEro_Lodz"),
        ("naïve café", "naive_cafe"),
        ("flow: summarise (v1.2)!", "flow_summarise_v1_2"),
        ("trip -- planner", "trip_--_planner"),
    ],
)
def test_awkward_name_becomes_valid(name: str, expected: str) -> None:
    assert sanitise_tool_name(name) == expected


def test_empty_name_becomes_fallback() -> None:
    assert sanitise_tool_name("") == "lamatic_tool"


def test_name_of_only_symbols_gets_fallback_with_hash() -> None:
    name = sanitise_tool_name("日本語のフロー")

    assert name.startswith("lamatic_tool_")
    assert TOOL_NAME_PATTERN.fullmatch(name)


def test_names_of_only_symbols_stay_distinct() -> None:
    assert sanitise_tool_name("日本語") != sanitise_tool_name("中文")


def test_custom_fallback_is_used() -> None:
    assert sanitise_tool_name("...", fallback="lamatic_flow").startswith("lamatic_flow_")


def test_invalid_fallback_is_rejected() -> None:
    with pytest.raises(ValueError, match="fallback must match"):
        sanitise_tool_name("x y", fallback="bad fallback")


def test_long_name_is_cut_to_64_characters() -> None:
    name = sanitise_tool_name("summarise " * 20)

    assert len(name) == 64
    assert TOOL_NAME_PATTERN.fullmatch(name)


def test_long_name_keeps_its_prefix() -> None:
    assert sanitise_tool_name("a_very_long_flow_name_" * 5).startswith("a_very_long_flow_name_")


def test_long_name_is_stable() -> None:
    long_name = "incident postmortem drafting agent for the payments platform team v2"

    assert sanitise_tool_name(long_name) == sanitise_tool_name(long_name)


def test_long_names_with_shared_prefix_differ() -> None:
    prefix = "x" * 70

    assert sanitise_tool_name(prefix + "one") != sanitise_tool_name(prefix + "two")


def test_long_valid_characters_name_is_cut() -> None:
    assert len(sanitise_tool_name("x" * 65)) == 64


@given(st.text(max_size=200))
def test_any_text_becomes_a_valid_name(name: str) -> None:
    assert TOOL_NAME_PATTERN.fullmatch(sanitise_tool_name(name))


def test_duplicate_names_get_numbered() -> None:
    assert unique_tool_names(["search", "search", "search"]) == ["search", "search_2", "search_3"]


def test_names_equal_after_sanitising_are_made_unique() -> None:
    assert unique_tool_names(["plan trip", "plan.trip", "plan_trip"]) == [
        "plan_trip",
        "plan_trip_2",
        "plan_trip_3",
    ]


def test_numbered_name_skips_names_already_taken() -> None:
    assert unique_tool_names(["search", "search_2", "search"]) == [
        "search",
        "search_2",
        "search_3",
    ]


def test_numbered_long_name_stays_within_64_characters() -> None:
    names = unique_tool_names(["x" * 64, "x" * 64])

    assert len(names[1]) == 64
    assert names[0] != names[1]


@given(st.lists(st.text(max_size=80), max_size=12))
def test_any_names_become_valid_and_unique(names: list[str]) -> None:
    result = unique_tool_names(names)

    assert len(result) == len(names)
    assert len(set(result)) == len(result)
    assert all(TOOL_NAME_PATTERN.fullmatch(name) for name in result)


def test_flow_tool_sanitises_the_given_name() -> None:
    tool = LamaticFlowTool(flow_id="plan-trip", name="Plan trip (v1.2)", client=_client())

    assert tool.name == "Plan_trip_v1_2"


def test_flow_tool_name_defaults_to_the_flow_id() -> None:
    tool = LamaticFlowTool(flow_id="kits/hiring/automation-hiring", client=_client())

    assert tool.name == "kits_hiring_automation-hiring"


def test_agent_tool_uses_agent_fallback() -> None:
    tool = LamaticAgentTool(agent_id="研究", client=_client())

    assert tool.name.startswith("lamatic_agent_")


def test_toolkit_makes_awkward_duplicate_names_unique() -> None:
    toolkit = LamaticToolkit(
        definitions=[
            {"id": "flow-1", "name": "Summarise article"},
            {"id": "flow-2", "name": "summarise.article"},
            {"id": "flow-3", "name": "Summarise article"},
            {"id": "flow-4", "name": "ümlaut flow " + "z" * 80},
            {"kind": "agent", "id": "agent-1", "name": "Summarise article"},
        ],
        client=_client(),
    )

    names = [tool.name for tool in toolkit.get_tools()]

    assert names[:3] == ["Summarise_article", "summarise_article", "Summarise_article_2"]
    assert names[4] == "Summarise_article_3"
    assert len(set(names)) == len(names)
    assert all(TOOL_NAME_PATTERN.fullmatch(name) for name in names)
