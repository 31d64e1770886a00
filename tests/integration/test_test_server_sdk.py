"""LamaticTestServer against Lamatic's official Python SDK, and the shipped demo flows."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import httpx
import pytest
from lamatic import Lamatic

from langchain_lamatic.testing import LamaticTestServer, add_demo_flows

FIXTURE = Path(__file__).parents[1] / "fixtures" / "agentkit-flows.json"
CONTRACTS = {flow["name"]: flow for flow in json.loads(FIXTURE.read_text())["flows"]}


@pytest.fixture
def server() -> Iterator[LamaticTestServer]:
    with LamaticTestServer() as test_server:
        yield test_server


@pytest.fixture
def samples(server: LamaticTestServer) -> dict[str, dict[str, Any]]:
    return add_demo_flows(server, async_run_time=0.3)


def sdk(
    server: LamaticTestServer, api_key: str | None = None, access_token: str | None = None
) -> Lamatic:
    """The official SDK client for `server`; it uses the server's API key by default."""
    if api_key is None and access_token is None:
        api_key = server.api_key
    return Lamatic(
        endpoint=server.endpoint,
        project_id=server.project_id,
        api_key=api_key,
        access_token=access_token,
    )


# Official SDK


def test_sdk_executes_a_flow_with_an_api_key(
    server: LamaticTestServer, samples: dict[str, dict[str, Any]]
) -> None:
    response = sdk(server).execute_flow("article-summariser", samples["article-summariser"])
    assert response.status == "success"
    assert response.result is not None
    assert "Why queues matter" in response.result["summary"]
    assert response.status_code == 200


def test_sdk_executes_a_flow_with_an_access_token(
    server: LamaticTestServer, samples: dict[str, dict[str, Any]]
) -> None:
    client = sdk(server, access_token=server.create_access_token(expires_in=60))
    response = client.execute_flow("plan-trip", samples["plan-trip"])
    assert response.status == "success"
    assert response.result is not None
    assert response.result["summary"].startswith("3 days in Lisbon")
    assert "x-lamatic-signature" in server.requests[-1].headers
    assert "authorization" not in server.requests[-1].headers


def test_sdk_checks_the_status_of_an_async_flow(
    server: LamaticTestServer, samples: dict[str, dict[str, Any]]
) -> None:
    client = sdk(server)
    started = client.execute_flow("sentinel-triage", samples["sentinel-triage"])
    assert started.result is not None
    done = client.check_status(started.result["requestId"], poll_interval=1, poll_timeout=30)
    assert done.status == "success"
    # The SDK selects `{ status result }`; neither completed shape has a top-level `result`.
    assert done.result is None
    polls = [record for record in server.requests if record.operation == "checkStatus"]
    assert len(polls) >= 1
    assert "{" in polls[0].json["query"].split("checkStatus", 1)[1]


def test_sdk_sees_in_progress_and_keeps_polling(server: LamaticTestServer) -> None:
    server.add_flow(
        "report",
        lambda payload: {"ok": True},
        response_type="async",
        run_time=0.5,
        running_status="in_progress",
    )
    client = sdk(server)
    started = client.execute_flow("report", {})
    assert started.result is not None
    done = client.check_status(started.result["requestId"], poll_interval=1, poll_timeout=30)
    polls = [record for record in server.requests if record.operation == "checkStatus"]
    assert done.status == "success"
    assert len(polls) >= 2


async def test_sdk_async_execute_flow(
    server: LamaticTestServer, samples: dict[str, dict[str, Any]]
) -> None:
    response = await sdk(server).async_execute_flow("docsense-intake", samples["docsense-intake"])
    assert response.status == "success"
    assert response.result is not None
    assert response.result["result"].startswith("```json")


def test_sdk_reports_flow_not_found(server: LamaticTestServer) -> None:
    response = sdk(server).execute_flow("missing", {})
    assert response.status == "error"
    assert response.message == "Flow not found"
    assert response.status_code == 200


def test_sdk_reports_an_invalid_api_key(server: LamaticTestServer) -> None:
    response = sdk(server, api_key="lt-wrong").execute_flow("missing", {})
    assert response.status == "error"
    assert response.message == "Invalid API key"
    assert response.status_code == 401


def test_sdk_reports_a_failed_node(server: LamaticTestServer, samples: dict[str, Any]) -> None:
    response = sdk(server).execute_flow("article-summariser", {"url": "not a url"})
    assert response.status == "error"
    assert response.result == {
        "errorMsg": "Scraper node failed: 'not a url' is not an absolute URL"
    }


# Demo flows


def test_demo_flows_register_every_fixture_flow(
    server: LamaticTestServer, samples: dict[str, dict[str, Any]]
) -> None:
    assert set(server.flow_ids) == set(CONTRACTS)
    assert server.agent_ids == ("research-agent",)
    assert set(samples) == set(CONTRACTS) | {"research-agent"}


def test_shipped_contracts_match_the_test_fixture() -> None:
    shipped = resources.files("langchain_lamatic.testing").joinpath("agentkit_flows.json")
    assert json.loads(shipped.read_text(encoding="utf-8")) == json.loads(FIXTURE.read_text())


