"""LamaticFlow and LamaticAgent as LangChain runnables, over an httpx MockTransport."""

from __future__ import annotations

import asyncio
import json
import pickle
import threading
import time
from typing import TYPE_CHECKING, Any
from uuid import UUID

import httpx
import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.load import dumpd, dumps, loads
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompt_values import ChatPromptValue, StringPromptValue
from langchain_core.prompts import ChatPromptTemplate, PromptTemplate
from langchain_core.runnables import RunnableLambda
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from langchain_lamatic import (
    CONFIG_ACCESS_TOKEN,
    CONFIG_PROJECT_ID,
    LamaticAgent,
    LamaticClient,
    LamaticFlow,
    LamaticNotFoundError,
    LamaticResponseError,
)

if TYPE_CHECKING:
    from tests.unit.conftest import MockLamatic

ENDPOINT = "https://demo-project.lamatic.dev/graphql"
DUMP_KEY = "lt-" + "dump0secret0key0123456"
DUMP_TOKEN = "dump-secret-access-token-9876"


class Article(BaseModel):
    url: str
    max_words: int = Field(alias="maxWords")

    model_config = ConfigDict(populate_by_name=True)


class Summary(BaseModel):
    summary: str
    words: int


class RunRecorder(BaseCallbackHandler):
    """Records chain starts, ends and errors, as a tracer would see them."""

    def __init__(self) -> None:
        self.starts: list[dict[str, Any]] = []
        self.ends: list[Any] = []
        self.errors: list[BaseException] = []

    def on_chain_start(
        self,
        serialized: dict[str, Any] | None,
        inputs: Any,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        self.starts.append(
            {
                "name": kwargs.get("name"),
                "inputs": inputs,
                "tags": tags or [],
                "metadata": metadata or {},
                "parent_run_id": parent_run_id,
            }
        )

    def on_chain_end(self, outputs: Any, **kwargs: Any) -> None:
        self.ends.append(outputs)

    def on_chain_error(self, error: BaseException, **kwargs: Any) -> None:
        self.errors.append(error)


def _flow(lamatic: MockLamatic, **fields: Any) -> LamaticFlow:
    fields.setdefault("flow_id", "flow-1")
    return LamaticFlow(client=lamatic.client(max_retries=0), **fields)


# --- Input coercion -------------------------------------------------------------------------


def test_dict_input_is_the_payload(lamatic: MockLamatic) -> None:
    _flow(lamatic).invoke({"url": "https://example.org", "n": 2})
    assert lamatic.bodies()[0]["variables"]["payload"] == {"url": "https://example.org", "n": 2}


def test_str_input_goes_under_prompt(lamatic: MockLamatic) -> None:
    _flow(lamatic).invoke("What is Lamatic?")
    assert lamatic.bodies()[0]["variables"]["payload"] == {"prompt": "What is Lamatic?"}


def test_str_input_goes_under_custom_input_key(lamatic: MockLamatic) -> None:
    _flow(lamatic, input_key="chatMessage").invoke("hello")
    assert lamatic.bodies()[0]["variables"]["payload"] == {"chatMessage": "hello"}


@pytest.mark.parametrize(
    "message",
    [HumanMessage("hi there"), AIMessage("hi there"), SystemMessage("hi there")],
)
def test_chat_message_text_goes_under_input_key(lamatic: MockLamatic, message: Any) -> None:
    _flow(lamatic).invoke(message)
    assert lamatic.bodies()[0]["variables"]["payload"] == {"prompt": "hi there"}


def test_chat_message_with_content_blocks_sends_its_text(lamatic: MockLamatic) -> None:
    message = HumanMessage(content=[{"type": "text", "text": "part one"}])
    _flow(lamatic).invoke(message)
    assert lamatic.bodies()[0]["variables"]["payload"] == {"prompt": "part one"}


def test_string_prompt_value_goes_under_input_key(lamatic: MockLamatic) -> None:
    _flow(lamatic).invoke(StringPromptValue(text="Summarise this"))
    assert lamatic.bodies()[0]["variables"]["payload"] == {"prompt": "Summarise this"}


def test_chat_prompt_value_is_sent_as_its_string(lamatic: MockLamatic) -> None:
    value = ChatPromptValue(messages=[SystemMessage("Be brief"), HumanMessage("Summarise")])
    _flow(lamatic).invoke(value)
    assert lamatic.bodies()[0]["variables"]["payload"] == {"prompt": value.to_string()}


def test_prompt_template_chains_into_flow(lamatic: MockLamatic) -> None:
    chain = PromptTemplate.from_template("Summarise {topic}") | _flow(lamatic)
    chain.invoke({"topic": "GraphQL"})
    assert lamatic.bodies()[0]["variables"]["payload"] == {"prompt": "Summarise GraphQL"}


def test_chat_prompt_template_chains_into_flow(lamatic: MockLamatic) -> None:
    chain = ChatPromptTemplate.from_messages([("human", "Plan {city}")]) | _flow(lamatic)
    chain.invoke({"city": "Lisbon"})
    assert lamatic.bodies()[0]["variables"]["payload"] == {"prompt": "Human: Plan Lisbon"}


def test_pydantic_model_is_dumped_by_alias(lamatic: MockLamatic) -> None:
    _flow(lamatic).invoke(Article(url="https://example.org", max_words=50))
    payload = lamatic.bodies()[0]["variables"]["payload"]
    assert payload == {"url": "https://example.org", "maxWords": 50}


@pytest.mark.parametrize("value", [42, 4.2, None, ["a"], ("a",), b"bytes", object()])
def test_unsupported_input_is_rejected_before_sending(lamatic: MockLamatic, value: Any) -> None:
    with pytest.raises(TypeError, match="accepts a dict payload") as caught:
        _flow(lamatic).invoke(value)
    assert "flow-1" in str(caught.value)
    assert lamatic.requests == []


async def test_unsupported_input_is_rejected_before_sending_async(lamatic: MockLamatic) -> None:
    with pytest.raises(TypeError, match="accepts a dict payload"):
        await _flow(lamatic).ainvoke(3.14)
    assert lamatic.requests == []


# --- Output selection -----------------------------------------------------------------------


def test_default_output_is_the_result_object(lamatic: MockLamatic) -> None:
    lamatic.default = lamatic.success({"summary": "short", "words": 2})
    assert _flow(lamatic).invoke({}) == {"summary": "short", "words": 2}


def test_output_key_returns_one_field(lamatic: MockLamatic) -> None:
    lamatic.default = lamatic.success({"summary": "short", "words": 2})
    assert _flow(lamatic, output_key="summary").invoke({}) == "short"


def test_missing_output_key_lists_the_keys_present(lamatic: MockLamatic) -> None:
    lamatic.default = lamatic.success({"words": 2, "summary_text": "x"}, request_id="req-5")
    with pytest.raises(LamaticResponseError) as caught:
        _flow(lamatic, output_key="summary").invoke({})
    message = str(caught.value)
    assert "'summary'" in message
    assert "['summary_text', 'words']" in message
    assert caught.value.flow_id == "flow-1"
    assert caught.value.request_id == "req-5"


def test_output_key_on_text_result(lamatic: MockLamatic) -> None:
    body = {"data": {"executeWorkflow": {"status": "success", "result": "plain text"}}}
    lamatic.default = lamatic.reply(json_body=body)
    with pytest.raises(LamaticResponseError, match="it has str"):
        _flow(lamatic, output_key="summary").invoke({})


def test_result_model_validates_the_result(lamatic: MockLamatic) -> None:
    lamatic.default = lamatic.success({"summary": "short", "words": "2"})
    output = _flow(lamatic, result_model=Summary).invoke({})
    assert output == Summary(summary="short", words=2)


def test_result_model_applies_after_output_key(lamatic: MockLamatic) -> None:
    lamatic.default = lamatic.success({"data": {"summary": "s", "words": 1}, "other": 1})
    output = _flow(lamatic, output_key="data", result_model=Summary).invoke({})
    assert output == Summary(summary="s", words=1)


def test_result_model_mismatch_raises_response_error(lamatic: MockLamatic) -> None:
    lamatic.default = lamatic.success({"summary": "short", "words": "many"})
    with pytest.raises(LamaticResponseError) as caught:
        _flow(lamatic, result_model=Summary).invoke({})
    message = str(caught.value)
    assert "does not match Summary" in message
    assert "words" in message
    assert "1 validation error" in message


async def test_result_model_validates_async(lamatic: MockLamatic) -> None:
    lamatic.default = lamatic.success({"summary": "a", "words": 1})
    output = await _flow(lamatic, result_model=Summary).ainvoke({})
    assert output == Summary(summary="a", words=1)


def test_flow_errors_propagate_typed(lamatic: MockLamatic) -> None:
    lamatic.default = lamatic.graphql_errors("Flow not found")
    with pytest.raises(LamaticNotFoundError) as caught:
        _flow(lamatic).invoke({})
    assert caught.value.flow_id == "flow-1"


def test_flow_in_chain_with_str_output_parser(lamatic: MockLamatic) -> None:
    lamatic.default = lamatic.success({"summary": "A short summary."})
    chain = _flow(lamatic, output_key="summary") | StrOutputParser()
    assert chain.invoke({"url": "https://example.org"}) == "A short summary."


# --- Tracing --------------------------------------------------------------------------------


def test_run_is_named_after_the_flow(lamatic: MockLamatic) -> None:
    recorder = RunRecorder()
    _flow(lamatic, flow_id="article-summariser").invoke({}, {"callbacks": [recorder]})
    assert recorder.starts[0]["name"] == "LamaticFlow:article-summariser"


def test_run_metadata_holds_the_flow_id(lamatic: MockLamatic) -> None:
    recorder = RunRecorder()
    _flow(lamatic).invoke({}, {"callbacks": [recorder]})
    assert recorder.starts[0]["metadata"]["lamatic_flow_id"] == "flow-1"


def test_config_tags_and_metadata_reach_the_run(lamatic: MockLamatic) -> None:
    recorder = RunRecorder()
    config: Any = {"callbacks": [recorder], "tags": ["nightly"], "metadata": {"user": "u-1"}}
    _flow(lamatic).invoke({}, config)
    start = recorder.starts[0]
    assert "nightly" in start["tags"]
    assert start["metadata"]["user"] == "u-1"
    assert start["metadata"]["lamatic_flow_id"] == "flow-1"


def test_config_run_name_replaces_the_default(lamatic: MockLamatic) -> None:
    recorder = RunRecorder()
    _flow(lamatic).invoke({}, {"callbacks": [recorder], "run_name": "summarise-step"})
    assert recorder.starts[0]["name"] == "summarise-step"


def test_name_field_replaces_the_default(lamatic: MockLamatic) -> None:
    recorder = RunRecorder()
    _flow(lamatic, name="Summariser").invoke({}, {"callbacks": [recorder]})
    assert recorder.starts[0]["name"] == "Summariser"


def test_run_end_receives_the_output(lamatic: MockLamatic) -> None:
    lamatic.default = lamatic.success({"summary": "done"})
    recorder = RunRecorder()
    _flow(lamatic, output_key="summary").invoke({}, {"callbacks": [recorder]})
    assert recorder.ends == ["done"]


def test_run_error_receives_the_typed_error(lamatic: MockLamatic) -> None:
    lamatic.default = lamatic.graphql_errors("Flow not found")
    recorder = RunRecorder()
    with pytest.raises(LamaticNotFoundError):
        _flow(lamatic).invoke({}, {"callbacks": [recorder]})
    assert len(recorder.errors) == 1
    assert isinstance(recorder.errors[0], LamaticNotFoundError)


def test_each_invoke_is_one_run(lamatic: MockLamatic) -> None:
    recorder = RunRecorder()
    flow = _flow(lamatic)
    flow.invoke({}, {"callbacks": [recorder]})
    flow.invoke({}, {"callbacks": [recorder]})
    assert len(recorder.starts) == 2
    assert len(recorder.ends) == 2


async def test_async_run_is_traced_with_config(lamatic: MockLamatic) -> None:
    recorder = RunRecorder()
    config: Any = {"callbacks": [recorder], "tags": ["async"], "metadata": {"k": "v"}}
    await _flow(lamatic).ainvoke({}, config)
    start = recorder.starts[0]
    assert start["name"] == "LamaticFlow:flow-1"
    assert "async" in start["tags"]
    assert start["metadata"]["k"] == "v"
    assert start["metadata"]["lamatic_flow_id"] == "flow-1"
    assert len(recorder.ends) == 1


def test_flow_run_nests_in_chain_run(lamatic: MockLamatic) -> None:
    recorder = RunRecorder()
    chain = RunnableLambda(lambda x: x) | _flow(lamatic)
    chain.invoke({}, {"callbacks": [recorder]})
    flow_start = next(s for s in recorder.starts if s["name"] == "LamaticFlow:flow-1")
    assert flow_start["parent_run_id"] is not None


def test_metadata_of_caller_config_is_not_mutated(lamatic: MockLamatic) -> None:
    metadata = {"user": "u-1"}
    _flow(lamatic).invoke({}, {"metadata": metadata})
    assert metadata == {"user": "u-1"}


# --- Batches --------------------------------------------------------------------------------


class ConcurrencyProbe:
    """A handler that delays each request briefly and records the peak number in flight."""

    def __init__(self, hold_seconds: float = 0.05) -> None:
        self.hold_seconds = hold_seconds
        self.in_flight = 0
        self.peak = 0
        self.lock = threading.Lock()

    def _enter(self) -> None:
        with self.lock:
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)

    def _leave(self) -> None:
        with self.lock:
            self.in_flight -= 1

    @staticmethod
    def _answer(request: httpx.Request) -> httpx.Response:
        payload = json.loads(request.content)["variables"]["payload"]
        body = {"data": {"executeWorkflow": {"status": "success", "result": payload}}}
        return httpx.Response(200, json=body)

    def handle(self, request: httpx.Request) -> httpx.Response:
        self._enter()
        try:
            time.sleep(self.hold_seconds)
            return self._answer(request)
        finally:
            self._leave()

    async def ahandle(self, request: httpx.Request) -> httpx.Response:
        self._enter()
        try:
            await asyncio.sleep(self.hold_seconds)
            return self._answer(request)
        finally:
            self._leave()


