"""``LamaticClient``: the HTTP transport to a Lamatic project's GraphQL endpoint."""

from __future__ import annotations

import asyncio
import http.cookiejar
import inspect
import json
import logging
import re
import threading
import time
import urllib.request
import weakref
from collections.abc import Awaitable, Callable, Mapping
from types import TracebackType
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr
from typing_extensions import Self

from langchain_lamatic import _polling, _queries, _stream_client
from langchain_lamatic._http11 import AsyncHTTP11Transport, is_mocking_active
from langchain_lamatic._polling import (
    DEFAULT_POLL_DEADLINE,
    DEFAULT_POLL_INTERVAL,
    PollCallback,
    StatusReport,
)
from langchain_lamatic._retry import RetryPolicy
from langchain_lamatic._settings import (
    ENDPOINT_ENV,
    PROJECT_ID_ENV,
    CredentialKind,
    header_value_problem,
    is_loopback_host,
    normalise_endpoint,
    resolve_credential,
    resolve_text,
)
from langchain_lamatic._stream_client import AsyncFlowEventStream, FlowEventStream
from langchain_lamatic._version import __version__
from langchain_lamatic.errors import (
    LamaticAuthenticationError,
    LamaticBadRequestError,
    LamaticConnectionError,
    LamaticError,
    LamaticExecutionError,
    LamaticNotFoundError,
    LamaticPermissionError,
    LamaticResponseError,
    LamaticTimeoutError,
    classify_response,
    describe_target,
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
"""Per-attempt timeout: 10 s to connect, 330 s for each read, write or pool wait.

A realtime run may take about 2 minutes on Lamatic's Pro plan and 5 on Enterprise, so the
read timeout allows 5 minutes plus a margin.
"""

MAX_TIMEOUT = 1_000_000.0
"""The largest timeout accepted, in seconds (about 11.5 days)."""

# Seconds an idle pooled connection is kept. Before reusing one, both transports check that
# the server has not closed it.
KEEPALIVE_EXPIRY = 30.0

TimeoutTypes = float | httpx.Timeout | None
AccessTokenProvider = Callable[[], str | Awaitable[str]]

_FAILED_STATUSES = frozenset({"error", "failed"})

_GRAPHQL_INT_MIN = -(2**31)
_GRAPHQL_INT_MAX = 2**31 - 1
# submitFeedback returns success: false with an error such as "Invalid request id".
_UNKNOWN_REQUEST_MESSAGE = re.compile(
    r"request.?id|not found|no such|does not exist|unknown request", re.IGNORECASE
)
# Poll intervals already warned about, so a runnable called in a loop warns once.
_warned_poll_intervals: set[float] = set()


class LamaticResponse(BaseModel):
    """The outcome of one flow or agent execution that did not fail.

    Attributes:
        status: Lamatic's execution status, usually ``"success"``.
        result: the flow's output object (the keys of its API Response node).
        request_id: the execution's request id, when Lamatic returned one.
        status_code: the HTTP status of the response.
        message: a message Lamatic sent with the result, if any.
        metadata: other fields of a ``checkStatus`` response, such as ``nodes``,
            ``statusCode`` and ``timeTakenInSeconds``; empty for other calls.
    """

    model_config = ConfigDict(frozen=True)

    status: str
    result: Any = None
    request_id: str | None = None
    status_code: int = 200
    message: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)


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
    # Huge values and inf are rejected: the socket layer raises OverflowError for them.
    if (
        isinstance(timeout, bool)
        or not isinstance(timeout, (int, float))
        or not 0 < timeout <= MAX_TIMEOUT
    ):
        raise ValueError(
            f"timeout must be a positive number of seconds up to {MAX_TIMEOUT:g}, "
            f"got {_shown(timeout)}"
        )
    return httpx.Timeout(float(timeout), connect=min(float(timeout), DEFAULT_TIMEOUT.connect or 10))


# A bytes or bytearray repr, as h11 quotes response bytes in its errors.
_QUOTED_BYTES = re.compile(r"""(?:bytearray\()?b(['"])(?:\\.|(?!\1).)*\1\)?""")


def _without_quoted_bytes(text: str) -> str:
    """Replace each quoted bytes value in an httpx error message with its length.

    h11 quotes the part of a response it could not parse, shortened, so a credential that a
    server echoed there could survive redaction, which only finds whole secrets.
    """
    return _QUOTED_BYTES.sub(lambda match: f"<{len(match.group(0))} characters of response>", text)


def _shown(value: object) -> str:
    """Return a number as itself and anything else as its type name.

    A str given where a number belongs may be a credential passed in the wrong argument.
    """
    if isinstance(value, (int, float)):
        return repr(value)
    return f"a {type(value).__name__}"


