"""Contract: the executeWorkflowWithStream subscription, read as Server-Sent Events."""

from __future__ import annotations

from collections.abc import Mapping

import pytest
from contract_support import CONTRACT_PAYLOAD, INVALID_API_KEY, Api, ContractBackend

from langchain_lamatic import LamaticAuthenticationError, LamaticExecutionError
from langchain_lamatic.streaming import FlowCompleted, NodeCompleted, TextDelta

pytestmark = pytest.mark.live


async def test_stream_flow_ends_with_flow_completed(contract: ContractBackend, api: Api) -> None:
    client = contract.client()

    events = await api.stream(client, contract.flow_id, CONTRACT_PAYLOAD)

    assert events, "the stream carried no event"
    assert isinstance(events[-1], FlowCompleted)
    assert sum(isinstance(event, FlowCompleted) for event in events) == 1
    assert isinstance(events[-1].output, Mapping)
    assert any(isinstance(event, NodeCompleted) for event in events)


async def test_stream_flow_text_joins_deltas(contract: ContractBackend, api: Api) -> None:
    client = contract.client()

    events = await api.stream(client, contract.flow_id, CONTRACT_PAYLOAD)

    deltas = [event.text for event in events if isinstance(event, TextDelta)]
    completed = events[-1]
    assert isinstance(completed, FlowCompleted)
    assert completed.text == "".join(deltas)


async def test_stream_flow_error_frame_raises(contract: ContractBackend, api: Api) -> None:
    client = contract.client()

    with pytest.raises(LamaticExecutionError) as caught:
        await api.stream(client, contract.failing_flow_id, CONTRACT_PAYLOAD)

    assert caught.value.operation == "executeWorkflowWithStream"


async def test_stream_flow_invalid_key_raises(contract: ContractBackend, api: Api) -> None:
    client = contract.client(api_key=INVALID_API_KEY)

    with pytest.raises(LamaticAuthenticationError) as caught:
        await api.stream(client, contract.flow_id, CONTRACT_PAYLOAD)

    assert caught.value.status_code == 401
