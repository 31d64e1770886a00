"""``LamaticClient``: the HTTP transport to a Lamatic project's GraphQL endpoint."""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Mapping
from types import TracebackType
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, SecretStr
from typing_extensions import Self

from langchain_lamatic import _queries
from langchain_lamatic._retry import RetryPolicy
from langchain_lamatic._settings import (
    ENDPOINT_ENV,
    PROJECT_ID_ENV,
    CredentialKind,
    normalise_endpoint,
    resolve_credential,
    resolve_text,
)
from langchain_lamatic._version import __version__
from langchain_lamatic.errors import (
    LamaticAuthenticationError,
    LamaticConnectionError,
    LamaticError,
    LamaticExecutionError,
    LamaticPermissionError,
    LamaticResponseError,
    LamaticTimeoutError,
    classify_response,
    redact,
)

__all__ = [
    "DEFAULT_TIMEOUT",
    "AccessTokenProvider",
    "LamaticClient",
    "LamaticResponse",
    "TimeoutTypes",
]

logger = logging.getLogger(__name__)

USER_AGENT = f"langchain-lamatic/{__version__}"

DEFAULT_TIMEOUT = httpx.Timeout(330.0, connect=10.0)
"""Per-attempt timeout: 10 s to connect, 330 s for the rest.

A realtime run may take about 2 minutes on Lamatic's Pro plan and 5 on Enterprise, so the
read timeout allows 5 minutes plus a margin.
"""

TimeoutTypes = float | httpx.Timeout | None
AccessTokenProvider = Callable[[], str | Awaitable[str]]

_FAILED_STATUSES = frozenset({"error", "failed"})


class LamaticResponse(BaseModel):
    """The outcome of one flow or agent execution that did not fail.

    Attributes:
        status: Lamatic's execution status, usually ``"success"``.
        result: the flow's output object (the keys of its API Response node).
        request_id: the execution's request id, when Lamatic returned one.
        status_code: the HTTP status of the response.
        message: a message Lamatic sent with the result, if any.
    """

    model_config = ConfigDict(frozen=True)

    status: str
    result: Any = None
    request_id: str | None = None
    status_code: int = 200
    message: str | None = None


def _request_id_of(data: Mapping[str, Any]) -> str | None:
    for container in (data, data.get("result")):
        if isinstance(container, Mapping):
            for key in ("requestId", "request_id"):
                value = container.get(key)
                if isinstance(value, str) and value:
                    return value
    return None


def _failure_text(data: Mapping[str, Any]) -> str:
    message = data.get("message")
    if isinstance(message, str) and message:
        return message
    result = data.get("result")
    if isinstance(result, Mapping):
        for key in ("errorMsg", "error", "message"):
            value = result.get(key)
            if isinstance(value, str) and value:
                return value
    if isinstance(result, str) and result:
        return result
    return "no error message was returned"


def _coerce_timeout(timeout: TimeoutTypes) -> httpx.Timeout:
    if isinstance(timeout, httpx.Timeout):
        return timeout
    if timeout is None:
        raise ValueError("timeout must be a number of seconds or an httpx.Timeout, not None")
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
    return httpx.Timeout(float(timeout), connect=min(float(timeout), DEFAULT_TIMEOUT.connect or 10))