def test_batch_honours_max_concurrency(lamatic: MockLamatic) -> None:
    probe = ConcurrencyProbe()
    client = lamatic.client(transport=httpx.MockTransport(probe.handle))
    flow = LamaticFlow(flow_id="echo", client=client)
    inputs = [{"n": n} for n in range(10)]
    outputs = flow.batch(inputs, {"max_concurrency": 3})
    assert outputs == inputs
    assert probe.peak <= 3


async def test_abatch_honours_max_concurrency(lamatic: MockLamatic) -> None:
    probe = ConcurrencyProbe()
    client = lamatic.client(async_transport=httpx.MockTransport(probe.ahandle))
    flow = LamaticFlow(flow_id="echo", client=client)
    inputs = [{"n": n} for n in range(10)]
    outputs = await flow.abatch(inputs, {"max_concurrency": 3})
    assert outputs == inputs
    assert probe.peak <= 3
    assert probe.peak >= 2


def _fail_for_n_equal_2(request: httpx.Request) -> httpx.Response:
    payload = json.loads(request.content)["variables"]["payload"]
    if payload.get("n") == 2:
        return httpx.Response(200, json={"errors": [{"message": "Flow not found"}]})
    body = {"data": {"executeWorkflow": {"status": "success", "result": payload}}}
    return httpx.Response(200, json=body)