def _check_id(value: object, argument: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{argument} must be a str, got {type(value).__name__}")
    if not value.strip():
        raise ValueError(
            f"{argument} must not be empty; copy the id from Lamatic Studio or from the response "
            "that returned it"
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

    __slots__ = (
        "agent_id",
        "body",
        "deadline",
        "flow_id",
        "idempotent",
        "operation",
        "secret",
        "timeout",
    )

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
        target = describe_target(operation, flow_id, agent_id)
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
        # A per-call access token, redacted from errors like the client's own credential.
        self.secret: str | None = None
        # The time.monotonic() value after which no retry starts. Polls with a deadline set it.
        self.deadline: float | None = None

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
            called once when a call made with an access token gets a 401 or 403 response, and
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
            raise ValueError(f"max_retries must be an int of 0 or more, got {_shown(max_retries)}")
        if (
            isinstance(max_connections, bool)
            or not isinstance(max_connections, int)
            or max_connections < 1
        ):
            raise ValueError(
                f"max_connections must be a positive int, got {_shown(max_connections)}"
            )

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
        # Caps the requests each loop has in flight at the pool size. httpcore's pool rescans
        # its whole wait queue whenever a connection changes state, so hundreds of queued
        # requests cost CPU time that grows with the square of the queue's length.
        self._async_slots: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, asyncio.Semaphore
        ] = weakref.WeakKeyDictionary()
        # The AsyncHTTP11Transport of each loop's own AsyncClient; see _direct_transport.
        self._own_async_transports: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, AsyncHTTP11Transport
        ] = weakref.WeakKeyDictionary()
        self._closed = False
        # The endpoint parsed once, with the string it came from: httpx would otherwise parse
        # the string again for every request.
        self._parsed_endpoint: tuple[str, httpx.URL] | None = None
        # Set once a server rejects checkStatus without a selection set; see _poll_status.
        self._check_status_with_selection = False

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
        _check_header_value(value.strip(), "update_access_token()", allow_spaces=False)
        self._credential = (SecretStr(value.strip()), "access_token")

    def _secrets(self, call: _Call | None = None) -> tuple[str, ...]:
        secrets = [] if self._credential is None else [self._credential[0].get_secret_value()]
        if call is not None and call.secret:
            secrets.append(call.secret)
        return tuple(secrets)

    def _headers(
        self,
        *,
        accept: str,
        access_token: str | SecretStr | None,
        project_id: str | None,
    ) -> dict[str, str]:
        if project_id is not None:
            _check_header_value(project_id, "the per-call project_id", allow_spaces=True)
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
            _check_header_value(token, "the per-call access token", allow_spaces=False)
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
            keepalive_expiry=KEEPALIVE_EXPIRY,
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
                        cookies=_cookie_jar_that_stores_nothing(),
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
                transport = self._async_transport
                # httpx applies proxies from the environment only to a client without a
                # transport of its own, so with a proxy configured its stock transport is used.
                if transport is None and not _environment_has_proxy():
                    transport = AsyncHTTP11Transport(
                        max_connections=self.max_connections,
                        keepalive_expiry=KEEPALIVE_EXPIRY,
                    )
                    self._own_async_transports[loop] = transport
                client = httpx.AsyncClient(
                    transport=transport,
                    limits=self._limits(),
                    cookies=_cookie_jar_that_stores_nothing(),
                    follow_redirects=False,
                    trust_env=True,
                )
                self._async_clients[loop] = client
        return client

    def _async_slot(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        slots = self._async_slots.get(loop)
        if slots is None:
            with self._lock:
                slots = self._async_slots.setdefault(loop, asyncio.Semaphore(self.max_connections))
        return slots

    def _forget_closed_loops(self) -> None:
        for loop in list(self._async_clients.keys()):
            if loop.is_closed():
                client = self._async_clients.pop(loop)
                _close_sockets_of_dead_loop(client)
        # A semaphore that has made a task wait refers to its loop, which would keep the
        # weak key alive.
        for loop in list(self._async_slots.keys()):
            if loop.is_closed():
                del self._async_slots[loop]
        for loop in list(self._own_async_transports.keys()):
            if loop.is_closed():
                del self._own_async_transports[loop]

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
            self._own_async_transports.pop(loop, None)
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
        # credential from the environment on first use. The token provider is left out too,
        # because it usually closes over a secret key (and closures cannot be pickled).
        state = {
            key: value
            for key, value in self.__dict__.items()
            if key
            not in {
                "_lock",
                "_sync_client",
                "_async_clients",
                "_async_slots",
                "_own_async_transports",
                "_parsed_endpoint",
                "_credential",
                "_external_client",
                "_external_async_client",
                "_transport",
                "_async_transport",
                "access_token_provider",
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
        self.access_token_provider = None
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

    # --- Async runs -------------------------------------------------------------------------

    def check_status(
        self,
        request_id: str,
        *,
        wait: bool = False,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        deadline: float | None = DEFAULT_POLL_DEADLINE,
        on_poll: PollCallback | None = None,
        timeout: TimeoutTypes = None,
        access_token: str | SecretStr | None = None,
        project_id: str | None = None,
    ) -> LamaticResponse:
        """Read the status of an async run, or with ``wait=True``, wait until it finishes.

        Both completed shapes are read: the documented one (``output``, ``nodes``,
        ``statusCode``) and ``data.output.result``. ``result`` of the returned response is
        the flow's output, ``metadata`` contains the other fields, and ``status`` is
        ``"success"`` or, without ``wait``, possibly ``"in-progress"`` (``in_progress`` is
        spelled that way too). ``checkStatus`` only reads, so read timeouts and HTTP 500
        are retried as well.

        Args:
            request_id: the ``requestId`` an async flow returned.
            wait: poll until the status is ``success``, ``error`` or ``failed``.
            poll_interval: seconds between the starts of two polls. Lamatic's documentation
                requests at most one poll every 3 s, so smaller values are raised to 3 s,
                except for loopback endpoints (local test servers).
            deadline: seconds the whole wait may take; None waits without a limit.
            on_poll: called after each poll with a `PollProgress` (attempt, elapsed seconds,
                status). An async callable works with ``acheck_status`` only.
            timeout: overrides the client's timeout for each poll.
            access_token: sends this access token instead of the client's credential.
            project_id: sends this project id instead of the client's.

        Raises:
            LamaticExecutionError: the run reported "error" or "failed". The message contains
                the server's error text and the error carries ``request_id``.
            LamaticTimeoutError: ``wait`` was set and the deadline passed. The run continues
                on the server, so call ``check_status(request_id, wait=True)`` to resume.
            LamaticError: another subclass for every other failure, with ``request_id``.
            ValueError: an empty request id, or an invalid interval or deadline.
        """
        request_id, interval, limit = self._check_status_arguments(
            request_id, poll_interval, deadline, wait=wait
        )
        if not wait:
            report = self._poll_status(
                request_id, timeout, None, access_token=access_token, project_id=project_id
            )
            return self._status_response(request_id, report)
        return self._wait_for_status(
            request_id,
            interval=interval,
            deadline=limit,
            on_poll=on_poll,
            timeout=timeout,
            access_token=access_token,
            project_id=project_id,
        )

    async def acheck_status(
        self,
        request_id: str,
        *,
        wait: bool = False,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        deadline: float | None = DEFAULT_POLL_DEADLINE,
        on_poll: PollCallback | None = None,
        timeout: TimeoutTypes = None,
        access_token: str | SecretStr | None = None,
        project_id: str | None = None,
    ) -> LamaticResponse:
        """Read or wait for the status of an async run without blocking the event loop.

        Takes the arguments of ``check_status``; ``on_poll`` may also be an async callable.
        The waits between polls are ``asyncio.sleep`` calls, so cancelling the task stops
        the wait at once.
        """
        request_id, interval, limit = self._check_status_arguments(
            request_id, poll_interval, deadline, wait=wait
        )
        if not wait:
            report = await self._apoll_status(
                request_id, timeout, None, access_token=access_token, project_id=project_id
            )
            return self._status_response(request_id, report)
        return await self._await_status(
            request_id,
            interval=interval,
            deadline=limit,
            on_poll=on_poll,
            timeout=timeout,
            access_token=access_token,
            project_id=project_id,
        )

    def _check_status_arguments(
        self, request_id: object, poll_interval: object, deadline: object, *, wait: bool
    ) -> tuple[str, float, float | None]:
        checked_id = _check_id(request_id, "request_id").strip()
        if wait:
            interval = self._effective_poll_interval(poll_interval)
        else:
            interval = _polling.check_poll_interval(poll_interval)
        return checked_id, interval, _polling.check_poll_deadline(deadline)

    def _effective_poll_interval(self, poll_interval: object) -> float:
        """Return the poll interval to use: at least 3 s unless the endpoint is loopback."""
        interval = _polling.check_poll_interval(poll_interval)
        if interval >= _polling.MIN_POLL_INTERVAL:
            return interval
        if is_loopback_host(httpx.URL(self.endpoint).host):
            return interval
        if interval not in _warned_poll_intervals:
            _warned_poll_intervals.add(interval)
            logger.warning(
                "poll_interval %.3g s is below the %g s minimum in Lamatic's documentation, "
                "so polls are sent every %g s instead",
                interval,
                _polling.MIN_POLL_INTERVAL,
                _polling.MIN_POLL_INTERVAL,
            )
        return _polling.MIN_POLL_INTERVAL

    def _status_call(
        self, request_id: str, timeout: TimeoutTypes, remaining: float | None
    ) -> _Call:
        query = (
            _polling.CHECK_STATUS_WITH_SELECTION
            if self._check_status_with_selection
            else _queries.CHECK_STATUS
        )
        call = _Call(
            "checkStatus",
            query,
            {"requestId": request_id},
            timeout=_polling.poll_timeout(self._call_timeout(timeout), remaining),
            idempotent=True,
        )
        if remaining is not None:
            call.deadline = time.monotonic() + remaining
        return call

    def _switch_to_selection_set(self, error: LamaticError) -> bool:
        """Return whether to resend a poll because the server requires ``{ status result }``."""
        if self._check_status_with_selection or not _polling.needs_selection_set(error.message):
            return False
        logger.info("The server requires a selection set on checkStatus; sending { status result }")
        self._check_status_with_selection = True
        return True

    def _poll_status(
        self,
        request_id: str,
        timeout: TimeoutTypes,
        remaining: float | None,
        *,
        access_token: str | SecretStr | None,
        project_id: str | None,
    ) -> StatusReport:
        try:
            try:
                call = self._status_call(request_id, timeout, remaining)
                data = self._send(call, access_token=access_token, project_id=project_id)
            except LamaticError as error:
                if not self._switch_to_selection_set(error):
                    raise
                call = self._status_call(request_id, timeout, remaining)
                data = self._send(call, access_token=access_token, project_id=project_id)
        except LamaticError as error:
            error.request_id = error.request_id or request_id
            raise
        return _polling.parse_status_report(
            data, request_id=request_id, secrets=self._secrets(call)
        )

    async def _apoll_status(
        self,
        request_id: str,
        timeout: TimeoutTypes,
        remaining: float | None,
        *,
        access_token: str | SecretStr | None,
        project_id: str | None,
    ) -> StatusReport:
        try:
            try:
                call = self._status_call(request_id, timeout, remaining)
                data = await self._asend(call, access_token=access_token, project_id=project_id)
            except LamaticError as error:
                if not self._switch_to_selection_set(error):
                    raise
                call = self._status_call(request_id, timeout, remaining)
                data = await self._asend(call, access_token=access_token, project_id=project_id)
        except LamaticError as error:
            error.request_id = error.request_id or request_id
            raise
        return _polling.parse_status_report(
            data, request_id=request_id, secrets=self._secrets(call)
        )

    def _status_response(
        self,
        request_id: str,
        report: StatusReport,
        *,
        flow_id: str | None = None,
        agent_id: str | None = None,
    ) -> LamaticResponse:
        if report.failed:
            raise _polling.execution_failure(
                report,
                request_id=request_id,
                flow_id=flow_id,
                agent_id=agent_id,
                secrets=self._secrets(),
            )
        return LamaticResponse(
            status=report.status,
            result=report.output,
            request_id=request_id,
            status_code=200,
            metadata=report.metadata,
        )

    def _wait_for_status(
        self,
        request_id: str,
        *,
        interval: float,
        deadline: float | None,
        on_poll: PollCallback | None = None,
        first_poll_after: float = 0.0,
        flow_id: str | None = None,
        agent_id: str | None = None,
        timeout: TimeoutTypes = None,
        access_token: str | SecretStr | None = None,
        project_id: str | None = None,
    ) -> LamaticResponse:
        """Poll until the run finishes, for ``check_status(wait=True)`` and async flows."""
        schedule = _polling.PollSchedule(
            request_id=request_id,
            interval=interval,
            deadline=deadline,
            first_poll_after=first_poll_after,
            flow_id=flow_id,
            agent_id=agent_id,
        )

        def poll_once(remaining: float | None) -> StatusReport:
            return self._poll_status(
                request_id, timeout, remaining, access_token=access_token, project_id=project_id
            )

        report = _polling.run_poll_loop(poll_once, schedule, on_poll)
        return self._status_response(request_id, report, flow_id=flow_id, agent_id=agent_id)

    async def _await_status(
        self,
        request_id: str,
        *,
        interval: float,
        deadline: float | None,
        on_poll: PollCallback | None = None,
        first_poll_after: float = 0.0,
        flow_id: str | None = None,
        agent_id: str | None = None,
        timeout: TimeoutTypes = None,
        access_token: str | SecretStr | None = None,
        project_id: str | None = None,
    ) -> LamaticResponse:
        """Poll until the run finishes without blocking the event loop."""
        schedule = _polling.PollSchedule(
            request_id=request_id,
            interval=interval,
            deadline=deadline,
            first_poll_after=first_poll_after,
            flow_id=flow_id,
            agent_id=agent_id,
        )

        async def poll_once(remaining: float | None) -> StatusReport:
            return await self._apoll_status(
                request_id, timeout, remaining, access_token=access_token, project_id=project_id
            )

        report = await _polling.arun_poll_loop(poll_once, schedule, on_poll)
        return self._status_response(request_id, report, flow_id=flow_id, agent_id=agent_id)

    # --- Streaming --------------------------------------------------------------------------

    def stream_flow(
        self,
        flow_id: str,
        payload: Mapping[str, Any] | None = None,
        *,
        fallback_to_execute: bool = False,
        timeout: TimeoutTypes = None,
        access_token: str | SecretStr | None = None,
        project_id: str | None = None,
    ) -> FlowEventStream:
        """Run a flow through the ``executeWorkflowWithStream`` subscription and yield its events.

        The events are `TextDelta` (a piece of generated text), `NodeCompleted` (node id,
        output and metadata such as token counts) and, last, one `FlowCompleted` with the
        flow's output and the text rebuilt from the deltas. Errors are raised, not yielded.

        The request is sent when the first event is read. Retries (under ``max_retries``)
        happen only before the stream starts; once it has started, the flow is running and
        nothing is sent again. Use the result as a context manager, or call ``close()``, to
        close the response early; breaking out of a ``for`` loop closes it too.

        Example:
            .. code-block:: python

                with client.stream_flow("support-answer", {"question": q}) as events:
                    for event in events:
                        if isinstance(event, TextDelta):
                            print(event.text, end="", flush=True)

        Args:
            flow_id: the flow's id from Lamatic Studio.
            payload: the inputs of the flow's API Request trigger; ``None`` sends ``{}``.
            fallback_to_execute: when the server cannot stream (it returns HTTP 406 or a
                GraphQL error about the subscription before running anything), run the flow
                with ``executeWorkflow`` and yield one `FlowCompleted` whose metadata has
                ``streamed: False``.
            timeout: overrides the client's timeout; its read timeout applies to the wait
                for each piece of the stream.
            access_token: sends this access token instead of the client's credential.
            project_id: sends this project id instead of the client's.

        Raises:
            LamaticResponseError: the stream ended before the flow finished, or could not be
                decoded. The flow may have run.
            LamaticExecutionError: the stream carried an error frame.
            LamaticError: another subclass, for an error returned before the stream began,
                classified like any other response.
            TypeError: the payload is not a mapping or cannot be encoded as JSON; raised by
                this call, before any request.
        """
        call, fallback = self._stream_calls(flow_id, payload, timeout, fallback_to_execute)
        return FlowEventStream(
            _stream_client.iter_flow_events(
                self, call, fallback=fallback, access_token=access_token, project_id=project_id
            )
        )

    def astream_flow(
        self,
        flow_id: str,
        payload: Mapping[str, Any] | None = None,
        *,
        fallback_to_execute: bool = False,
        timeout: TimeoutTypes = None,
        access_token: str | SecretStr | None = None,
        project_id: str | None = None,
    ) -> AsyncFlowEventStream:
        """Run a flow through the streaming subscription, for ``async for``; see ``stream_flow``.

        Use ``async with client.astream_flow(...) as events`` or ``await events.aclose()`` to
        close the response early. Cancelling the task that iterates closes it too.
        """
        call, fallback = self._stream_calls(flow_id, payload, timeout, fallback_to_execute)
        return AsyncFlowEventStream(
            _stream_client.aiter_flow_events(
                self, call, fallback=fallback, access_token=access_token, project_id=project_id
            )
        )

    def _stream_calls(
        self, flow_id: object, payload: object, timeout: TimeoutTypes, fallback_to_execute: bool
    ) -> tuple[_Call, _Call | None]:
        checked_id = _check_id(flow_id, "flow_id")
        variables = {
            "workflowId": checked_id,
            "payload": _check_payload(payload, f"flow {checked_id!r}"),
        }
        call = _Call(
            "executeWorkflowWithStream",
            _queries.EXECUTE_WORKFLOW_WITH_STREAM,
            variables,
            timeout=self._call_timeout(timeout),
            idempotent=False,
            flow_id=checked_id,
        )
        fallback = (
            self._execute_call("executeWorkflow", checked_id, payload, timeout, agent=False)
            if fallback_to_execute
            else None
        )
        return call, fallback

    # --- Feedback ---------------------------------------------------------------------------

    def submit_feedback(
        self,
        request_id: str,
        rating: int,
        comment: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        *,
        timeout: TimeoutTypes = None,
        access_token: str | SecretStr | None = None,
        project_id: str | None = None,
    ) -> LamaticResponse:
        """Attach a rating, and optionally a comment and metadata, to a finished execution.

        Returns:
            A response with status ``"success"``, the server's ``message``, and its ``data``
            as ``result``.

        Args:
            request_id: the execution's request id (``LamaticResponse.request_id``).
            rating: the rating, an int (GraphQL ``Int``: 32-bit signed).
            comment: free text stored with the rating.
            metadata: a JSON object stored with the rating.
            timeout: overrides the client's timeout for this call.
            access_token: sends this access token instead of the client's credential.
            project_id: sends this project id instead of the client's.

        Raises:
            LamaticNotFoundError: the server returned ``success: false`` because it does not
                know the request id.
            LamaticBadRequestError: the server returned ``success: false`` for another
                reason.
            LamaticError: another subclass for every other failure; a feedback call is not
                retried after it may have been stored.
            TypeError: a rating that is not an int, or a comment or metadata of the wrong
                type; raised before any request.
            ValueError: an empty request id, or a rating outside the 32-bit range.
        """
        call = self._feedback_call(request_id, rating, comment, metadata, timeout)
        try:
            data = self._send(call, access_token=access_token, project_id=project_id)
        except LamaticError as error:
            error.request_id = error.request_id or request_id
            raise
        return self._feedback_response(call, request_id, data)

    async def asubmit_feedback(
        self,
        request_id: str,
        rating: int,
        comment: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        *,
        timeout: TimeoutTypes = None,
        access_token: str | SecretStr | None = None,
        project_id: str | None = None,
    ) -> LamaticResponse:
        """Attach feedback without blocking the event loop; see ``submit_feedback``."""
        call = self._feedback_call(request_id, rating, comment, metadata, timeout)
        try:
            data = await self._asend(call, access_token=access_token, project_id=project_id)
        except LamaticError as error:
            error.request_id = error.request_id or request_id
            raise
        return self._feedback_response(call, request_id, data)

    def _feedback_call(
        self,
        request_id: object,
        rating: object,
        comment: object,
        metadata: object,
        timeout: TimeoutTypes,
    ) -> _Call:
        checked_id = _check_id(request_id, "request_id").strip()
        if isinstance(rating, bool) or not isinstance(rating, int):
            raise TypeError(f"rating must be an int, got {type(rating).__name__} {rating!r}")
        if not _GRAPHQL_INT_MIN <= rating <= _GRAPHQL_INT_MAX:
            raise ValueError(
                f"rating must fit a GraphQL Int ({_GRAPHQL_INT_MIN} to {_GRAPHQL_INT_MAX}), "
                f"got {rating}"
            )
        if comment is not None and not isinstance(comment, str):
            raise TypeError(f"comment must be a str or None, got {type(comment).__name__}")
        if metadata is not None and not isinstance(metadata, Mapping):
            raise TypeError(
                f"metadata must be a mapping (a JSON object) or None, got {type(metadata).__name__}"
            )
        variables: dict[str, Any] = {
            "requestId": checked_id,
            "rating": rating,
            "comment": comment,
            "metadata": dict(metadata) if metadata is not None else None,
        }
        return _Call(
            "submitFeedback",
            _queries.SUBMIT_FEEDBACK,
            variables,
            timeout=self._call_timeout(timeout),
            idempotent=False,
        )

    def _feedback_response(self, call: _Call, request_id: str, data: Any) -> LamaticResponse:
        common: dict[str, Any] = {
            "status_code": 200,
            "operation": call.operation,
            "request_id": request_id,
        }
        if not isinstance(data, Mapping) or not isinstance(data.get("success"), bool):
            raise LamaticResponseError(
                "Lamatic submitFeedback returned no boolean 'success' field", **common
            )
        message = data.get("message")
        if data["success"]:
            return LamaticResponse(
                status="success",
                result=data.get("data"),
                request_id=request_id,
                message=message if isinstance(message, str) else None,
            )
        reason = next(
            (
                text
                for text in (data.get("error"), message)
                if isinstance(text, str) and text.strip()
            ),
            "no error message was returned",
        )
        reason = redact(reason, self._secrets(call))
        error_class = (
            LamaticNotFoundError
            if _UNKNOWN_REQUEST_MESSAGE.search(reason)
            else LamaticBadRequestError
        )
        raise error_class(
            f"Lamatic submitFeedback for request {request_id!r} was rejected: {reason}", **common
        )

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
            reason = redact(_failure_text(data), self._secrets(call))
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

    def _endpoint_url(self) -> httpx.URL:
        parsed = self._parsed_endpoint
        if parsed is None or parsed[0] != self.endpoint:
            parsed = self._parsed_endpoint = (self.endpoint, httpx.URL(self.endpoint))
        return parsed[1]

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
            self._endpoint_url(),
            content=call.body,
            headers=self._headers(accept=accept, access_token=access_token, project_id=project_id),
            timeout=call.timeout,
        )

    def _direct_transport(
        self, client: httpx.AsyncClient, url: httpx.URL
    ) -> AsyncHTTP11Transport | None:
        """Return the transport to send to directly, skipping the AsyncClient's own layers.

        Only the client's own AsyncClient qualifies, and only while it would route ``url`` to
        its AsyncHTTP11Transport: not through a proxy from the environment, and not while a
        mock (respx, pytest-httpx, vcrpy) has replaced the route or the stock transport.
        That AsyncClient has no auth, event hooks or redirects to apply, and the direct path
        sends the same headers. It skips httpx's request and response objects and its cookie
        jar, which cost more than the exchange itself on loopback (docs/benchmarks.md).
        """
        transport = self._own_async_transports.get(asyncio.get_running_loop())
        if transport is None or client is self._external_async_client or is_mocking_active():
            return None
        route: Callable[[httpx.URL], object] | None = getattr(client, "_transport_for_url", None)
        if route is None:
            return None
        return transport if route(url) is transport else None

    def _direct_headers(
        self,
        client: httpx.AsyncClient,
        *,
        accept: str,
        access_token: str | SecretStr | None,
        project_id: str | None,
    ) -> list[tuple[bytes, bytes]]:
        """Return the headers ``client.build_request`` would send, except Host and Content-Length.

        The AsyncClient's defaults (Accept-Encoding, Connection) come first, and ours replace
        any default of the same name. Every value of ours is checked to be printable ASCII.
        """
        headers = self._headers(accept=accept, access_token=access_token, project_id=project_id)
        ours = {name.lower().encode("ascii") for name in headers}
        raw = [(name, value) for name, value in client.headers.raw if name.lower() not in ours]
        raw.extend((name.encode("ascii"), value.encode("ascii")) for name, value in headers.items())
        return raw

    def _transport_error(
        self, call: _Call, error: httpx.HTTPError, attempts: int
    ) -> tuple[LamaticError, bool]:
        """Map an httpx failure to a typed error, and return whether the request was sent."""
        sent = not isinstance(error, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout))
        what = describe_target(call.operation, call.flow_id, call.agent_id)
        detail = redact(
            _without_quoted_bytes(str(error)) or type(error).__name__, self._secrets(call)
        )
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

    def _closed_client_error(self, call: _Call, attempts: int) -> LamaticConnectionError:
        subject = describe_target(call.operation, call.flow_id, call.agent_id)
        return LamaticConnectionError(
            f"{subject} was stopped because the client was closed with aclose() while the call "
            "was in progress",
            hint="Close the client only after its calls have finished, or cancel them first",
            operation=call.operation,
            flow_id=call.flow_id,
            agent_id=call.agent_id,
            attempts=attempts,
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
        if call.deadline is not None and time.monotonic() + wait >= call.deadline:
            logger.info(
                "Not retrying Lamatic %s after %s: the retry in %.2f s would start after the "
                "deadline",
                call.operation,
                type(error).__name__,
                wait,
            )
            return None
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
        return self._classify_parts(call, response.status_code, response.headers, body, attempts)

    def _classify_parts(
        self,
        call: _Call,
        status_code: int,
        headers: Mapping[str, str],
        body: bytes,
        attempts: int,
    ) -> Any:
        try:
            return classify_response(
                status_code,
                body,
                operation=call.operation,
                headers=headers,
                flow_id=call.flow_id,
                agent_id=call.agent_id,
                secrets=self._secrets(call),
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
        if access_token is not None:
            call.secret = _plain_secret(access_token)
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
                # Never follow redirects, even with an injected client that would: the
                # credential headers would be sent to the redirect target.
                response = client.send(request, follow_redirects=False)
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
        if access_token is not None:
            call.secret = _plain_secret(access_token)
        attempt = 0
        refreshed = False
        while True:
            attempt += 1
            started = time.monotonic()
            try:
                async with self._async_slot():
                    status_code, headers, body = await self._asend_once(
                        client, call, access_token=access_token, project_id=project_id
                    )
            except (httpx.HTTPError, RuntimeError) as failure:
                if client.is_closed:
                    # aclose() ran while this call was in flight or waiting to retry; httpx
                    # reports that as a dropped connection or a RuntimeError.
                    raise self._closed_client_error(call, attempt) from None
                if isinstance(failure, RuntimeError):
                    raise
                error, sent = self._transport_error(call, failure, attempt)
                wait = self._after_failure(call, error, attempt, sent)
                if wait is None:
                    raise error from None
                await asyncio.sleep(wait)
                continue
            logger.debug(
                "Lamatic %s for %s: HTTP %d in %.3f s",
                call.operation,
                call.target,
                status_code,
                time.monotonic() - started,
            )

            try:
                return self._classify_parts(call, status_code, headers, body, attempt)
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

    async def _asend_once(
        self,
        client: httpx.AsyncClient,
        call: _Call,
        *,
        access_token: str | SecretStr | None,
        project_id: str | None,
    ) -> tuple[int, Mapping[str, str], bytes]:
        """Send one attempt of ``call`` and return the status code, headers and body."""
        url = self._endpoint_url()
        transport = self._direct_transport(client, url)
        if transport is not None:
            raw = await transport.request_bytes(
                "POST",
                url,
                self._direct_headers(
                    client,
                    accept="application/json",
                    access_token=access_token,
                    project_id=project_id,
                ),
                call.body,
                call.timeout,
            )
            return raw.status_code, httpx.Headers(raw.headers), raw.content

        request = self._build_request(
            client,
            call,
            accept="application/json",
            access_token=access_token,
            project_id=project_id,
        )
        try:
            response = await client.send(request, follow_redirects=False)
            try:
                body = await response.aread()
            finally:
                await response.aclose()
        except asyncio.CancelledError:
            await _stream_client.reclaim_cancelled_connections(client, request)
            raise
        return response.status_code, response.headers, body

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


def _environment_has_proxy() -> bool:
    """Return whether httpx would read an HTTP proxy from the environment or the system.

    httpx reads ``urllib.request.getproxies()`` for these three schemes.
    """
    proxies = urllib.request.getproxies()
    return any(proxies.get(scheme) for scheme in ("http", "https", "all"))


def _cookie_jar_that_stores_nothing() -> http.cookiejar.CookieJar:
    """Return a cookie jar whose policy rejects every cookie.

    The clients keep no state between calls: a cookie set in response to one caller's
    per-call access token would otherwise be sent with the next caller's request.
    """
    return http.cookiejar.CookieJar(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))


def _plain_secret(value: str | SecretStr) -> str:
    return value.get_secret_value() if isinstance(value, SecretStr) else value


def _check_provided_token(token: object) -> str:
    if not isinstance(token, str) or not token.strip():
        raise LamaticAuthenticationError(
            f"access_token_provider returned {type(token).__name__} instead of a non-empty token"
        )
    problem = header_value_problem(token.strip(), allow_spaces=False)
    if problem is not None:
        raise LamaticAuthenticationError(
            f"access_token_provider returned a token with {problem}, which an HTTP header "
            "cannot carry"
        )
    return token.strip()


def _check_header_value(value: str, source: str, *, allow_spaces: bool) -> None:
    """Raise ValueError naming ``source`` (never the value) if a header cannot carry ``value``."""
    problem = header_value_problem(value, allow_spaces=allow_spaces)
    if problem is not None:
        raise ValueError(
            f"{source} contains {problem}, which an HTTP header cannot carry; check for a "
            "stray line break or a copy-and-paste error"
        )


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
    transport = getattr(client, "_transport", None)
    if isinstance(transport, AsyncHTTP11Transport):
        transport.close_sockets_of_dead_loop()
        # Requests made while a mock was active went through a stock httpx transport.
        transport = transport.stock_transport
    pool = getattr(transport, "_pool", None)
    for connection in list(getattr(pool, "connections", ()) or ()):
        inner = getattr(connection, "_connection", None)
        stream = getattr(inner, "_network_stream", None)
        get_extra_info = getattr(stream, "get_extra_info", None)
        if get_extra_info is None:
            continue
        try:
            sock = get_extra_info("socket")
            # asyncio hands out a TransportSocket wrapper, whose close() was removed in Python
            # 3.9, so the socket it wraps is closed instead.
            sock = getattr(sock, "_sock", sock)
            if sock is not None:
                sock.close()
        except Exception:
            logger.debug("Could not close a socket left by a closed event loop", exc_info=True)
