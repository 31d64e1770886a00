"""Contract: recorded retry sequences and the access-token refresh, sync and async.

Each cassette contains every attempt in order, so a replay proves the client sends the same
number of requests as when it was recorded: a retry too many finds no recorded answer, and a
retry too few leaves one unplayed, which the contract fixture reports.
"""

from __future__ import annotations

import pytest
from contract_support import CONTRACT_PAYLOAD, Api, ContractBackend

from langchain_lamatic import LamaticPermissionError, LamaticServerError
from langchain_lamatic.testing import Fault
from langchain_lamatic.testing.vcr import ACCESS_TOKEN_PLACEHOLDER

pytestmark = pytest.mark.live


async def test_rate_limit_then_success_is_retried(contract: ContractBackend, api: Api) -> None:
    contract.inject(Fault.rate_limit(0))
    client = contract.client(max_retries=1)

    response = await api.call(client.execute_flow, contract.flow_id, CONTRACT_PAYLOAD)

    assert response.status == "success"
    assert len(contract.cassette.cassette) == 2


async def test_unavailable_then_success_is_retried(contract: ContractBackend, api: Api) -> None:
    contract.inject(Fault.status(503))
    client = contract.client(max_retries=1)

    response = await api.call(client.execute_flow, contract.flow_id, CONTRACT_PAYLOAD)

    assert response.status == "success"
    assert len(contract.cassette.cassette) == 2


async def test_retries_stop_after_max_retries(contract: ContractBackend, api: Api) -> None:
    contract.inject(Fault.status(503), times=3)
    client = contract.client(max_retries=2)

    with pytest.raises(LamaticServerError) as caught:
        await api.call(client.execute_flow, contract.flow_id, CONTRACT_PAYLOAD)

    assert caught.value.attempts == 3
    assert len(contract.cassette.cassette) == 3


async def test_execution_500_is_not_retried(contract: ContractBackend, api: Api) -> None:
    contract.inject(Fault.status(500))
    client = contract.client(max_retries=2)

    with pytest.raises(LamaticServerError) as caught:
        await api.call(client.execute_flow, contract.flow_id, CONTRACT_PAYLOAD)

    assert caught.value.attempts == 1
    assert len(contract.cassette.cassette) == 1


async def test_expired_token_is_refreshed_once(contract: ContractBackend, api: Api) -> None:
    client = contract.client(
        access_token=contract.expired_access_token(),
        access_token_provider=contract.token_provider(),
    )

    response = await api.call(client.execute_flow, contract.flow_id, CONTRACT_PAYLOAD)

    assert response.status == "success"
    headers = contract.recorded_headers()
    assert len(headers) == 2
    assert all(h["x-lamatic-signature"] == ACCESS_TOKEN_PLACEHOLDER for h in headers)


async def test_expired_token_without_provider_fails(contract: ContractBackend, api: Api) -> None:
    client = contract.client(access_token=contract.expired_access_token())

    with pytest.raises(LamaticPermissionError) as caught:
        await api.call(client.execute_flow, contract.flow_id, CONTRACT_PAYLOAD)

    assert caught.value.status_code == 403