def test_batch_return_exceptions_keeps_positions(lamatic: MockLamatic) -> None:
    lamatic.default = _fail_for_n_equal_2
    outputs = _flow(lamatic).batch([{"n": n} for n in range(4)], return_exceptions=True)
    assert outputs[0] == {"n": 0}
    assert isinstance(outputs[2], LamaticNotFoundError)
    assert outputs[3] == {"n": 3}


def test_batch_without_return_exceptions_raises(lamatic: MockLamatic) -> None:
    lamatic.default = _fail_for_n_equal_2
    with pytest.raises(LamaticNotFoundError):
        _flow(lamatic).batch([{"n": n} for n in range(4)])


async def test_abatch_return_exceptions_keeps_positions(lamatic: MockLamatic) -> None:
    lamatic.default = _fail_for_n_equal_2
    outputs = await _flow(lamatic).abatch([{"n": n} for n in range(4)], return_exceptions=True)
    assert outputs[1] == {"n": 1}
    assert isinstance(outputs[2], LamaticNotFoundError)


async def test_abatch_without_return_exceptions_raises(lamatic: MockLamatic) -> None:
    lamatic.default = _fail_for_n_equal_2
    with pytest.raises(LamaticNotFoundError):
        await _flow(lamatic).abatch([{"n": n} for n in range(4)])