REALTIME_FLOWS = [name for name, flow in CONTRACTS.items() if flow["response_type"] == "realtime"]
ASYNC_FLOWS = [name for name, flow in CONTRACTS.items() if flow["response_type"] == "async"]


@pytest.mark.parametrize("flow_id", REALTIME_FLOWS)
def test_demo_flow_result_has_the_fixture_shape(
    server: LamaticTestServer, samples: dict[str, dict[str, Any]], flow_id: str
) -> None:
    response = sdk(server).execute_flow(flow_id, samples[flow_id])
    expected = CONTRACTS[flow_id]["sample_result"]
    assert response.status == "success"
    assert response.result is not None
    assert set(response.result) == set(expected)
    for key, value in expected.items():
        assert type(response.result[key]) is type(value), key


def post(server: LamaticTestServer, query: str, variables: dict[str, Any]) -> Any:
    headers = {"Authorization": f"Bearer {server.api_key}", "x-project-id": server.project_id}
    with httpx.Client(timeout=10) as http:
        response = http.post(
            server.endpoint, json={"query": query, "variables": variables}, headers=headers
        )
    return response.json()


@pytest.mark.parametrize("flow_id", ASYNC_FLOWS)
def test_async_demo_flow_completes_with_the_fixture_shape(
    server: LamaticTestServer, samples: dict[str, dict[str, Any]], flow_id: str
) -> None:
    started = sdk(server).execute_flow(flow_id, samples[flow_id])
    assert started.result is not None
    query = "query C($id: String!) { checkStatus(requestId: $id) }"
    deadline = time.monotonic() + 10
    while True:
        status = post(server, query, {"id": started.result["requestId"]})["data"]["checkStatus"]
        if status["status"] != "in-progress" or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    result = status["output"] if "output" in status else status["data"]["output"]["result"]
    assert status["status"] == "success"
    assert set(result) == set(CONTRACTS[flow_id]["sample_result"])


CHANGED_PAYLOADS = {
    "article-summariser": {"url": "https://example.org/blog/caching-at-the-edge"},
    "agentic-generate-content": {"mode": "text", "instructions": "Describe a rain jacket."},
    "automation-hiring": {
        "name": "Bo Example",
        "email": "bo@example.org",
        "job_description": "Frontend engineer, React",
        "resume_url": "https://example.org/cv/bo.pdf",
    },
    "plan-trip": {
        "city": "Kyoto",
        "days": 2,
        "budget": 500,
        "preferences": "temples",
        "travelDate": "2027-05-01",
    },
    "docsense-intake": {"document": "Receipt from Contoso, total 18.50 USD"},
    "legal-rag-chatbot": {"chatMessage": "Can my employer change my shift without notice?"},
    "sre-incident-postmortem-agent": {
        "service_name": "search",
        "incident_title": "Slow queries",
        "alert_details": "p99 above 2 s",
        "logs_or_symptoms": "lock waits",
        "timeline_notes": "09:00 alert, 09:30 index rebuilt",
        "impact_description": "12% of searches timed out",
        "current_status": "monitoring",
    },
    "research-agent": {"question": "Why do retries need jitter?"},
}


@pytest.mark.parametrize("flow_id", sorted(CHANGED_PAYLOADS))
def test_demo_results_depend_on_the_payload(
    server: LamaticTestServer, samples: dict[str, dict[str, Any]], flow_id: str
) -> None:
    kind = "executeAgent" if flow_id == "research-agent" else "executeWorkflow"
    argument = "agentId" if flow_id == "research-agent" else "workflowId"
    query = (
        f"query R($id: String!, $p: JSON!) {{ {kind}({argument}: $id, payload: $p) {{ result }} }}"
    )
    results = [
        post(server, query, {"id": flow_id, "p": payload})["data"][kind]["result"]
        for payload in (samples[flow_id], CHANGED_PAYLOADS[flow_id])
    ]
    assert results[0] != results[1]


def test_docsense_result_is_json_inside_a_code_fence(
    server: LamaticTestServer, samples: dict[str, dict[str, Any]]
) -> None:
    result = sdk(server).execute_flow("docsense-intake", samples["docsense-intake"]).result
    assert result is not None
    fenced = result["result"]
    assert fenced.startswith("```json\n")
    assert fenced.endswith("\n```")
    assert json.loads(fenced[len("```json\n") : -len("\n```")]) == {
        "doc_type": "invoice",
        "vendor": "Northwind",
        "due": "2027-01-31",
        "total": 1240.0,
        "currency": "EUR",
    }


def test_demo_flow_schema_rejects_a_wrong_type(
    server: LamaticTestServer, samples: dict[str, dict[str, Any]]
) -> None:
    payload = {**samples["plan-trip"], "days": "three"}
    response = sdk(server).execute_flow("plan-trip", payload)
    assert response.status == "error"
    assert response.status_code == 422
    assert response.message is not None
    assert "days" in response.message
