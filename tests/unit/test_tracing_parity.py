"""``ainvoke`` traces the same runs as ``invoke``.

``LamaticFlow.ainvoke`` runs the steps of ``Runnable._acall_with_config`` itself, for speed,
so these tests compare the complete run trees that a LangChain tracer records for the sync
and the async path, and check the context that nested runnables see.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from uuid import UUID, uuid4

import httpx
import pytest
from langchain_core.callbacks import adispatch_custom_event, dispatch_custom_event
from langchain_core.runnables import RunnableConfig, RunnableLambda
from langchain_core.runnables.config import var_child_runnable_config
from langchain_core.tracers.base import BaseTracer
from langchain_core.tracers.schemas import Run

from langchain_lamatic import LamaticAgent, LamaticFlow, LamaticNotFoundError

if TYPE_CHECKING:
    from tests.unit.conftest import MockLamatic

LOOPBACK_ENDPOINT = "http://127.0.0.1:8123/graphql"
REQUEST_ID = "req-parity-1"
RESULT = {"summary": "done"}


class TreeTracer(BaseTracer):
    """Keeps every finished root run, with its child runs, and the custom events of each run."""

    def __init__(self) -> None:
        super().__init__()
        self.roots: list[Run] = []
        self.custom_events: dict[UUID, list[str]] = {}

    def _persist_run(self, run: Run) -> None:
        self.roots.append(run)

    def on_custom_event(self, name: str, data: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self.custom_events.setdefault(run_id, []).append(name)


def describe(run: Run, tracer: TreeTracer) -> dict[str, Any]:
    """Return the parts of a run that must not differ between sync and async, recursively."""
    return {
        "name": run.name,
        "run_type": run.run_type,
        "inputs": run.inputs,
        "outputs": run.outputs,
        "error": (run.error or "").splitlines()[0] if run.error else None,
        "tags": sorted(run.tags or []),
        "metadata": {
            key: value
            for key, value in (run.extra or {}).get("metadata", {}).items()
            # LangChain adds the thread and the loop's running state to some runs.
            if not key.startswith("ls_")
        },
        "custom_events": tracer.custom_events.get(run.id, []),
        "children": [describe(child, tracer) for child in run.child_runs],
    }


def flow(lamatic: MockLamatic, **fields: Any) -> LamaticFlow:
    fields.setdefault("flow_id", "flow-1")
    return LamaticFlow(client=lamatic.client(max_retries=0), **fields)


async def trace_both(
    runnable: Any, value: Any, config: RunnableConfig | None = None
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Run ``invoke`` and ``ainvoke`` with a tracer each, and return both run trees."""
    trees = []
    for call in ("sync", "async"):
        tracer = TreeTracer()
        traced: Any = {**(config or {}), "callbacks": [tracer]}
        try:
            if call == "sync":
                runnable.invoke(value, traced)
            else:
                await runnable.ainvoke(value, traced)
        except Exception:  # noqa: S110 - the error is part of the traced run compared below
            pass
        trees.append([describe(root, tracer) for root in tracer.roots])
    return trees[0], trees[1]


async def test_plain_call_traces_the_same_run(lamatic: MockLamatic) -> None:
    sync_tree, async_tree = await trace_both(flow(lamatic), {"url": "https://example.org"})

    assert sync_tree == async_tree
    assert len(sync_tree) == 1
    assert sync_tree[0]["name"] == "LamaticFlow:flow-1"
    assert sync_tree[0]["run_type"] == "chain"


async def test_config_fields_traced_the_same(lamatic: MockLamatic) -> None:
    config: RunnableConfig = {
        "tags": ["nightly"],
        "metadata": {"user": "u-1"},
        "run_name": "summarise-step",
    }

    sync_tree, async_tree = await trace_both(flow(lamatic), {}, config)

    assert sync_tree == async_tree
    assert sync_tree[0]["name"] == "summarise-step"
    assert sync_tree[0]["tags"] == ["nightly"]
    assert sync_tree[0]["metadata"]["lamatic_flow_id"] == "flow-1"


async def test_agent_runs_are_traced_the_same(lamatic: MockLamatic) -> None:
    agent = LamaticAgent(agent_id="agent-1", client=lamatic.client(max_retries=0))

    sync_tree, async_tree = await trace_both(agent, {"question": "why?"})

    assert sync_tree == async_tree
    assert sync_tree[0]["metadata"]["lamatic_agent_id"] == "agent-1"


async def test_errors_are_traced_the_same(lamatic: MockLamatic) -> None:
    lamatic.default = lamatic.graphql_errors("Flow not found")

    sync_tree, async_tree = await trace_both(flow(lamatic), {})

    assert sync_tree == async_tree
    assert sync_tree[0]["error"] is not None
    assert "LamaticNotFoundError" in sync_tree[0]["error"]


async def test_ainvoke_raises_the_error_it_traces(lamatic: MockLamatic) -> None:
    lamatic.default = lamatic.graphql_errors("Flow not found")

    with pytest.raises(LamaticNotFoundError):
        await flow(lamatic).ainvoke({})


async def test_run_id_from_config_names_the_run(lamatic: MockLamatic) -> None:
    tracer = TreeTracer()
    run_id = uuid4()
    config: Any = {"callbacks": [tracer], "run_id": run_id}

    await flow(lamatic).ainvoke({}, config)

    assert tracer.roots[0].id == run_id


async def test_run_id_not_reused(lamatic: MockLamatic) -> None:
    tracer = TreeTracer()
    run_id = uuid4()
    config: Any = {"callbacks": [tracer], "run_id": run_id}
    runnable = flow(lamatic)

    await runnable.ainvoke({}, config)
    await runnable.ainvoke({}, {"callbacks": [tracer]})

    ids = [root.id for root in tracer.roots]
    assert ids[0] == run_id
    assert ids[1] != run_id