def test_batch_traces_one_run_per_input(lamatic: MockLamatic) -> None:
    recorder = RunRecorder()
    _flow(lamatic).batch([{}, {}, {}], {"callbacks": [recorder]})
    assert [start["name"] for start in recorder.starts] == ["LamaticFlow:flow-1"] * 3


# --- Per-call credentials -------------------------------------------------------------------


def test_configurable_access_token_is_sent(lamatic: MockLamatic) -> None:
    config: Any = {"configurable": {CONFIG_ACCESS_TOKEN: SecretStr("user-token-1")}}
    _flow(lamatic).invoke({}, config)
    headers = lamatic.requests[0].headers
    assert headers["x-lamatic-signature"] == "user-token-1"
    assert "authorization" not in headers


async def test_configurable_access_token_is_sent_async(lamatic: MockLamatic) -> None:
    config: Any = {"configurable": {CONFIG_ACCESS_TOKEN: SecretStr("user-token-2")}}
    await _flow(lamatic).ainvoke({}, config)
    assert lamatic.requests[0].headers["x-lamatic-signature"] == "user-token-2"


def test_configurable_tokens_differ_per_batch_input(lamatic: MockLamatic) -> None:
    configs: Any = [
        {"configurable": {CONFIG_ACCESS_TOKEN: SecretStr(f"user-token-{n}")}} for n in range(3)
    ]
    _flow(lamatic).batch([{"n": n} for n in range(3)], configs)
    sent = {
        json.loads(request.content)["variables"]["payload"]["n"]: request.headers[
            "x-lamatic-signature"
        ]
        for request in lamatic.requests
    }
    assert sent == {0: "user-token-0", 1: "user-token-1", 2: "user-token-2"}


def test_configurable_project_id_is_sent(lamatic: MockLamatic) -> None:
    _flow(lamatic).invoke({}, {"configurable": {CONFIG_PROJECT_ID: "tenant-project"}})
    assert lamatic.requests[0].headers["x-project-id"] == "tenant-project"


def test_plain_string_configurable_token_is_rejected(lamatic: MockLamatic) -> None:
    with pytest.raises(TypeError, match="SecretStr") as caught:
        _flow(lamatic).invoke({}, {"configurable": {CONFIG_ACCESS_TOKEN: "plain-token-value"}})
    assert "plain-token-value" not in str(caught.value)
    assert lamatic.requests == []


def test_empty_configurable_token_is_rejected(lamatic: MockLamatic) -> None:
    with pytest.raises(ValueError, match="empty"):
        _flow(lamatic).invoke({}, {"configurable": {CONFIG_ACCESS_TOKEN: SecretStr("  ")}})
    assert lamatic.requests == []


@pytest.mark.parametrize("value", ["", 42])
def test_invalid_configurable_project_id_is_rejected(lamatic: MockLamatic, value: Any) -> None:
    with pytest.raises(TypeError, match=CONFIG_PROJECT_ID):
        _flow(lamatic).invoke({}, {"configurable": {CONFIG_PROJECT_ID: value}})
    assert lamatic.requests == []


def test_configurable_token_stays_out_of_run_metadata(lamatic: MockLamatic) -> None:
    recorder = RunRecorder()
    config: Any = {
        "callbacks": [recorder],
        "configurable": {CONFIG_ACCESS_TOKEN: SecretStr("user-token-3")},
    }
    _flow(lamatic).invoke({}, config)
    assert "user-token-3" not in repr(recorder.starts)


