"""LamaticFlow and LamaticAgent in LangChain chains, against a LamaticTestServer on 127.0.0.1."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.output_parsers import JsonOutputParser, StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnableLambda, RunnableParallel
from pydantic import BaseModel, SecretStr

from langchain_lamatic import (
    CONFIG_ACCESS_TOKEN,
    RETRYABLE_ERRORS,
    LamaticAgent,
    LamaticClient,
    LamaticExecutionError,
    LamaticFlow,
    LamaticNotFoundError,
    LamaticPermissionError,
    LamaticServerError,
)
from langchain_lamatic.testing import Fault, LamaticTestServer

ARTICLE = {"url": "https://example.org/posts/bounded-queues"}
ARTICLE_SUMMARY = (
    'The post "Bounded queues" on example.org makes 2 key points and closes with practical '
    "advice for engineers."
)
INVOICE = {"document": "Invoice 2291 from Northwind, due 2027-01-31, total 1,240.00 EUR"}
INVOICE_FIELDS = {
    "doc_type": "invoice",
    "vendor": "Northwind",
    "due": "2027-01-31",
    "total": 1240.0,
    "currency": "EUR",
}
TRIP = {
    "city": "Lisbon",
    "days": 2,
    "budget": 900,
    "preferences": "food, walking",
    "travelDate": "2027-04-10",
}


class DayPlan(BaseModel):
    day: int
    plan: str


class TripBudget(BaseModel):
    total: int
    currency: str
    perDay: int


class TripPlan(BaseModel):
    summary: str
    days: list[DayPlan]
    map: str
    budget: TripBudget
    reasons: list[str]


class RunNames(BaseCallbackHandler):
    """Records the name and metadata of every chain run."""

    def __init__(self) -> None:
        self.runs: list[tuple[str | None, dict[str, Any]]] = []

    def on_chain_start(
        self,
        serialized: dict[str, Any] | None,
        inputs: Any,
        *,
        run_id: UUID,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        self.runs.append((kwargs.get("name"), metadata or {}))


def _flow(server: LamaticTestServer, flow_id: str, **fields: Any) -> LamaticFlow:
    return LamaticFlow(
        flow_id=flow_id,
        endpoint=server.endpoint,
        project_id=server.project_id,
        api_key=server.api_key,
        **fields,
    )


# --- The two chains the README promises -----------------------------------------------------


def test_summary_chain_with_str_output_parser(server: LamaticTestServer) -> None:
    chain = _flow(server, "article-summariser", output_key="summary") | StrOutputParser()
    assert chain.invoke(ARTICLE) == ARTICLE_SUMMARY


async def test_summary_chain_with_str_output_parser_async(server: LamaticTestServer) -> None:
    chain = _flow(server, "article-summariser", output_key="summary") | StrOutputParser()
    assert await chain.ainvoke(ARTICLE) == ARTICLE_SUMMARY


def test_fenced_json_chain_with_json_output_parser(server: LamaticTestServer) -> None:
    chain = _flow(server, "docsense-intake", output_key="result") | JsonOutputParser()
    assert chain.invoke(INVOICE) == INVOICE_FIELDS


async def test_fenced_json_chain_with_json_output_parser_async(server: LamaticTestServer) -> None:
    chain = _flow(server, "docsense-intake", output_key="result") | JsonOutputParser()
    assert await chain.ainvoke(INVOICE) == INVOICE_FIELDS


def test_flow_output_is_fenced_json_text(server: LamaticTestServer) -> None:
    text = _flow(server, "docsense-intake", output_key="result").invoke(INVOICE)
    assert text.startswith("```json")


def test_prompt_into_flow_into_parser(server: LamaticTestServer) -> None:
    server.add_flow("shout", lambda payload: {"text": payload["prompt"].upper()})
    chain = (
        ChatPromptTemplate.from_messages([("human", "hello {name}")])
        | _flow(server, "shout", output_key="text")
        | StrOutputParser()
    )
    assert chain.invoke({"name": "ada"}) == "HUMAN: HELLO ADA"


def test_str_stream_yields_the_output(server: LamaticTestServer) -> None:
    chain = _flow(server, "article-summariser", output_key="summary") | StrOutputParser()
    assert "".join(chain.stream(ARTICLE)) == ARTICLE_SUMMARY


def test_parallel_flows_in_one_chain(server: LamaticTestServer) -> None:
    both = RunnableParallel(
        summary=RunnableLambda(lambda x: x["article"])
        | _flow(server, "article-summariser", output_key="summary"),
        fields=RunnableLambda(lambda x: x["invoice"])
        | _flow(server, "docsense-intake", output_key="result")
        | JsonOutputParser(),
    )
    assert both.invoke({"article": ARTICLE, "invoice": INVOICE}) == {
        "summary": ARTICLE_SUMMARY,
        "fields": INVOICE_FIELDS,
    }


def test_result_model_over_the_wire(server: LamaticTestServer) -> None:
    plan = _flow(server, "plan-trip", result_model=TripPlan).invoke(TRIP)
    assert isinstance(plan, TripPlan)
    assert [day.day for day in plan.days] == [1, 2]
    assert plan.budget.currency == "EUR"
    assert plan.reasons == ["food", "walking"]


def test_agent_in_a_chain(server: LamaticTestServer) -> None:
    agent = LamaticAgent(
        agent_id="research-agent",
        endpoint=server.endpoint,
        project_id=server.project_id,
        api_key=server.api_key,
        input_key="question",
    )
    output = (agent | RunnableLambda(lambda result: sorted(result))).invoke("Why bound queues?")
    assert output
    assert server.requests[0].operation == "executeAgent"
    assert server.requests[0].variables == {
        "agentId": "research-agent",
        "payload": {"question": "Why bound queues?"},
    }


def test_flow_from_environment(server: LamaticTestServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAMATIC_ENDPOINT", server.base_url)
    monkeypatch.setenv("LAMATIC_PROJECT_ID", server.project_id)
    monkeypatch.setenv("LAMATIC_API_KEY", server.api_key)
    flow = LamaticFlow(flow_id="article-summariser", output_key="summary")
    assert flow.invoke(ARTICLE) == ARTICLE_SUMMARY


# --- Concurrency ----------------------------------------------------------------------------


async def test_abatch_keeps_at_most_three_requests_in_flight(
    server: LamaticTestServer, slow_flow_id: str
) -> None:
    flow = _flow(server, slow_flow_id)
    inputs = [{"n": n} for n in range(10)]
    outputs = await flow.abatch(inputs, {"max_concurrency": 3})
    assert outputs == [{"echo": item} for item in inputs]
    assert server.execution_count(slow_flow_id) == 10
    assert server.max_in_flight <= 3
    assert server.max_in_flight >= 2


def test_batch_keeps_at_most_three_requests_in_flight(
    server: LamaticTestServer, slow_flow_id: str
) -> None:
    flow = _flow(server, slow_flow_id)
    inputs = [{"n": n} for n in range(10)]
    outputs = flow.batch(inputs, {"max_concurrency": 3})
    assert outputs == [{"echo": item} for item in inputs]
    assert server.max_in_flight <= 3


async def test_abatch_without_limit_runs_in_parallel(
    server: LamaticTestServer, slow_flow_id: str
) -> None:
    flow = _flow(server, slow_flow_id)
    await flow.abatch([{"n": n} for n in range(6)])
    assert server.max_in_flight >= 2


async def test_abatch_return_exceptions_over_the_wire(server: LamaticTestServer) -> None:
    flow = _flow(server, "article-summariser", output_key="summary")
    outputs = await flow.abatch(
        [ARTICLE, {"url": "not a url"}, ARTICLE], {"max_concurrency": 2}, return_exceptions=True
    )
    assert outputs[0] == ARTICLE_SUMMARY
    assert isinstance(outputs[1], LamaticExecutionError)
    assert outputs[2] == ARTICLE_SUMMARY


def test_batch_return_exceptions_over_the_wire(server: LamaticTestServer) -> None:
    flows = [_flow(server, "article-summariser"), _flow(server, "missing-flow")]
    outputs = [flow.batch([ARTICLE], return_exceptions=True)[0] for flow in flows]
    assert outputs[0] == {"summary": ARTICLE_SUMMARY}
    assert isinstance(outputs[1], LamaticNotFoundError)


# --- Tracing, per-call credentials and retries ----------------------------------------------


def test_chain_run_names_and_metadata(server: LamaticTestServer) -> None:
    recorder = RunNames()
    chain = _flow(server, "article-summariser", output_key="summary") | StrOutputParser()
    chain.invoke(ARTICLE, {"callbacks": [recorder], "metadata": {"tenant": "t-1"}})
    flow_runs = [meta for name, meta in recorder.runs if name == "LamaticFlow:article-summariser"]
    assert len(flow_runs) == 1
    assert flow_runs[0]["lamatic_flow_id"] == "article-summariser"
    assert flow_runs[0]["tenant"] == "t-1"


def test_per_call_token_from_config(server: LamaticTestServer) -> None:
    client = LamaticClient(
        endpoint=server.endpoint, project_id=server.project_id, api_key="lt-" + "not0valid0000000"
    )
    flow = LamaticFlow(flow_id="article-summariser", client=client, output_key="summary")
    token = SecretStr(server.create_access_token(expires_in=300))
    assert flow.invoke(ARTICLE, {"configurable": {CONFIG_ACCESS_TOKEN: token}}) == ARTICLE_SUMMARY
    assert server.requests[0].headers["x-lamatic-signature"] == token.get_secret_value()


def test_expired_per_call_token_is_a_permission_error(server: LamaticTestServer) -> None:
    flow = _flow(server, "article-summariser")
    token = SecretStr(server.create_access_token(expires_in=-30))
    with pytest.raises(LamaticPermissionError):
        flow.invoke(ARTICLE, {"configurable": {CONFIG_ACCESS_TOKEN: token}})


def test_with_retry_on_retryable_errors(server: LamaticTestServer) -> None:
    server.inject(Fault.status(503), times=2)
    flow = _flow(server, "article-summariser", output_key="summary", max_retries=0)
    retrying = flow.with_retry(
        retry_if_exception_type=RETRYABLE_ERRORS,
        stop_after_attempt=3,
        wait_exponential_jitter=False,
    )
    assert retrying.invoke(ARTICLE) == ARTICLE_SUMMARY
    assert len(server.requests) == 3


def test_server_error_surfaces_typed_in_a_chain(server: LamaticTestServer) -> None:
    server.inject(Fault.status(500))
    chain = _flow(server, "article-summariser", output_key="summary") | StrOutputParser()
    with pytest.raises(LamaticServerError) as caught:
        chain.invoke(ARTICLE)
    assert caught.value.flow_id == "article-summariser"