def _check_id(value: object, argument: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{argument} must be a str, got {type(value).__name__}")
    if not value.strip():
        raise ValueError(
            f"{argument} must not be empty; copy it from the flow's page in Lamatic Studio"
        )
    return value


def _check_payload(payload: object, target: str) -> dict[str, Any]:
    if payload is None:
        return {}
    if not isinstance(payload, Mapping):
        raise TypeError(
            f"The payload for {target} must be a mapping of input names to values, "
            f"got {type(payload).__name__}"
        )
    for key in payload:
        if not isinstance(key, str):
            raise TypeError(f"The payload for {target} has a key that is not a str: {key!r}")
    return dict(payload)


class _Call:
    """One logical call: the request body, where it goes, and how its failures are reported."""

    __slots__ = ("agent_id", "body", "flow_id", "idempotent", "operation", "timeout")

    def __init__(
        self,
        operation: str,
        query: str,
        variables: dict[str, Any],
        *,
        timeout: httpx.Timeout,
        idempotent: bool,
        flow_id: str | None = None,
        agent_id: str | None = None,
    ) -> None:
        target = (
            f"flow {flow_id!r}" if flow_id else f"agent {agent_id!r}" if agent_id else operation
        )
        try:
            self.body = json.dumps(
                {"query": query, "variables": variables},
                separators=(",", ":"),
                ensure_ascii=False,
                allow_nan=False,
            ).encode("utf-8")
        except (TypeError, ValueError) as error:
            raise TypeError(
                f"The payload for {target} cannot be sent as JSON: {error}. Convert the value to "
                "str, int, float, bool, None, list or dict first."
            ) from None
        self.operation = operation
        self.timeout = timeout
        self.idempotent = idempotent
        self.flow_id = flow_id
        self.agent_id = agent_id

    @property
    def target(self) -> str:
        return self.flow_id or self.agent_id or "-"


class LamaticClient:
    """A client for one Lamatic project's GraphQL endpoint, with pooled connections.

    Settings fall back to environment variables: ``endpoint`` to ``LAMATIC_ENDPOINT``,
    ``project_id`` to ``LAMATIC_PROJECT_ID``, and the credential to ``LAMATIC_API_KEY`` or
    ``LAMATIC_ACCESS_TOKEN``. Exactly one credential is used; one passed as an argument
    replaces both environment variables.

    The client opens one ``httpx.Client`` and one ``httpx.AsyncClient`` per event loop, lazily,
    and reuses their connections. It is safe to share between threads and between tasks.

    Failures raise a subclass of ``LamaticError``; nothing is returned as a status object.
    Retries (``max_retries``, default 2): failures before the request was sent, HTTP 429,
    502, 503 and 504, with exponential backoff and jitter, honouring ``Retry-After`` up to
    60 s. A flow or agent execution is not retried after a read timeout, a dropped
    connection or an HTTP 500, because Lamatic has no idempotency key and flows often have
    side effects.

    Example:
        .. code-block:: python

            with LamaticClient() as client:
                response = client.execute_flow("article-summariser", {"url": "https://..."})
                print(response.result["summary"])

    Args:
        endpoint: the project's GraphQL URL, e.g. ``https://<project>.lamatic.dev/graphql``.
            A base URL without a path gets ``/graphql``.
        project_id: the project id sent as ``x-project-id``.
        api_key: a project API key (``lt-...``), sent as ``Authorization: Bearer``.
        access_token: an HS256 JWT access token, sent as ``X-Lamatic-Signature``.
        access_token_provider: a sync or async callable returning a fresh access token. It is
            called once when a call made with an access token is answered 401 or 403, and
            the call is retried once with the new token.
        timeout: seconds or an ``httpx.Timeout`` per attempt; see ``DEFAULT_TIMEOUT``.
        max_retries: retries after the first attempt; 0 disables them.
        allow_insecure_http: allow plain ``http://`` to a host that is not loopback.
        bypass_cache: send ``X-Bypass-Cache: True`` so Lamatic skips its 24 h response cache.
        max_connections: the connection pool size of each underlying httpx client.
        http_client: an ``httpx.Client`` to use instead of the client's own. It is not closed
            by ``close()``.
        http_async_client: an ``httpx.AsyncClient`` to use instead of the client's own. It is
            bound to the loop it was first used on and is not closed by ``aclose()``.
        transport: an ``httpx.BaseTransport`` for the client's own ``httpx.Client``.
        async_transport: an ``httpx.AsyncBaseTransport`` for its own ``httpx.AsyncClient``.

    Raises:
        ValueError: when a setting is missing, invalid or in conflict; the message names the
            argument and its environment variable.
    """

    def __init__(
        self,
        *,
        endpoint: str | None = None,
        project_id: str | None = None,
        api_key: str | SecretStr | None = None,
        access_token: str | SecretStr | None = None,
        access_token_provider: AccessTokenProvider | None = None,
        timeout: TimeoutTypes = DEFAULT_TIMEOUT,
        max_retries: int = 2,
        allow_insecure_http: bool = False,
        bypass_cache: bool = False,
        max_connections: int = 100,
        http_client: httpx.Client | None = None,
        http_async_client: httpx.AsyncClient | None = None,
        transport: httpx.BaseTransport | None = None,
        async_transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        raw_endpoint = resolve_text(
            endpoint,
            argument="endpoint",
            env=ENDPOINT_ENV,
            example="https://<project>.lamatic.dev/graphql",
        )
        self.endpoint = normalise_endpoint(raw_endpoint, allow_insecure_http=allow_insecure_http)
        self.project_id = resolve_text(
            project_id, argument="project_id", env=PROJECT_ID_ENV, example="the id in Studio's URL"
        )
        credential: tuple[SecretStr, CredentialKind] | None = resolve_credential(
            api_key, access_token
        )
        self._credential = credential
        if access_token_provider is not None and not callable(access_token_provider):
            raise TypeError("access_token_provider must be a callable returning a str")
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
            raise ValueError(f"max_retries must be an int of 0 or more, got {max_retries!r}")
        if (
            isinstance(max_connections, bool)
            or not isinstance(max_connections, int)
            or max_connections < 1
        ):
            raise ValueError(f"max_connections must be a positive int, got {max_connections!r}")

        self.access_token_provider = access_token_provider
        self.timeout = _coerce_timeout(timeout)
        self.retry_policy = RetryPolicy(max_retries=max_retries)
        self.allow_insecure_http = allow_insecure_http
        self.bypass_cache = bypass_cache
        self.max_connections = max_connections
        self._transport = transport
        self._async_transport = async_transport
        self._external_client = http_client
        self._external_async_client = http_async_client
        self._init_runtime_state()

    def _init_runtime_state(self) -> None:
        self._lock = threading.Lock()
        self._sync_client: httpx.Client | None = None
        # One AsyncClient per event loop: an AsyncClient cannot be used from a loop other than
        # the one its connections were opened on, and asyncio.run() makes a new loop each time.
        self._async_clients: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, httpx.AsyncClient
        ] = weakref.WeakKeyDictionary()
        self._closed = False

    # --- Credentials ------------------------------------------------------------------------

    @property
    def credential_kind(self) -> CredentialKind:
        """``"api_key"`` or ``"access_token"``: which credential header the client sends."""
        return self._get_credential()[1]

    def _get_credential(self) -> tuple[SecretStr, CredentialKind]:
        if self._credential is None:
            # An unpickled client carries no credential and takes it from the environment.
            self._credential = resolve_credential(None, None)
        return self._credential

    def update_access_token(self, access_token: str | SecretStr) -> None:
        """Replace the credential with a new access token, for all later calls.

        Raises:
            ValueError: when the token is empty.
        """
        value = (
            access_token.get_secret_value() if isinstance(access_token, SecretStr) else access_token
        )
        if not isinstance(value, str) or not value.strip():
            raise ValueError("update_access_token() needs a non-empty access token")
        self._credential = (SecretStr(value.strip()), "access_token")

    def _secrets(self) -> tuple[str, ...]:
        if self._credential is None:
            return ()
        return (self._credential[0].get_secret_value(),)

    def _headers(
        self,
        *,
        accept: str,
        access_token: str | SecretStr | None,
        project_id: str | None,
    ) -> dict[str, str]:
        headers = {
            "Content-Type": "application/json",
            "Accept": accept,
            "User-Agent": USER_AGENT,
            "x-project-id": project_id or self.project_id,
        }
        if access_token is not None:
            token = (
                access_token.get_secret_value()
                if isinstance(access_token, SecretStr)
                else access_token
            )
            headers["X-Lamatic-Signature"] = token
        else:
            secret, kind = self._get_credential()
            if kind == "access_token":
                headers["X-Lamatic-Signature"] = secret.get_secret_value()
            else:
                headers["Authorization"] = f"Bearer {secret.get_secret_value()}"
        if self.bypass_cache:
            headers["X-Bypass-Cache"] = "True"
        return headers

    # --- Connections ------------------------------------------------------------------------

    def _limits(self) -> httpx.Limits:
        return httpx.Limits(
            max_connections=self.max_connections,
            max_keepalive_connections=min(self.max_connections, 20),
            keepalive_expiry=30.0,
        )

    def _get_sync_client(self) -> httpx.Client:
        if self._external_client is not None:
            return self._external_client
        client = self._sync_client
        if client is None:
            with self._lock:
                if self._sync_client is None:
                    self._sync_client = httpx.Client(
                        transport=self._transport,
                        limits=self._limits(),
                        follow_redirects=False,
                        trust_env=True,
                    )
                client = self._sync_client
        return client

    def _get_async_client(self) -> httpx.AsyncClient:
        if self._external_async_client is not None:
            return self._external_async_client
        loop = asyncio.get_running_loop()
        client = self._async_clients.get(loop)
        if client is None:
            with self._lock:
                self._forget_closed_loops()
                client = httpx.AsyncClient(
                    transport=self._async_transport,
                    limits=self._limits(),
                    follow_redirects=False,
                    trust_env=True,
                )
                self._async_clients[loop] = client
        return client

    def _forget_closed_loops(self) -> None:
        for loop in list(self._async_clients.keys()):
            if loop.is_closed():
                client = self._async_clients.pop(loop)
                _close_sockets_of_dead_loop(client)

    def close(self) -> None:
        """Close the pooled sync connections. Injected httpx clients are left open."""
        with self._lock:
            client, self._sync_client = self._sync_client, None
            self._forget_closed_loops()
        if client is not None:
            client.close()

    async def aclose(self) -> None:
        """Close the pooled connections of the running event loop, and the sync ones."""
        self.close()
        loop = asyncio.get_running_loop()
        with self._lock:
            client = self._async_clients.pop(loop, None)
        if client is not None:
            await client.aclose()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    # --- Pickling and display ---------------------------------------------------------------

    def __getstate__(self) -> dict[str, Any]:
        # No credential, connection or injected httpx client is pickled: the copy reads its
        # credential from the environment on first use.
        state = {
            key: value
            for key, value in self.__dict__.items()
            if key
            not in {
                "_lock",
                "_sync_client",
                "_async_clients",
                "_credential",
                "_external_client",
                "_external_async_client",
                "_transport",
                "_async_transport",
            }
        }
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._credential = None
        self._transport = None
        self._async_transport = None
        self._external_client = None
        self._external_async_client = None
        self._init_runtime_state()

    def __repr__(self) -> str:
        kind = self._credential[1] if self._credential is not None else "from environment"
        return (
            f"LamaticClient(endpoint={self.endpoint!r}, project_id={self.project_id!r}, "
            f"credential={kind}=**********)"
        )

    # --- Public operations ------------------------------------------------------------------

    def execute_flow(
        self,
        flow_id: str,
        payload: Mapping[str, Any] | None = None,
        *,
        timeout: TimeoutTypes = None,
        access_token: str | SecretStr | None = None,
        project_id: str | None = None,
    ) -> LamaticResponse:
        """Run a deployed flow and return its result.

        Args:
            flow_id: the flow's id from Lamatic Studio.
            payload: the inputs of the flow's API Request trigger; ``None`` sends ``{}``.
            timeout: overrides the client's timeout for this call.
            access_token: sends this access token instead of the client's credential.
            project_id: sends this project id instead of the client's.

        Raises:
            LamaticExecutionError: the flow ran and reported "error" or "failed".
            LamaticError: another subclass for every other failure; see the errors module.
            TypeError: the payload is not a mapping or cannot be encoded as JSON.
        """
        call = self._execute_call("executeWorkflow", flow_id, payload, timeout, agent=False)
        data = self._send(call, access_token=access_token, project_id=project_id)
        return self._execution_response(call, data)

    async def aexecute_flow(
        self,
        flow_id: str,
        payload: Mapping[str, Any] | None = None,
        *,
        timeout: TimeoutTypes = None,
        access_token: str | SecretStr | None = None,
        project_id: str | None = None,
    ) -> LamaticResponse:
        """Run a deployed flow without blocking the event loop; see ``execute_flow``."""
        call = self._execute_call("executeWorkflow", flow_id, payload, timeout, agent=False)
        data = await self._asend(call, access_token=access_token, project_id=project_id)
        return self._execution_response(call, data)

    def execute_agent(
        self,
        agent_id: str,
        payload: Mapping[str, Any] | None = None,
        *,
        timeout: TimeoutTypes = None,
        access_token: str | SecretStr | None = None,
        project_id: str | None = None,
    ) -> LamaticResponse:
        """Run a deployed agent and return its result; the contract matches ``execute_flow``."""
        call = self._execute_call("executeAgent", agent_id, payload, timeout, agent=True)
        data = self._send(call, access_token=access_token, project_id=project_id)
        return self._execution_response(call, data)

    async def aexecute_agent(
        self,
        agent_id: str,
        payload: Mapping[str, Any] | None = None,
        *,
        timeout: TimeoutTypes = None,
        access_token: str | SecretStr | None = None,
        project_id: str | None = None,
    ) -> LamaticResponse:
        """Run a deployed agent without blocking the event loop; see ``execute_flow``."""
        call = self._execute_call("executeAgent", agent_id, payload, timeout, agent=True)
        data = await self._asend(call, access_token=access_token, project_id=project_id)
        return self._execution_response(call, data)

    # --- Request building and interpretation ------------------------------------------------

    def _call_timeout(self, timeout: TimeoutTypes) -> httpx.Timeout:
        return self.timeout if timeout is None else _coerce_timeout(timeout)

    def _execute_call(
        self,
        operation: str,
        target_id: object,
        payload: object,
        timeout: TimeoutTypes,
        *,
        agent: bool,
    ) -> _Call:
        argument = "agent_id" if agent else "flow_id"
        target_id = _check_id(target_id, argument)
        target = f"agent {target_id!r}" if agent else f"flow {target_id!r}"
        id_variable = "agentId" if agent else "workflowId"
        variables = {id_variable: target_id, "payload": _check_payload(payload, target)}
        return _Call(
            operation,
            _queries.EXECUTE_AGENT if agent else _queries.EXECUTE_WORKFLOW,
            variables,
            timeout=self._call_timeout(timeout),
            idempotent=False,
            flow_id=None if agent else target_id,
            agent_id=target_id if agent else None,
        )

    def _execution_response(self, call: _Call, data: Any) -> LamaticResponse:
        common: dict[str, Any] = {
            "status_code": 200,
            "operation": call.operation,
            "flow_id": call.flow_id,
            "agent_id": call.agent_id,
        }
        what = (
            f"Lamatic flow {call.flow_id!r}" if call.flow_id else f"Lamatic agent {call.agent_id!r}"
        )
        if not isinstance(data, Mapping):
            raise LamaticResponseError(
                f"{what} returned {type(data).__name__} where an object with status and result "
                "was expected",
                **common,
            )
        status = data.get("status")
        request_id = _request_id_of(data)
        if not isinstance(status, str):
            raise LamaticResponseError(
                f"{what} returned a status of type {type(status).__name__}; expected a string "
                "such as 'success'",
                request_id=request_id,
                **common,
            )
        if status.lower() in _FAILED_STATUSES:
            reason = redact(_failure_text(data), self._secrets())
            raise LamaticExecutionError(
                f"{what} reported status {status!r}: {reason}", request_id=request_id, **common
            )
        message = data.get("message")
        return LamaticResponse(
            status=status,
            result=data.get("result"),
            request_id=request_id,
            status_code=200,
            message=message if isinstance(message, str) else None,
        )

    # --- Sending, with retries --------------------------------------------------------------

    def _build_request(
        self,
        client: httpx.Client | httpx.AsyncClient,
        call: _Call,
        *,
        accept: str,
        access_token: str | SecretStr | None,
        project_id: str | None,
    ) -> httpx.Request:
        return client.build_request(
            "POST",
            self.endpoint,
            content=call.body,
            headers=self._headers(accept=accept, access_token=access_token, project_id=project_id),
            timeout=call.timeout,
        )

    def _transport_error(
        self, call: _Call, error: httpx.HTTPError, attempts: int
    ) -> tuple[LamaticError, bool]:
        """Map an httpx failure to a typed error, and say whether the request was sent."""
        sent = not isinstance(error, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout))
        what = (
            f"Lamatic flow {call.flow_id!r}"
            if call.flow_id
            else f"Lamatic agent {call.agent_id!r}"
            if call.agent_id
            else f"Lamatic {call.operation}"
        )
        detail = redact(str(error) or type(error).__name__, self._secrets())
        common: dict[str, Any] = {
            "operation": call.operation,
            "flow_id": call.flow_id,
            "agent_id": call.agent_id,
            "attempts": attempts,
        }
        if isinstance(error, httpx.TimeoutException):
            phase = {
                httpx.ConnectTimeout: "connecting",
                httpx.ReadTimeout: "waiting for the response",
                httpx.WriteTimeout: "sending the request",
                httpx.PoolTimeout: "waiting for a free connection",
            }.get(type(error), "waiting")
            return LamaticTimeoutError(f"{what} timed out while {phase}: {detail}", **common), sent
        return (
            LamaticConnectionError(f"{what} could not reach {self.endpoint}: {detail}", **common),
            sent,
        )

    def _after_failure(
        self, call: _Call, error: LamaticError, attempt: int, sent: bool
    ) -> float | None:
        """Return the seconds to wait before retrying, or None to give up."""
        error.attempts = attempt
        if attempt > self.retry_policy.max_retries:
            return None
        if not self.retry_policy.should_retry(error, idempotent=call.idempotent, request_sent=sent):
            return None
        wait = self.retry_policy.delay(attempt, error)
        logger.info(
            "Retrying Lamatic %s for %s in %.2f s (attempt %d of %d) after %s",
            call.operation,
            call.target,
            wait,
            attempt + 1,
            self.retry_policy.max_retries + 1,
            type(error).__name__,
        )
        return wait

    def _wants_token_refresh(
        self, error: LamaticError, refreshed: bool, access_token: object
    ) -> bool:
        return (
            not refreshed
            and access_token is None
            and self.access_token_provider is not None
            and isinstance(error, (LamaticAuthenticationError, LamaticPermissionError))
            and self.credential_kind == "access_token"
        )

    def _classify(self, call: _Call, response: httpx.Response, body: bytes, attempts: int) -> Any:
        try:
            return classify_response(
                response.status_code,
                body,
                operation=call.operation,
                headers=response.headers,
                flow_id=call.flow_id,
                agent_id=call.agent_id,
                secrets=self._secrets(),
            )
        except LamaticError as error:
            error.attempts = attempts
            raise

    def _send(
        self,
        call: _Call,
        *,
        access_token: str | SecretStr | None = None,
        project_id: str | None = None,
    ) -> Any:
        client = self._get_sync_client()
        attempt = 0
        refreshed = False
        while True:
            attempt += 1
            request = self._build_request(
                client,
                call,
                accept="application/json",
                access_token=access_token,
                project_id=project_id,
            )
            started = time.monotonic()
            try:
                response = client.send(request)
                try:
                    body = response.read()
                finally:
                    response.close()
            except httpx.HTTPError as http_error:
                error, sent = self._transport_error(call, http_error, attempt)
                wait = self._after_failure(call, error, attempt, sent)
                if wait is None:
                    raise error from None
                time.sleep(wait)
                continue
            logger.debug(
                "Lamatic %s for %s: HTTP %d in %.3f s",
                call.operation,
                call.target,
                response.status_code,
                time.monotonic() - started,
            )

            try:
                return self._classify(call, response, body, attempt)
            except LamaticError as error:
                if self._wants_token_refresh(error, refreshed, access_token):
                    refreshed = True
                    self.update_access_token(self._call_token_provider_sync())
                    logger.info(
                        "Refreshed the Lamatic access token after HTTP %s", error.status_code
                    )
                    attempt -= 1
                    continue
                wait = self._after_failure(call, error, attempt, True)
                if wait is None:
                    raise
                time.sleep(wait)

    async def _asend(
        self,
        call: _Call,
        *,
        access_token: str | SecretStr | None = None,
        project_id: str | None = None,
    ) -> Any:
        client = self._get_async_client()
        attempt = 0
        refreshed = False
        while True:
            attempt += 1
            request = self._build_request(
                client,
                call,
                accept="application/json",
                access_token=access_token,
                project_id=project_id,
            )
            started = time.monotonic()
            try:
                response = await client.send(request)
                try:
                    body = await response.aread()
                finally:
                    await response.aclose()
            except httpx.HTTPError as http_error:
                error, sent = self._transport_error(call, http_error, attempt)
                wait = self._after_failure(call, error, attempt, sent)
                if wait is None:
                    raise error from None
                await asyncio.sleep(wait)
                continue
            logger.debug(
                "Lamatic %s for %s: HTTP %d in %.3f s",
                call.operation,
                call.target,
                response.status_code,
                time.monotonic() - started,
            )

            try:
                return self._classify(call, response, body, attempt)
            except LamaticError as error:
                if self._wants_token_refresh(error, refreshed, access_token):
                    refreshed = True
                    self.update_access_token(await self._call_token_provider_async())
                    logger.info(
                        "Refreshed the Lamatic access token after HTTP %s", error.status_code
                    )
                    attempt -= 1
                    continue
                wait = self._after_failure(call, error, attempt, True)
                if wait is None:
                    raise
                await asyncio.sleep(wait)

    def _call_token_provider_sync(self) -> str:
        assert self.access_token_provider is not None  # noqa: S101
        token = self.access_token_provider()
        if inspect.isawaitable(token):
            token = _run_awaitable_in_thread(token)
        return _check_provided_token(token)

    async def _call_token_provider_async(self) -> str:
        assert self.access_token_provider is not None  # noqa: S101
        token = self.access_token_provider()
        if inspect.isawaitable(token):
            token = await token
        return _check_provided_token(token)