# --- Construction ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "setting",
    [
        {"endpoint": ENDPOINT},
        {"project_id": "p"},
        {"api_key": "lt-another0key0000"},
        {"access_token": "another-token"},
    ],
)
def test_client_with_connection_settings_is_rejected(
    lamatic: MockLamatic, setting: dict[str, Any]
) -> None:
    with pytest.raises(ValueError, match="either client= or connection settings"):
        LamaticFlow(flow_id="flow-1", client=lamatic.client(), **setting)


def test_client_ignores_environment_settings(
    lamatic: MockLamatic, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LAMATIC_API_KEY", "lt-env0key0000000")
    monkeypatch.setenv("LAMATIC_ENDPOINT", "https://env.lamatic.dev")
    client = lamatic.client()
    flow = LamaticFlow(flow_id="flow-1", client=client)
    assert flow.lamatic_client is client


def test_settings_build_a_client() -> None:
    flow = LamaticFlow(
        flow_id="flow-1",
        endpoint="https://demo-project.lamatic.dev",
        project_id="p-1",
        api_key=DUMP_KEY,
        timeout=30,
        max_retries=5,
        bypass_cache=True,
    )
    client = flow.lamatic_client
    assert isinstance(client, LamaticClient)
    assert client.endpoint == ENDPOINT
    assert client.project_id == "p-1"
    assert client.timeout.read == 30.0
    assert client.retry_policy.max_retries == 5
    assert client.bypass_cache is True


def test_invalid_timeout_is_rejected_at_construction() -> None:
    with pytest.raises(ValueError, match="timeout"):
        LamaticFlow(
            flow_id="flow-1", endpoint=ENDPOINT, project_id="p", api_key=DUMP_KEY, timeout=-1
        )


def test_repr_masks_the_api_key() -> None:
    flow = LamaticFlow(flow_id="flow-1", endpoint=ENDPOINT, project_id="p", api_key=DUMP_KEY)
    assert DUMP_KEY not in repr(flow)
    assert DUMP_KEY not in str(flow)


# --- Serialisation --------------------------------------------------------------------------


def test_flow_is_lc_serializable() -> None:
    assert LamaticFlow.is_lc_serializable()
    assert LamaticAgent.is_lc_serializable()


def test_dumpd_holds_no_api_key() -> None:
    flow = LamaticFlow(
        flow_id="flow-1", endpoint=ENDPOINT, project_id="p", api_key=DUMP_KEY, output_key="x"
    )
    dumped = dumpd(flow)
    assert DUMP_KEY not in json.dumps(dumped)
    assert dumped["kwargs"]["api_key"] == {"lc": 1, "type": "secret", "id": ["LAMATIC_API_KEY"]}
    assert dumped["kwargs"]["flow_id"] == "flow-1"
    assert dumped["kwargs"]["output_key"] == "x"


def test_dumps_holds_no_access_token() -> None:
    flow = LamaticFlow(flow_id="f", endpoint=ENDPOINT, project_id="p", access_token=DUMP_TOKEN)
    text = dumps(flow)
    assert DUMP_TOKEN not in text
    assert "LAMATIC_ACCESS_TOKEN" in text


def test_dumps_of_flow_from_env_holds_no_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAMATIC_ENDPOINT", ENDPOINT)
    monkeypatch.setenv("LAMATIC_PROJECT_ID", "p")
    monkeypatch.setenv("LAMATIC_API_KEY", DUMP_KEY)
    assert DUMP_KEY not in dumps(LamaticFlow(flow_id="flow-1"))


def test_dumps_with_shared_client_hold_no_secret(lamatic: MockLamatic) -> None:
    text = dumps(LamaticFlow(flow_id="flow-1", client=lamatic.client()))
    assert lamatic.api_key not in text


@pytest.mark.filterwarnings("ignore:The function `loads` is in beta")
def test_loads_round_trips_with_secret_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    flow = LamaticFlow(
        flow_id="flow-1",
        endpoint=ENDPOINT,
        project_id="p",
        api_key=DUMP_KEY,
        output_key="summary",
        input_key="url",
        max_retries=4,
    )
    text = dumps(flow)
    monkeypatch.setenv("LAMATIC_API_KEY", DUMP_KEY)
    copy = loads(
        text,
        valid_namespaces=["langchain_lamatic"],
        secrets_from_env=True,
        allowed_objects=[LamaticFlow],
    )
    assert isinstance(copy, LamaticFlow)
    assert copy.flow_id == "flow-1"
    assert copy.output_key == "summary"
    assert copy.input_key == "url"
    assert copy.max_retries == 4
    assert copy.lamatic_client.endpoint == ENDPOINT
    assert copy.api_key is not None
    assert copy.api_key.get_secret_value() == DUMP_KEY


@pytest.mark.filterwarnings("ignore:The function `loads` is in beta")
def test_loads_round_trips_with_secrets_map() -> None:
    flow = LamaticAgent(agent_id="a-1", endpoint=ENDPOINT, project_id="p", api_key=DUMP_KEY)
    copy = loads(
        dumps(flow),
        valid_namespaces=["langchain_lamatic"],
        secrets_map={"LAMATIC_API_KEY": "lt-mapped0key00000"},
        allowed_objects=[LamaticAgent],
    )
    assert isinstance(copy, LamaticAgent)
    assert copy.agent_id == "a-1"
    assert copy.api_key is not None
    assert copy.api_key.get_secret_value() == "lt-mapped0key00000"


def test_pickle_holds_no_secret_and_round_trips(monkeypatch: pytest.MonkeyPatch) -> None:
    flow = LamaticFlow(
        flow_id="flow-1",
        endpoint=ENDPOINT,
        project_id="p",
        api_key=DUMP_KEY,
        output_key="summary",
        result_model=Summary,
    )
    data = pickle.dumps(flow)
    assert DUMP_KEY.encode() not in data
    monkeypatch.setenv("LAMATIC_API_KEY", "lt-" + "env0after0unpickle")
    copy = pickle.loads(data)  # noqa: S301
    assert copy.flow_id == "flow-1"
    assert copy.output_key == "summary"
    assert copy.result_model is Summary
    assert copy.api_key is None
    assert copy.lamatic_client.endpoint == ENDPOINT
    assert copy.lamatic_client.credential_kind == "api_key"


def test_pickle_of_access_token_flow_holds_no_secret() -> None:
    flow = LamaticFlow(flow_id="f", endpoint=ENDPOINT, project_id="p", access_token=DUMP_TOKEN)
    assert DUMP_TOKEN.encode() not in pickle.dumps(flow)


def test_pickled_flow_with_shared_client_holds_no_secret(lamatic: MockLamatic) -> None:
    flow = LamaticFlow(flow_id="flow-1", client=lamatic.client(transport=None))
    data = pickle.dumps(flow)
    assert lamatic.api_key.encode() not in data
    copy = pickle.loads(data)  # noqa: S301
    assert copy.lamatic_client.endpoint == lamatic.endpoint


def test_original_flow_still_works_after_pickling(lamatic: MockLamatic) -> None:
    flow = _flow(lamatic)
    pickle.dumps(flow)
    flow.invoke({})
    assert lamatic.requests[0].headers["authorization"] == f"Bearer {lamatic.api_key}"


# --- Agents ---------------------------------------------------------------------------------


def _agent(lamatic: MockLamatic, **fields: Any) -> LamaticAgent:
    fields.setdefault("agent_id", "agent-1")
    return LamaticAgent(client=lamatic.client(max_retries=0), **fields)


def test_agent_sends_execute_agent(lamatic: MockLamatic) -> None:
    lamatic.default = lamatic.success({"reply": "hello"})
    output = _agent(lamatic, output_key="reply").invoke("hi")
    body = lamatic.bodies()[0]
    assert "executeAgent(" in body["query"]
    assert body["variables"] == {"agentId": "agent-1", "payload": {"prompt": "hi"}}
    assert output == "hello"


async def test_agent_sends_execute_agent_async(lamatic: MockLamatic) -> None:
    lamatic.default = lamatic.success({"reply": "hello"})
    assert await _agent(lamatic, output_key="reply").ainvoke("hi") == "hello"
    assert lamatic.bodies()[0]["variables"]["agentId"] == "agent-1"


def test_agent_run_is_named_and_tagged(lamatic: MockLamatic) -> None:
    recorder = RunRecorder()
    _agent(lamatic).invoke({}, {"callbacks": [recorder]})
    assert recorder.starts[0]["name"] == "LamaticAgent:agent-1"
    assert recorder.starts[0]["metadata"]["lamatic_agent_id"] == "agent-1"
    assert "lamatic_flow_id" not in recorder.starts[0]["metadata"]


def test_agent_missing_output_key_names_the_agent(lamatic: MockLamatic) -> None:
    lamatic.default = lamatic.success({"other": 1})
    with pytest.raises(LamaticResponseError, match="agent 'agent-1'") as caught:
        _agent(lamatic, output_key="reply").invoke({})
    assert caught.value.agent_id == "agent-1"


def test_agent_rejects_unsupported_input(lamatic: MockLamatic) -> None:
    with pytest.raises(TypeError, match="LamaticAgent 'agent-1'"):
        _agent(lamatic).invoke(12)
    assert lamatic.requests == []


def test_agent_configurable_token_is_sent(lamatic: MockLamatic) -> None:
    _agent(lamatic).invoke({}, {"configurable": {CONFIG_ACCESS_TOKEN: SecretStr("agent-tok")}})
    assert lamatic.requests[0].headers["x-lamatic-signature"] == "agent-tok"


def test_agent_dump_and_pickle_hold_no_secret() -> None:
    agent = LamaticAgent(agent_id="a", endpoint=ENDPOINT, project_id="p", api_key=DUMP_KEY)
    assert DUMP_KEY not in dumps(agent)
    assert DUMP_KEY.encode() not in pickle.dumps(agent)


async def test_agent_abatch_returns_in_order(lamatic: MockLamatic) -> None:
    lamatic.default = lamatic.success({"reply": "ok"})
    outputs = await _agent(lamatic, output_key="reply").abatch(["a", "b", "c"])
    assert outputs == ["ok", "ok", "ok"]
    assert len(lamatic.requests) == 3


# --- Unknown settings -----------------------------------------------------------------------


def test_misspelled_setting_is_rejected_with_a_suggestion(lamatic: MockLamatic) -> None:
    with pytest.raises(
        ValueError, match="LamaticFlow has no setting 'tiemout'; did you mean 'timeout'"
    ):
        LamaticFlow(flow_id="f", client=lamatic.client(), tiemout=3)


def test_unknown_setting_without_a_close_name_is_rejected(lamatic: MockLamatic) -> None:
    with pytest.raises(
        ValueError, match="LamaticAgent has no setting 'colour'; check its spelling"
    ):
        LamaticAgent(agent_id="a", client=lamatic.client(), colour="blue")


def test_transport_setting_is_not_silently_dropped() -> None:
    # Transports belong to LamaticClient; a flow used to accept and ignore them.
    with pytest.raises(ValueError, match="no setting 'async_transport'"):
        LamaticFlow(
            flow_id="f",
            endpoint=ENDPOINT,
            project_id="p",
            api_key="lt-" + "a" * 24,
            async_transport=httpx.MockTransport(lambda request: httpx.Response(200)),
        )


# --- Rebuilt by LangChain beside a shared client --------------------------------------------
# configurable_fields rebuilds the runnable from every field of the original, so the
# connection settings arrive again with their default values. Only a value that differs from
# the default conflicts with client=, because the client would ignore it.

from langchain_core.runnables import ConfigurableField  # noqa: E402

CONNECTION_SETTINGS: list[dict[str, Any]] = [
    {"timeout": 5},
    {"max_retries": 5},
    {"allow_insecure_http": True},
    {"bypass_cache": True},
]


def _configured_output(key: str) -> Any:
    return {"configurable": {"output": key}}


def test_configurable_field_on_flow_with_client(lamatic: MockLamatic) -> None:
    lamatic.default = lamatic.success({"summary": "short", "words": 1})
    flow = _flow(lamatic).configurable_fields(output_key=ConfigurableField(id="output"))

    output = flow.invoke({}, _configured_output("summary"))

    assert output == "short"
    assert len(lamatic.requests) == 1


async def test_configurable_field_on_flow_with_client_async(lamatic: MockLamatic) -> None:
    lamatic.default = lamatic.success({"summary": "short", "words": 1})
    flow = _flow(lamatic).configurable_fields(output_key=ConfigurableField(id="output"))

    output = await flow.ainvoke({}, _configured_output("words"))

    assert output == 1
    assert len(lamatic.requests) == 1


def test_configurable_field_on_agent_with_client(lamatic: MockLamatic) -> None:
    lamatic.default = lamatic.success({"reply": "hello", "trace": []})
    agent = _agent(lamatic).configurable_fields(output_key=ConfigurableField(id="output"))

    output = agent.invoke("hi", _configured_output("reply"))

    assert output == "hello"
    assert "executeAgent(" in lamatic.bodies()[0]["query"]


async def test_configurable_field_on_agent_with_client_async(lamatic: MockLamatic) -> None:
    lamatic.default = lamatic.success({"reply": "hello", "trace": []})
    agent = _agent(lamatic).configurable_fields(output_key=ConfigurableField(id="output"))

    output = await agent.ainvoke("hi", _configured_output("reply"))

    assert output == "hello"
    assert "executeAgent(" in lamatic.bodies()[0]["query"]


def test_unset_configurable_field_keeps_flow(lamatic: MockLamatic) -> None:
    lamatic.default = lamatic.success({"summary": "short"})
    flow = _flow(lamatic).configurable_fields(output_key=ConfigurableField(id="output"))

    assert flow.invoke({}) == {"summary": "short"}


def test_rebuilt_flow_keeps_its_settings(lamatic: MockLamatic) -> None:
    lamatic.default = lamatic.success({"summary": "short"})
    flow = _flow(lamatic, flow_id="summariser", input_key="text").configurable_fields(
        output_key=ConfigurableField(id="output")
    )

    flow.invoke("some text", _configured_output("summary"))

    body = lamatic.bodies()[0]
    assert body["variables"]["workflowId"] == "summariser"
    assert body["variables"]["payload"] == {"text": "some text"}


def test_configured_retries_beside_client_rejected(lamatic: MockLamatic) -> None:
    flow = _flow(lamatic).configurable_fields(max_retries=ConfigurableField(id="retries"))

    with pytest.raises(ValueError, match=r"not both \(also got \['max_retries'\]\)"):
        flow.invoke({}, {"configurable": {"retries": 5}})
    assert lamatic.requests == []


async def test_configured_cache_beside_client_rejected_async(
    lamatic: MockLamatic,
) -> None:
    agent = _agent(lamatic).configurable_fields(bypass_cache=ConfigurableField(id="fresh"))

    with pytest.raises(ValueError, match=r"not both \(also got \['bypass_cache'\]\)"):
        await agent.ainvoke("hi", {"configurable": {"fresh": True}})
    assert lamatic.requests == []


def test_configurable_alternatives_on_flows_with_client(lamatic: MockLamatic) -> None:
    client = lamatic.client(max_retries=0)
    flow = LamaticFlow(flow_id="summariser", client=client).configurable_alternatives(
        ConfigurableField(id="flow"),
        default_key="summariser",
        digest=LamaticFlow(flow_id="digest", client=client),
    )

    flow.invoke({}, {"configurable": {"flow": "digest"}})
    flow.invoke({})

    flow_ids = [body["variables"]["workflowId"] for body in lamatic.bodies()]
    assert flow_ids == ["digest", "summariser"]


async def test_alternatives_with_configurable_fields_async(
    lamatic: MockLamatic,
) -> None:
    lamatic.default = lamatic.success({"reply": "hello", "trace": []})
    client = lamatic.client(max_retries=0)
    runnable = (
        LamaticFlow(flow_id="summariser", client=client)
        .configurable_fields(output_key=ConfigurableField(id="output"))
        .configurable_alternatives(
            ConfigurableField(id="target"),
            default_key="flow",
            agent=LamaticAgent(agent_id="agent-1", client=client),
        )
    )

    flow_output = await runnable.ainvoke({}, {"configurable": {"output": "reply"}})
    agent_output = await runnable.ainvoke("hi", {"configurable": {"target": "agent"}})

    assert flow_output == "hello"
    assert agent_output == {"reply": "hello", "trace": []}
    assert "executeAgent(" in lamatic.bodies()[1]["query"]


def test_with_config_on_configurable_flow(lamatic: MockLamatic) -> None:
    lamatic.default = lamatic.success({"summary": "short", "words": 1})
    flow = (
        _flow(lamatic)
        .configurable_fields(output_key=ConfigurableField(id="output"))
        .with_config(configurable={"output": "summary"}, run_name="summarise")
    )

    assert flow.invoke({}) == "short"


async def test_with_config_on_configurable_agent_async(lamatic: MockLamatic) -> None:
    lamatic.default = lamatic.success({"reply": "hello", "trace": []})
    agent = (
        _agent(lamatic)
        .configurable_fields(output_key=ConfigurableField(id="output"))
        .with_config(configurable={"output": "reply"})
    )

    assert await agent.ainvoke("hi") == "hello"


def test_model_copy_of_flow_keeps_the_client(lamatic: MockLamatic) -> None:
    lamatic.default = lamatic.success({"summary": "short"})
    flow = _flow(lamatic)

    copy = flow.model_copy(update={"output_key": "summary"})

    assert copy.lamatic_client is flow.lamatic_client
    assert copy.invoke({}) == "short"


async def test_model_copy_of_agent_keeps_the_client_async(lamatic: MockLamatic) -> None:
    lamatic.default = lamatic.success({"reply": "hello"})
    agent = _agent(lamatic)

    copy = agent.model_copy(update={"output_key": "reply"})

    assert copy.lamatic_client is agent.lamatic_client
    assert await copy.ainvoke("hi") == "hello"


RUNNABLE_CLASSES = [(LamaticFlow, "flow_id"), (LamaticAgent, "agent_id")]


@pytest.mark.parametrize(("runnable_class", "id_field"), RUNNABLE_CLASSES)
def test_rebuild_beside_client_is_accepted(
    lamatic: MockLamatic, runnable_class: type[LamaticFlow | LamaticAgent], id_field: str
) -> None:
    # The same call that configurable_fields makes: every field, defaults included.
    client = lamatic.client()
    original = runnable_class(**{id_field: "target-1"}, client=client)
    fields = {
        name: value
        for name, value in original.__dict__.items()
        if name in type(original).model_fields
    }

    rebuilt = runnable_class(**fields)

    assert rebuilt.lamatic_client is client
    assert set(rebuilt.model_fields_set) >= {"timeout", "max_retries", "bypass_cache"}


def test_default_settings_beside_client_are_accepted(lamatic: MockLamatic) -> None:
    client = lamatic.client()

    flow = LamaticFlow(
        flow_id="flow-1",
        client=client,
        endpoint=None,
        timeout=None,
        max_retries=2,
        allow_insecure_http=False,
        bypass_cache=False,
    )

    assert flow.lamatic_client is client


@pytest.mark.parametrize("setting", CONNECTION_SETTINGS)
@pytest.mark.parametrize(("runnable_class", "id_field"), RUNNABLE_CLASSES)
def test_conflicting_setting_is_named(
    lamatic: MockLamatic,
    runnable_class: type[LamaticFlow | LamaticAgent],
    id_field: str,
    setting: dict[str, Any],
) -> None:
    (name,) = setting
    with pytest.raises(ValueError, match=rf"not both \(also got \['{name}'\]\)"):
        runnable_class(**{id_field: "target-1"}, client=lamatic.client(), **setting)


def test_every_conflicting_setting_is_named(lamatic: MockLamatic) -> None:
    with pytest.raises(ValueError, match="not both") as caught:
        LamaticFlow(
            flow_id="flow-1",
            client=lamatic.client(),
            project_id="other",
            timeout=5,
            bypass_cache=True,
        )
    assert "['project_id', 'timeout', 'bypass_cache']" in str(caught.value)
