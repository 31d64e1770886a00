"""Contract: executeWorkflow and executeAgent, with an API key and with an access token."""

from __future__ import annotations

from collections.abc import Mapping

import pytest
from contract_support import CONTRACT_PAYLOAD, Api, ContractBackend

from langchain_lamatic import LamaticAgent, LamaticFlow, LamaticResponse
from langchain_lamatic.testing.vcr import ACCESS_TOKEN_PLACEHOLDER, API_KEY_PLACEHOLDER

pytestmark = pytest.mark.live


def assert_successful_execution(response: LamaticResponse) -> None:
    assert response.status == "success"
    assert isinstance(response.result, Mapping)
    assert response.result, "a successful execution returns the API Response node's keys"
    assert response.status_code == 200
    assert response.request_id is None or isinstance(response.request_id, str)


async def test_execute_flow_returns_result(contract: ContractBackend, api: Api) -> None:
    client = contract.client()

    response = await api.call(client.execute_flow, contract.flow_id, CONTRACT_PAYLOAD)

    assert_successful_execution(response)


async def test_execute_flow_sends_api_key_as_bearer(contract: ContractBackend, api: Api) -> None:
    client = contract.client()

    await api.call(client.execute_flow, contract.flow_id, CONTRACT_PAYLOAD)

    [headers] = contract.recorded_headers()
    assert headers["authorization"] == f"Bearer {API_KEY_PLACEHOLDER}"
    assert "x-lamatic-signature" not in headers
    assert headers["content-type"] == "application/json"


async def test_execute_flow_with_access_token(contract: ContractBackend, api: Api) -> None:
    client = contract.client(credential="access_token")

    response = await api.call(client.execute_flow, contract.flow_id, CONTRACT_PAYLOAD)

    assert_successful_execution(response)
    [headers] = contract.recorded_headers()
    assert headers["x-lamatic-signature"] == ACCESS_TOKEN_PLACEHOLDER
    assert "authorization" not in headers


async def test_execute_agent_returns_result(contract: ContractBackend, api: Api) -> None:
    client = contract.client()

    response = await api.call(client.execute_agent, contract.agent_id, CONTRACT_PAYLOAD)

    assert_successful_execution(response)


async def test_flow_runnable_returns_result(contract: ContractBackend, api: Api) -> None:
    flow = LamaticFlow(flow_id=contract.flow_id, client=contract.client())

    output = await api.invoke(flow, CONTRACT_PAYLOAD)

    assert isinstance(output, Mapping)
    assert output


async def test_agent_runnable_returns_result(contract: ContractBackend, api: Api) -> None:
    agent = LamaticAgent(agent_id=contract.agent_id, client=contract.client())

    output = await api.invoke(agent, CONTRACT_PAYLOAD)

    assert isinstance(output, Mapping)
    assert output
