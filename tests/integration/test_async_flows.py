"""Async flows against LamaticTestServer on loopback: LamaticFlow waits, check_status, feedback."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from langchain_core.callbacks import BaseCallbackHandler

from langchain_lamatic import (
    LamaticClient,
    LamaticExecutionError,
    LamaticFlow,
    LamaticNotFoundError,
    LamaticTimeoutError,
)
from langchain_lamatic.testing import FlowExecutionFailed, LamaticTestServer, add_demo_flows

# Loopback endpoints may poll faster than Lamatic's 3 s minimum, which keeps these tests short.
POLL_INTERVAL = 0.05
RUN_TIME = 0.3
GATE_TIMEOUT = 60.0
REPORT = {"summary": "report on queues", "pages": 3}


def report(payload: dict[str, Any]) -> dict[str, Any]:
    return {"summary": f"report on {payload['topic']}", "pages": 3}


def failing(payload: dict[str, Any]) -> dict[str, Any]:
    raise FlowExecutionFailed("Scraper node failed: site blocked the crawler", status="failed")


class GatedReport:
    """A flow handler that finishes only once the test opens its gate.

    Tests that must see a run in progress use it instead of a run time, so a slow machine
    cannot let the run finish before the client looks.
    """

    def __init__(self) -> None:
        self.gate = threading.Event()

    def __call__(self, payload: dict[str, Any]) -> dict[str, Any]:
        if not self.gate.wait(GATE_TIMEOUT):
            raise FlowExecutionFailed("the test never opened the gate")
        return report(payload)


class OpenGateAfterPolls(BaseCallbackHandler):
    """Records ``lamatic_poll`` events and opens the gate after ``polls`` running ones."""

    def __init__(self, handler: GatedReport, polls: int = 1) -> None:
        self.handler = handler
        self.polls = polls
        self.statuses: list[str] = []

    def on_custom_event(self, name: str, data: Any, **kwargs: Any) -> None:
        if name != "lamatic_poll":
            return
        self.statuses.append(data["status"])
        if self.statuses.count("in-progress") >= self.polls:
            self.handler.gate.set()


@pytest.fixture
def server() -> Iterator[LamaticTestServer]:
    with LamaticTestServer() as running:
        yield running


@pytest.fixture
def gated(server: LamaticTestServer) -> Iterator[GatedReport]:
    handler = GatedReport()
    yield handler
    handler.gate.set()


@pytest.fixture
def client(server: LamaticTestServer) -> Iterator[LamaticClient]:
    with LamaticClient(
        endpoint=server.endpoint, project_id=server.project_id, api_key=server.api_key
    ) as lamatic_client:
        yield lamatic_client


SHAPES = ["documented", "data_output"]
RUNNING_SPELLINGS = ["in-progress", "in_progress"]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("running", RUNNING_SPELLINGS)
def test_invoke_returns_final_result_of_async_flow(
    server: LamaticTestServer,
    client: LamaticClient,
    gated: GatedReport,
    shape: Any,
    running: Any,
) -> None:
    server.add_flow(
        "report", gated, response_type="async", completed_shape=shape, running_status=running
    )
    flow = LamaticFlow(flow_id="report", client=client, poll_interval=POLL_INTERVAL)
    recorder = OpenGateAfterPolls(gated)

    output = flow.invoke({"topic": "queues"}, config={"callbacks": [recorder]})

    assert output == REPORT
    assert recorder.statuses[0] == "in-progress"
    assert recorder.statuses[-1] == "success"


@pytest.mark.parametrize("shape", SHAPES)
async def test_ainvoke_returns_final_result_of_async_flow(
    server: LamaticTestServer, client: LamaticClient, gated: GatedReport, shape: Any
) -> None:
    server.add_flow("report", gated, response_type="async", completed_shape=shape)
    flow = LamaticFlow(
        flow_id="report", client=client, poll_interval=POLL_INTERVAL, output_key="summary"
    )
    recorder = OpenGateAfterPolls(gated)

    output = await flow.ainvoke({"topic": "queues"}, config={"callbacks": [recorder]})

    assert output == "report on queues"
    assert recorder.statuses[0] == "in-progress"


@pytest.mark.parametrize(
    ("flow_id", "output_key"),
    [("repo-analyzer", "projectOverview"), ("sentinel-triage", "attack_technique_id")],
)
def test_demo_async_flows_return_their_results(
    server: LamaticTestServer, client: LamaticClient, flow_id: str, output_key: str
) -> None:
    samples = add_demo_flows(server, async_run_time=RUN_TIME)
    flow = LamaticFlow(flow_id=flow_id, client=client, poll_interval=POLL_INTERVAL)
    acknowledgement = client.execute_flow(flow_id, samples[flow_id])

    output = flow.invoke(samples[flow_id])

    assert acknowledgement.result == {"requestId": acknowledgement.request_id}
    assert isinstance(output[output_key], str)
    assert "requestId" not in output


def test_polls_keep_the_configured_interval(
    server: LamaticTestServer, client: LamaticClient, gated: GatedReport
) -> None:
    server.add_flow("report", gated, response_type="async")
    flow = LamaticFlow(flow_id="report", client=client, poll_interval=0.2)

    flow.invoke({"topic": "pacing"}, config={"callbacks": [OpenGateAfterPolls(gated, 3)]})

    times = [request.time for request in server.requests]
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert len(gaps) >= 3
    # Only a lower bound: a loaded machine makes gaps longer, never shorter.
    assert min(gaps) >= 0.15


def test_deadline_raises_timeout_and_check_status_resumes(
    server: LamaticTestServer, client: LamaticClient, gated: GatedReport
) -> None:
    server.add_flow("report", gated, response_type="async")
    flow = LamaticFlow(
        flow_id="report", client=client, poll_interval=POLL_INTERVAL, poll_deadline=0.3
    )

    with pytest.raises(LamaticTimeoutError) as caught:
        flow.invoke({"topic": "deadlines"})
    gated.gate.set()

    request_id = caught.value.request_id
    assert request_id is not None
    assert caught.value.flow_id == "report"
    assert f"check_status({request_id!r}, wait=True)" in str(caught.value)

    resumed = client.check_status(request_id, wait=True, poll_interval=POLL_INTERVAL, deadline=30)

    assert resumed.result == {"summary": "report on deadlines", "pages": 3}


async def test_async_deadline_raises_timeout_with_request_id(
    server: LamaticTestServer, client: LamaticClient, gated: GatedReport
) -> None:
    server.add_flow("report", gated, response_type="async")
    flow = LamaticFlow(
        flow_id="report", client=client, poll_interval=POLL_INTERVAL, poll_deadline=0.3
    )

    with pytest.raises(LamaticTimeoutError) as caught:
        await flow.ainvoke({"topic": "deadlines"})

    assert caught.value.request_id is not None


@pytest.mark.parametrize("shape", SHAPES)
def test_failed_async_run_raises_execution_error(
    server: LamaticTestServer, client: LamaticClient, shape: Any
) -> None:
    server.add_flow("crawl", failing, response_type="async", run_time=0.1, completed_shape=shape)
    flow = LamaticFlow(flow_id="crawl", client=client, poll_interval=POLL_INTERVAL)

    with pytest.raises(LamaticExecutionError) as caught:
        flow.invoke({})

    assert caught.value.request_id is not None
    assert "site blocked the crawler" in str(caught.value)


def test_flow_without_waiting_returns_request_id_for_later(
    server: LamaticTestServer, client: LamaticClient, gated: GatedReport
) -> None:
    server.add_flow("report", gated, response_type="async")
    flow = LamaticFlow(flow_id="report", client=client, wait_for_async_result=False)

    acknowledgement = flow.invoke({"topic": "later"})
    first = client.check_status(acknowledgement["requestId"])
    gated.gate.set()
    final = client.check_status(
        acknowledgement["requestId"], wait=True, poll_interval=POLL_INTERVAL
    )

    assert acknowledgement["status"] == "success"
    assert first.status == "in-progress"
    assert final.status == "success"
    assert final.result == {"summary": "report on later", "pages": 3}


def test_documented_shape_keeps_nodes_in_metadata(
    server: LamaticTestServer, client: LamaticClient
) -> None:
    server.add_flow("report", report, response_type="async", run_time=0.1)
    request_id = client.execute_flow("report", {"topic": "nodes"}).request_id
    assert request_id is not None

    final = client.check_status(request_id, wait=True, poll_interval=POLL_INTERVAL)

    assert final.metadata["nodes"][0]["nodeId"] == "triggerNode_1"
    assert final.metadata["statusCode"] == 200


def test_unknown_request_id_raises_not_found(client: LamaticClient) -> None:
    with pytest.raises(LamaticNotFoundError) as caught:
        client.check_status("no-such-request")

    assert caught.value.request_id == "no-such-request"


async def test_poll_progress_shows_in_astream_events(
    server: LamaticTestServer, client: LamaticClient, gated: GatedReport
) -> None:
    server.add_flow("report", gated, response_type="async")
    flow = LamaticFlow(
        flow_id="report", client=client, poll_interval=POLL_INTERVAL, streaming=False
    )

    events = []
    async for event in flow.astream_events({"topic": "events"}, version="v2"):
        events.append(event)
        if event["name"] == "lamatic_poll":
            gated.gate.set()

    polls = [event["data"] for event in events if event["name"] == "lamatic_poll"]
    assert len(polls) >= 2
    assert [poll["attempt"] for poll in polls] == list(range(1, len(polls) + 1))
    assert polls[0]["status"] == "in-progress"
    assert polls[-1]["status"] == "success"
    assert polls[-1]["elapsed"] >= polls[0]["elapsed"]
    assert events[-1]["data"]["output"] == {"summary": "report on events", "pages": 3}


def test_feedback_is_stored_for_finished_run(
    server: LamaticTestServer, client: LamaticClient
) -> None:
    server.add_flow("report", report, response_type="async", run_time=0.1)
    request_id = client.execute_flow("report", {"topic": "feedback"}).request_id
    assert request_id is not None
    client.check_status(request_id, wait=True, poll_interval=POLL_INTERVAL)

    response = client.submit_feedback(request_id, 5, "useful", {"user": "u-1"})

    assert response.status == "success"
    stored = server.feedback[0]
    assert (stored.request_id, stored.rating, stored.comment) == (request_id, 5, "useful")
    assert stored.metadata == {"user": "u-1"}


async def test_feedback_for_unknown_request_raises_not_found(client: LamaticClient) -> None:
    with pytest.raises(LamaticNotFoundError) as caught:
        await client.asubmit_feedback("no-such-request", 1)

    assert caught.value.request_id == "no-such-request"
