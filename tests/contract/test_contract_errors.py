"""Contract: every row of the error table, on executeWorkflow, sync and async.

Cases that the real service produces on request (a wrong key, a wrong project, an unknown
flow, a failing flow) run in every mode. The others need the local server's fault injection,
so the live mode skips them and keeps their locally recorded cassettes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from contract_support import (
    CONTRACT_PAYLOAD,
    INVALID_API_KEY,
    MISSING_FLOW_ID,
    OTHER_PROJECT_ID,
    Api,
    ContractBackend,
)

from langchain_lamatic import (
    LamaticAuthenticationError,
    LamaticBadRequestError,
    LamaticError,
    LamaticExecutionError,
    LamaticNotFoundError,
    LamaticPermissionError,
    LamaticRateLimitError,
    LamaticResponseError,
    LamaticServerError,
)
from langchain_lamatic.testing import Fault

pytestmark = pytest.mark.live


@dataclass(frozen=True)
class ErrorCase:
    """One row of the error table: how to provoke it and what the client must raise."""

    name: str
    expected: type[LamaticError]
    status_code: int
    fault: Callable[[], Fault] | None = None
    flow: str = "flow"
    payload: dict[str, Any] = field(default_factory=lambda: dict(CONTRACT_PAYLOAD))
    client_overrides: dict[str, Any] = field(default_factory=dict)
    local_only: str | None = None


ERROR_CASES = [
    ErrorCase("http-400", LamaticBadRequestError, 400, fault=lambda: Fault.status(400)),
    ErrorCase(
        "http-401-invalid-api-key",
        LamaticAuthenticationError,
        401,
        client_overrides={"api_key": INVALID_API_KEY},
    ),
    ErrorCase(
        "http-403-other-project",
        LamaticPermissionError,
        403,
        client_overrides={"project_id": OTHER_PROJECT_ID},
    ),
    ErrorCase("http-404", LamaticNotFoundError, 404, fault=lambda: Fault.status(404)),
    ErrorCase(
        "http-422-invalid-payload",
        LamaticBadRequestError,
        422,
        payload={"question": 42},
        local_only="the real service's payload validation is not documented",
    ),
    ErrorCase("http-500", LamaticServerError, 500, fault=lambda: Fault.status(500)),
    ErrorCase("http-503", LamaticServerError, 503, fault=lambda: Fault.status(503)),
    ErrorCase("html-502", LamaticServerError, 502, fault=lambda: Fault.html(502)),
    ErrorCase("html-200", LamaticResponseError, 200, fault=lambda: Fault.html(200)),
    ErrorCase("invalid-json-200", LamaticResponseError, 200, fault=lambda: Fault.invalid_json(200)),
    ErrorCase("empty-body-200", LamaticResponseError, 200, fault=lambda: Fault.empty_body(200)),
    ErrorCase("null-data-200", LamaticResponseError, 200, fault=Fault.null_data),
    ErrorCase(
        "graphql-error-200-invalid-key",
        LamaticAuthenticationError,
        200,
        fault=lambda: Fault.graphql_error("Invalid API key"),
    ),
    ErrorCase(
        "graphql-error-200-internal",
        LamaticServerError,
        200,
        fault=lambda: Fault.graphql_error("Internal server error", code="INTERNAL_SERVER_ERROR"),
    ),
    ErrorCase("graphql-error-200-flow-not-found", LamaticNotFoundError, 200, flow="missing"),
    ErrorCase("execution-error", LamaticExecutionError, 200, flow="failing"),
]


def _flow_id(contract: ContractBackend, flow: str) -> str:
    if flow == "missing":
        return MISSING_FLOW_ID
    if flow == "failing":
        return contract.failing_flow_id
    return contract.flow_id


@pytest.mark.parametrize("case", ERROR_CASES, ids=lambda case: case.name)
async def test_error_table_raises_typed_error(
    contract: ContractBackend, api: Api, case: ErrorCase
) -> None:
    if case.local_only:
        contract.local_only(case.local_only)
    if case.fault is not None:
        contract.inject(case.fault())
    flow_id = _flow_id(contract, case.flow)
    client = contract.client(**case.client_overrides)

    with pytest.raises(LamaticError) as caught:
        await api.call(client.execute_flow, flow_id, case.payload)

    error = caught.value
    assert type(error) is case.expected
    assert error.status_code == case.status_code
    assert error.operation == "executeWorkflow"
    assert error.attempts == 1


async def test_rate_limit_carries_retry_after(contract: ContractBackend, api: Api) -> None:
    contract.inject(Fault.rate_limit(7))
    client = contract.client()

    with pytest.raises(LamaticRateLimitError) as caught:
        await api.call(client.execute_flow, contract.flow_id, CONTRACT_PAYLOAD)

    assert caught.value.status_code == 429
    assert caught.value.retry_after == 7.0


async def test_html_error_keeps_redacted_excerpt(contract: ContractBackend, api: Api) -> None:
    contract.inject(Fault.html(502))
    client = contract.client()

    with pytest.raises(LamaticServerError) as caught:
        await api.call(client.execute_flow, contract.flow_id, CONTRACT_PAYLOAD)

    assert caught.value.body_excerpt is not None
    assert "502" in caught.value.body_excerpt


async def test_execution_error_names_flow_and_request(contract: ContractBackend, api: Api) -> None:
    client = contract.client()
    flow_id = contract.failing_flow_id

    with pytest.raises(LamaticExecutionError) as caught:
        await api.call(client.execute_flow, flow_id, CONTRACT_PAYLOAD)

    assert caught.value.flow_id == flow_id
    assert caught.value.request_id


async def test_agent_not_found_is_typed(contract: ContractBackend, api: Api) -> None:
    client = contract.client()

    with pytest.raises(LamaticNotFoundError) as caught:
        await api.call(client.execute_agent, "contract-missing-agent", CONTRACT_PAYLOAD)

    assert caught.value.agent_id == "contract-missing-agent"
    assert caught.value.operation == "executeAgent"