def _check_provided_token(token: object) -> str:
    if not isinstance(token, str) or not token.strip():
        raise LamaticAuthenticationError(
            f"access_token_provider returned {type(token).__name__} instead of a non-empty token"
        )
    return token


def _run_awaitable_in_thread(awaitable: Awaitable[Any]) -> Any:
    """Run an awaitable to completion from sync code, even when a loop runs in this thread."""
    result: dict[str, Any] = {}

    async def wrapper() -> None:
        result["value"] = await awaitable

    def target() -> None:
        try:
            asyncio.run(wrapper())
        except BaseException as error:
            result["error"] = error

    thread = threading.Thread(target=target, name="lamatic-token-provider", daemon=True)
    thread.start()
    thread.join()
    if "error" in result:
        raise result["error"]
    return result.get("value")


def _close_sockets_of_dead_loop(client: httpx.AsyncClient) -> None:
    """Close the sockets of an AsyncClient whose event loop has closed.

    Its connections cannot be closed the normal way, because that needs the dead loop. Their
    sockets are closed directly so file descriptors are released at once rather than at
    garbage collection.
    """
    pool = getattr(getattr(client, "_transport", None), "_pool", None)
    for connection in list(getattr(pool, "connections", ()) or ()):
        inner = getattr(connection, "_connection", None)
        stream = getattr(inner, "_network_stream", None)
        get_extra_info = getattr(stream, "get_extra_info", None)
        if get_extra_info is None:
            continue
        try:
            sock = get_extra_info("socket")
            if sock is not None:
                sock.close()
        except Exception:
            logger.debug("Could not close a socket left by a closed event loop", exc_info=True)
