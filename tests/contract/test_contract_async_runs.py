"""Contract: async flows polled with checkStatus, and submitFeedback on a finished execution."""

from __future__ import annotations

from collections.abc import Mapping

import pytest
from contract_support import CONTRACT_PAYLOAD, POLL_INTERVAL, Api, ContractBackend

from langchain_lamatic import LamaticNotFoundError

pytestmark = pytest.mark.live

UNKNOWN_REQUEST_ID = "00000000-0000-4000-8000-000000000000"


async def test_async_flow_returns_request_id(contract: ContractBackend, api: Api) -> None:
    client = contract.client()

    response = await api.call(client.execute_flow, contract.async_flow_id, CONTRACT_PAYLOAD)

    assert isinstance(response.request_id, str)
    assert response.request_id


async def test_check_status_reads_one_poll(contract: ContractBackend, api: Api) -> None:
    client = contract.client()
    started = await api.call(client.execute_flow, contract.async_flow_id, CONTRACT_PAYLOAD)

    status = await api.call(client.check_status, started.request_id)

    assert status.status in {"in-progress", "in_progress", "success"}
    assert status.request_id == started.request_id


async def test_check_status_waits_for_output(contract: ContractBackend, api: Api) -> None:
    client = contract.client()
    started = await api.call(client.execute_flow, contract.async_flow_id, CONTRACT_PAYLOAD)

    finished = await api.call(
        client.check_status, started.request_id, wait=True, poll_interval=POLL_INTERVAL
    )

    assert finished.status == "success"
    assert isinstance(finished.result, Mapping)
    assert finished.result
    assert finished.request_id == started.request_id


async def test_check_status_unknown_request_is_not_found(
    contract: ContractBackend, api: Api
) -> None:
    client = contract.client()

    with pytest.raises(LamaticNotFoundError) as caught:
        await api.call(client.check_status, UNKNOWN_REQUEST_ID)

    assert caught.value.request_id == UNKNOWN_REQUEST_ID
    assert caught.value.operation == "checkStatus"


async def test_submit_feedback_is_accepted(contract: ContractBackend, api: Api) -> None:
    client = contract.client()
    execution = await api.call(client.execute_flow, contract.flow_id, CONTRACT_PAYLOAD)
    assert execution.request_id, "feedback needs the execution's request id"

    response = await api.call(
        client.submit_feedback,
        execution.request_id,
        5,
        "Clear and correct",
        {"source": "contract-suite"},
    )

    assert response.status == "success"
    assert response.request_id == execution.request_id


async def test_submit_feedback_unknown_request_is_not_found(
    contract: ContractBackend, api: Api
) -> None:
    client = contract.client()

    with pytest.raises(LamaticNotFoundError) as caught:
        await api.call(client.submit_feedback, UNKNOWN_REQUEST_ID, 1)

    assert caught.value.operation == "submitFeedback"
    assert caught.value.request_id == UNKNOWN_REQUEST_ID