async def test_runs_nest_the_same_inside_a_chain(lamatic: MockLamatic) -> None:
    chain = RunnableLambda(lambda value: value) | flow(lamatic)

    sync_tree, async_tree = await trace_both(chain, {"url": "https://example.org"})

    assert sync_tree == async_tree
    assert [child["name"] for child in sync_tree[0]["children"]] == [
        "RunnableLambda",
        "LamaticFlow:flow-1",
    ]


async def test_flow_called_inside_a_lambda_nests_under_it(lamatic: MockLamatic) -> None:
    runnable = flow(lamatic)

    def call_sync(value: Any) -> Any:
        return runnable.invoke(value)

    async def call_async(value: Any) -> Any:
        return await runnable.ainvoke(value)

    outer = RunnableLambda(call_sync, afunc=call_async, name="outer")
    sync_tree, async_tree = await trace_both(outer, {})

    assert sync_tree == async_tree
    assert sync_tree[0]["children"][0]["name"] == "LamaticFlow:flow-1"


async def test_poll_events_are_traced_the_same(lamatic: MockLamatic) -> None:
    def acknowledgement(request: httpx.Request) -> httpx.Response:
        data = {"executeWorkflow": {"status": "success", "result": {"requestId": REQUEST_ID}}}
        return httpx.Response(200, json={"data": data}, request=request)

    def still_running(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200, json={"data": {"checkStatus": {"status": "in-progress"}}}, request=request
        )

    def finished(request: httpx.Request) -> httpx.Response:
        data = {"checkStatus": {"status": "success", "data": {"output": {"result": RESULT}}}}
        return httpx.Response(200, json={"data": data}, request=request)

    client = lamatic.client(endpoint=LOOPBACK_ENDPOINT, max_retries=0)
    slow = LamaticFlow(flow_id="slow-flow", client=client, poll_interval=0.01)
    lamatic.respond(acknowledgement, still_running, finished)
    lamatic.respond(acknowledgement, still_running, finished)

    sync_tree, async_tree = await trace_both(slow, {})

    assert sync_tree == async_tree
    assert sync_tree[0]["outputs"] == RESULT
    assert sync_tree[0]["custom_events"] == ["lamatic_poll", "lamatic_poll"]


async def test_nested_code_sees_parent(lamatic: MockLamatic) -> None:
    # Custom events dispatched from inside the flow's run (as the poll loop does) and the
    # config context that nested runnables inherit must both point at the flow's run.
    seen: dict[str, Any] = {}
    runnable = flow(lamatic)
    original = runnable._client.aexecute_flow

    async def spy(*args: Any, **kwargs: Any) -> Any:
        child_config = var_child_runnable_config.get()
        seen["callbacks"] = child_config.get("callbacks") if child_config else None
        await adispatch_custom_event("inside", {"step": 1})
        return await original(*args, **kwargs)

    object.__setattr__(runnable._client, "aexecute_flow", spy)
    tracer = TreeTracer()

    await runnable.ainvoke({}, {"callbacks": [tracer]})

    root = tracer.roots[0]
    assert seen["callbacks"] is not None
    assert seen["callbacks"].parent_run_id == root.id
    assert tracer.custom_events[root.id] == ["inside"]


def test_sync_nested_code_sees_parent(lamatic: MockLamatic) -> None:
    seen: dict[str, Any] = {}
    runnable = flow(lamatic)
    original = runnable._client.execute_flow

    def spy(*args: Any, **kwargs: Any) -> Any:
        child_config = var_child_runnable_config.get()
        seen["callbacks"] = child_config.get("callbacks") if child_config else None
        dispatch_custom_event("inside", {"step": 1})
        return original(*args, **kwargs)

    object.__setattr__(runnable._client, "execute_flow", spy)
    tracer = TreeTracer()

    runnable.invoke({}, {"callbacks": [tracer]})

    root = tracer.roots[0]
    assert seen["callbacks"].parent_run_id == root.id
    assert tracer.custom_events[root.id] == ["inside"]


async def test_astream_events_reports_the_same_run(lamatic: MockLamatic) -> None:
    events = [
        (event["event"], event["name"])
        async for event in flow(lamatic, streaming=False).astream_events({}, version="v2")
    ]

    assert events[0] == ("on_chain_start", "LamaticFlow:flow-1")
    assert events[-1] == ("on_chain_end", "LamaticFlow:flow-1")


async def test_unexpected_keyword_arguments_raise_as_in_invoke(lamatic: MockLamatic) -> None:
    runnable = flow(lamatic)

    with pytest.raises(TypeError, match="unexpected keyword argument 'colour'"):
        runnable.invoke({}, colour="blue")
    with pytest.raises(TypeError, match="unexpected keyword argument 'colour'"):
        await runnable.ainvoke({}, colour="blue")


async def test_parent_run_ids_match_between_paths(lamatic: MockLamatic) -> None:
    parents: dict[str, list[bool]] = {"sync": [], "async": []}
    chain = RunnableLambda(lambda value: value, name="first") | flow(lamatic)
    for call in ("sync", "async"):
        tracer = TreeTracer()
        config: Any = {"callbacks": [tracer]}
        if call == "sync":
            chain.invoke({}, config)
        else:
            await chain.ainvoke({}, config)
        root = tracer.roots[0]
        parents[call] = [
            child.parent_run_id == root.id
            for child in root.child_runs  # type: ignore[misc]
        ]

    assert parents["sync"] == parents["async"] == [True, True]
