"""`LamaticTestServer`: a local HTTP stand-in for a Lamatic project's GraphQL endpoint."""

from __future__ import annotations

import html
import json
import logging
import secrets
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal

from langchain_lamatic.testing._engine import (
    CompletedShape,
    Engine,
    FlowHandler,
    PreparedStream,
    RequestScope,
    ResponseType,
    RunningStatus,
)
from langchain_lamatic.testing._faults import (
    DelayFault,
    DropConnectionFault,
    EmptyBodyFault,
    Fault,
    GraphQLErrorFault,
    HtmlFault,
    HttpStatusFault,
    InvalidJsonFault,
    NullDataFault,
    ResetMidBodyFault,
    StallFault,
    TruncatedJsonFault,
    format_retry_after,
)
from langchain_lamatic.testing._graphql import (
    GraphQLRequestError,
    OperationSummary,
    execute_request,
    prepare_request,
    summarize_request,
)
from langchain_lamatic.testing._http import (
    HTML_TYPE,
    JSON_TYPE,
    BodyError,
    RequestHandler,
    Response,
    TrackingHTTPServer,
    error_response,
    json_response,
    read_body,
    write_response,
    write_stream,
)
from langchain_lamatic.testing._jwt import (
    ExpiredTokenError,
    ImmatureTokenError,
    InvalidTokenError,
    decode_hs256,
    encode_hs256,
)
from langchain_lamatic.testing._records import Feedback, Headers, RecordedRequest
from langchain_lamatic.testing._streaming import StreamOptions

__all__ = ["LamaticTestServer"]

logger = logging.getLogger(__name__)

_OPERATIONS = frozenset(
    {
        "executeWorkflow",
        "executeAgent",
        "checkStatus",
        "submitFeedback",
        "executeWorkflowWithStream",
    }
)
_GRAPHQL_PATHS = frozenset({"/graphql", "/graphql/"})
# serve_forever notices a shutdown request only between polls, so this bounds stop()'s wait;
# an idle poll costs one select() call.
_POLL_INTERVAL = 0.01
_JOIN_TIMEOUT = 5.0
_INVALID_JSON_BODY = b'{"data": {"executeWorkflow": {status: success, result: }}'

# The 404 page an Express application sends for an unknown path, which is what a client that
# forgets the `/graphql` suffix gets back.
_NOT_FOUND_PAGE = (
    '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>Error</title>\n'
    "</head>\n<body>\n<pre>Cannot {method} {path}</pre>\n</body>\n</html>\n"
)


@dataclass
class _Injection:
    fault: Fault
    remaining: int | None
    operation: str | None
    target_id: str | None

    def matches(self, summary: OperationSummary) -> bool:
        if self.operation is not None and self.operation != summary.root_field:
            return False
        return self.target_id is None or self.target_id == summary.target_id


class LamaticTestServer:
    """A local HTTP server that implements Lamatic's execution API, for tests without network.

    The server listens on `127.0.0.1` on an ephemeral port and serves GraphQL requests on
    `/graphql` with flows and agents you register, each backed by a Python handler. It checks
    credentials like the real service: an API key or an HS256 access token, plus
    `x-project-id`. It validates payloads against the flow's trigger schema, runs async flows in
    the background and streams Server-Sent Events for `executeWorkflowWithStream`. It records
    every request and can inject faults into the next responses. Start it with `with` or
    `start()`; starting and stopping take milliseconds.

    Example:
        >>> import httpx
        >>> from langchain_lamatic.testing import LamaticTestServer
        >>> with LamaticTestServer() as server:
        ...     server.add_flow("echo", lambda payload: {"echo": payload.get("text", "")})
        ...     response = httpx.post(
        ...         server.endpoint,
        ...         json={
        ...             "query": "query($id: String!, $p: JSON) "
        ...             "{ executeWorkflow(workflowId: $id, payload: $p) { status result } }",
        ...             "variables": {"id": "echo", "p": {"text": "hi"}},
        ...         },
        ...         headers={
        ...             "Authorization": f"Bearer {server.api_key}",
        ...             "x-project-id": server.project_id,
        ...         },
        ...     )
        ...     response.json()["data"]["executeWorkflow"]["result"]
        {'echo': 'hi'}

    Args:
        project_id: The project id that `x-project-id` and the token's `project_id` claim must
            match.
        api_key: The accepted API key; a fresh `lt-` key when None.
        secret_key: The secret that signs access tokens; a fresh random one when None.
        host: The address to bind; keep the loopback default.
        port: The port to bind; 0 picks a free one at every start.
        not_found_status: HTTP status for "Flow not found", "Agent not found" and unknown
            request ids: 200 (with the error in `errors`, as the real service responds) or 404.
        stream_options: Stream settings for flows registered without their own.
    """

    def __init__(
        self,
        project_id: str = "test-project",
        api_key: str | None = None,
        secret_key: str | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        not_found_status: Literal[200, 404] = 200,
        stream_options: StreamOptions | None = None,
    ) -> None:
        # LamaticClient strips the project id and credential it sends, so padded values here
        # could never match a request.
        if not isinstance(project_id, str) or not project_id or project_id != project_id.strip():
            raise ValueError(
                f"project_id must be a non-empty string without surrounding whitespace, "
                f"got {project_id!r}"
            )
        for name, value in (("api_key", api_key), ("secret_key", secret_key)):
            if value is not None and (
                not isinstance(value, str) or not value or value != value.strip()
            ):
                raise ValueError(
                    f"{name} must be a non-empty string without surrounding whitespace, or None"
                )
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise ValueError(
                f"port must be an int from 0 to 65535 (0 picks a free one), got {port!r}"
            )
        if not_found_status not in (200, 404):
            raise ValueError(f"not_found_status must be 200 or 404, got {not_found_status!r}")
        if stream_options is not None and not isinstance(stream_options, StreamOptions):
            raise TypeError("stream_options must be a StreamOptions or None")

        self._project_id = project_id
        self._api_key = api_key if api_key is not None else f"lt-{secrets.token_urlsafe(24)}"
        self._secret_key = secret_key if secret_key is not None else secrets.token_urlsafe(32)
        self._host = host
        self._requested_port = port
        self._stop_event = threading.Event()
        self._engine = Engine(
            stop_event=self._stop_event,
            not_found_status=not_found_status,
            stream_options=stream_options or StreamOptions(),
        )
        self._lifecycle_lock = threading.Lock()
        self._state_lock = threading.Lock()
        self._httpd: TrackingHTTPServer | None = None
        self._serve_thread: threading.Thread | None = None
        self._port: int | None = None
        self._requests: list[RecordedRequest] = []
        self._injections: list[_Injection] = []
        self._in_flight = 0
        self._max_in_flight = 0

    # Lifecycle

    def start(self) -> LamaticTestServer:
        """Bind the port and serve in a background thread; does nothing when already running.

        Returns:
            The server itself, so `server = LamaticTestServer().start()` works.
        """
        with self._lifecycle_lock:
            if self._httpd is not None:
                return self
            self._stop_event.clear()
            httpd = TrackingHTTPServer((self._host, self._requested_port), self)
            self._port = int(httpd.server_address[1])
            thread = threading.Thread(
                target=httpd.serve_forever,
                kwargs={"poll_interval": _POLL_INTERVAL},
                name=f"lamatic-test-server-{self._port}",
                daemon=True,
            )
            thread.start()
            self._httpd = httpd
            self._serve_thread = thread
        logger.info("LamaticTestServer listening on %s", self.endpoint)
        return self

    def stop(self) -> None:
        """Stop serving, close open connections and wait for the server's threads.

        Delays, stalls, frame delays and async run times are interrupted. A handler still
        running after a few seconds is left behind and logged. Calling `stop` on a stopped
        server does nothing; `start` binds again afterwards (a new port when `port` was 0).
        """
        with self._lifecycle_lock:
            httpd, thread = self._httpd, self._serve_thread
            if httpd is None or thread is None:
                return
            self._stop_event.set()
            httpd.shutdown()
            thread.join()
            connection_threads = httpd.close_connections()
            deadline = time.monotonic() + _JOIN_TIMEOUT
            for connection_thread in connection_threads:
                connection_thread.join(max(0.0, deadline - time.monotonic()))
            stuck = [t for t in connection_threads if t.is_alive()]
            stuck += self._engine.join_async_runs(max(0.0, deadline - time.monotonic()))
            httpd.server_close()
            self._httpd = None
            self._serve_thread = None
        if stuck:
            logger.warning(
                "LamaticTestServer stopped with %d handler thread(s) still running", len(stuck)
            )
        logger.info("LamaticTestServer on port %s stopped", self._port)

    def __enter__(self) -> LamaticTestServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = self.endpoint if self.running else "stopped"
        return (
            f"LamaticTestServer(project_id={self._project_id!r}, endpoint={where!r}, "
            f"flows={len(self._engine.flow_ids())}, agents={len(self._engine.agent_ids())})"
        )

    # Identity

    @property
    def running(self) -> bool:
        """Whether the server is serving."""
        return self._httpd is not None

    @property
    def port(self) -> int:
        """The bound port.

        Raises:
            RuntimeError: The server has never been started.
        """
        if self._port is None:
            raise RuntimeError(
                "LamaticTestServer is not running; call start() or use it in a with block"
            )
        return self._port

    @property
    def base_url(self) -> str:
        """`http://127.0.0.1:<port>`, without the `/graphql` path.

        Raises:
            RuntimeError: The server is not running.
        """
        if not self.running:
            raise RuntimeError(
                "LamaticTestServer is not running; call start() or use it in a with block"
            )
        return f"http://{self._host}:{self.port}"

    @property
    def endpoint(self) -> str:
        """The GraphQL endpoint, `http://127.0.0.1:<port>/graphql`.

        Raises:
            RuntimeError: The server is not running.
        """
        return f"{self.base_url}/graphql"

    @property
    def project_id(self) -> str:
        """The project id clients must send in `x-project-id`."""
        return self._project_id

    @property
    def api_key(self) -> str:
        """The accepted API key (a test value)."""
        return self._api_key

    @property
    def secret_key(self) -> str:
        """The secret key that signs access tokens (a test value)."""
        return self._secret_key

    def create_access_token(
        self, expires_in: float | None = None, project_id: str | None = None
    ) -> str:
        """Mint an HS256 access token signed with this server's secret key.

        Args:
            expires_in: Seconds until `exp`; negative gives an expired token, None omits `exp`.
            project_id: The `project_id` claim; this server's project when None.

        Returns:
            The compact JWT to send as `X-Lamatic-Signature`.
        """
        now = time.time()
        claims: dict[str, Any] = {
            "project_id": self._project_id if project_id is None else project_id,
            "iat": int(now),
        }
        if expires_in is not None:
            claims["exp"] = now + expires_in
        return encode_hs256(claims, self._secret_key)

    # Flows and agents

    def add_flow(
        self,
        flow_id: str,
        handler: FlowHandler,
        *,
        schema: str | Mapping[str, Any] | None = "",
        response_type: ResponseType = "realtime",
        run_time: float = 0.0,
        completed_shape: CompletedShape = "documented",
        running_status: RunningStatus = "in-progress",
        delay: float = 0.0,
        stream: StreamOptions | None = None,
        name: str | None = None,
        description: str | None = None,
    ) -> None:
        """Register a flow, replacing any flow with the same id.

        Args:
            flow_id: The id clients pass as `workflowId`.
            handler: Called with a copy of the payload; returns the result object. Raise
                `FlowExecutionFailed` to make the execution fail like a failed node. Any other
                exception makes the server return HTTP 500 and is kept in `handler_errors`.
            schema: The trigger schema: Lamatic's `advance_schema` text or mapping, or a JSON
                Schema object. Empty or None accepts any payload object.
            response_type: `"realtime"` returns the result; `"async"` returns a request
                id at once and runs the handler in the background.
            run_time: For async flows, the minimum seconds between acceptance and completion.
            completed_shape: The `checkStatus` response once done: `"documented"` (`status`,
                `input`, `output`, `nodes`, `statusCode`, `timeTakenInSeconds`) or
                `"data_output"` (`status`, `data.output.result`).
            running_status: The status reported while an async run is going on.
            delay: Seconds to wait before every execution of this flow, after validation.
            stream: Streaming settings for `executeWorkflowWithStream`; the server's
                `stream_options` when None.
            name: A display name, for your own bookkeeping.
            description: A description, for your own bookkeeping.

        Raises:
            ValueError: An empty id, an unknown option value, a negative time or an invalid
                schema (the message names the schema entry).
            TypeError: `handler` is not callable or `stream` is not a `StreamOptions`.
        """
        self._engine.register(
            flow_id,
            handler,
            kind="flow",
            schema=schema,
            response_type=response_type,
            run_time=run_time,
            completed_shape=completed_shape,
            running_status=running_status,
            delay=delay,
            stream=stream,
            name=name,
            description=description,
        )

    def add_agent(
        self,
        agent_id: str,
        handler: FlowHandler,
        *,
        schema: str | Mapping[str, Any] | None = "",
        delay: float = 0.0,
    ) -> None:
        """Register an agent for `executeAgent`; it behaves like a realtime flow.

        Raises:
            ValueError: An empty id, a negative delay or an invalid schema.
            TypeError: `handler` is not callable.
        """
        self._engine.register(
            agent_id,
            handler,
            kind="agent",
            schema=schema,
            response_type="realtime",
            run_time=0.0,
            completed_shape="documented",
            running_status="in-progress",
            delay=delay,
            stream=None,
            name=None,
            description=None,
        )

    @property
    def flow_ids(self) -> tuple[str, ...]:
        """Ids of the registered flows."""
        return self._engine.flow_ids()

    @property
    def agent_ids(self) -> tuple[str, ...]:
        """Ids of the registered agents."""
        return self._engine.agent_ids()

    # Faults

    def inject(
        self,
        fault: Fault,
        *,
        times: int | None = 1,
        operation: str | None = None,
        target_id: str | None = None,
    ) -> None:
        """Make the next matching responses misbehave.

        Injected faults are checked in the order they were added; the first one that matches a
        request is used and counts down. Faults apply before authentication, like a proxy.

        Args:
            fault: What to do, built with a `Fault` constructor such as `Fault.status(503)`.
            times: How many matching requests get the fault; None means every one until
                `clear_faults()`.
            operation: Only requests whose first root field is this operation, such as
                `"executeWorkflow"` or `"checkStatus"`; any request when None.
            target_id: Only requests naming this flow id, agent id or request id; any when None.

        Raises:
            TypeError: `fault` is not built by a `Fault` constructor.
            ValueError: `times` is below 1 or `operation` is not a Lamatic operation.
        """
        if not isinstance(fault, Fault) or type(fault) is Fault:
            raise TypeError(
                "fault must be built with a Fault constructor, such as Fault.status(503)"
            )
        if times is not None and (
            isinstance(times, bool) or not isinstance(times, int) or times < 1
        ):
            raise ValueError(f"times must be an int >= 1 or None, got {times!r}")
        if operation is not None and operation not in _OPERATIONS:
            known = ", ".join(sorted(_OPERATIONS))
            raise ValueError(f"operation must be one of {known} or None, got {operation!r}")
        with self._state_lock:
            self._injections.append(_Injection(fault, times, operation, target_id))

    def clear_faults(self) -> None:
        """Remove every injected fault that has not been used up."""
        with self._state_lock:
            self._injections.clear()

    @property
    def pending_faults(self) -> int:
        """Number of injected faults not used up yet."""
        with self._state_lock:
            return len(self._injections)

    def _take_fault(self, summary: OperationSummary) -> Fault | None:
        with self._state_lock:
            for index, injection in enumerate(self._injections):
                if not injection.matches(summary):
                    continue
                if injection.remaining is not None:
                    injection.remaining -= 1
                    if injection.remaining == 0:
                        del self._injections[index]
                return injection.fault
        return None

    # Records and counters

    @property
    def requests(self) -> list[RecordedRequest]:
        """A copy of the requests received, oldest first, including rejected ones."""
        with self._state_lock:
            return list(self._requests)

    def clear_requests(self) -> None:
        """Forget the recorded requests."""
        with self._state_lock:
            self._requests.clear()

    def execution_count(self, flow_id: str) -> int:
        """Number of executions started for a flow or agent id (handler runs, any outcome)."""
        return self._engine.execution_count(flow_id)

    def reset_counters(self) -> None:
        """Set every execution count to zero and `max_in_flight` to the current `in_flight`."""
        self._engine.reset_counts()
        with self._state_lock:
            self._max_in_flight = self._in_flight

    @property
    def in_flight(self) -> int:
        """Number of requests being handled right now."""
        with self._state_lock:
            return self._in_flight

    @property
    def max_in_flight(self) -> int:
        """The highest `in_flight` seen since the server was created or `reset_counters()` ran."""
        with self._state_lock:
            return self._max_in_flight

    @property
    def feedback(self) -> list[Feedback]:
        """A copy of the feedback received through `submitFeedback`, oldest first."""
        return self._engine.feedback

    @property
    def handler_errors(self) -> list[BaseException]:
        """Unexpected exceptions raised by flow handlers or stream text functions, oldest first."""
        return self._engine.handler_errors

    # Request handling, called on the connection's thread

    def _serve_request(self, handler: RequestHandler) -> None:
        with self._state_lock:
            self._in_flight += 1
            self._max_in_flight = max(self._max_in_flight, self._in_flight)
        try:
            self._handle_request(handler)
        except OSError as error:
            handler.close_connection = True
            logger.debug("Client connection failed while sending the response: %s", error)
        finally:
            with self._state_lock:
                self._in_flight -= 1

    def _handle_request(self, handler: RequestHandler) -> None:
        received_at = time.monotonic()
        try:
            body = read_body(handler)
        except BodyError as error:
            write_response(handler, error.response)
            return
        try:
            parsed: Any = json.loads(body) if body else None
        except (UnicodeDecodeError, json.JSONDecodeError):
            parsed = None
        summary = summarize_request(parsed)
        record = RecordedRequest(
            method=handler.command,
            path=handler.path,
            headers=Headers(handler.headers.items()),
            body=body,
            json=parsed,
            operation=summary.root_field,
            variables=summary.variables,
            target_id=summary.target_id,
            time=received_at,
        )
        with self._state_lock:
            self._requests.append(record)
        logger.debug(
            "Request %s %s operation=%s target=%s",
            record.method,
            record.path,
            record.operation,
            record.target_id,
        )

        fault = self._take_fault(summary)
        if fault is not None and not fault.runs_flow:
            self._answer_with_fault(handler, fault, summary)
            return
        if isinstance(fault, DelayFault) and self._engine.wait(fault.seconds):
            handler.close_connection = True
            return

        response = self._respond(record, parsed)
        if isinstance(response, PreparedStream):
            self._send_stream(handler, response, fault)
        else:
            self._send_with_fault(handler, response, fault)

    def _answer_with_fault(
        self, handler: RequestHandler, fault: Fault, summary: OperationSummary
    ) -> None:
        logger.debug("Injecting %s into %s", type(fault).__name__, summary.root_field)
        if isinstance(fault, HttpStatusFault):
            headers = list(fault.headers)
            retry_after = format_retry_after(fault.retry_after)
            if retry_after is not None:
                headers.append(("Retry-After", retry_after))
            if fault.body == "json":
                write_response(
                    handler, json_response(fault.status_code, fault.json_body(), tuple(headers))
                )
            else:
                write_response(handler, Response(fault.status_code, b"", None, tuple(headers)))
        elif isinstance(fault, HtmlFault):
            write_response(
                handler, Response(fault.status_code, fault.page().encode("utf-8"), HTML_TYPE)
            )
        elif isinstance(fault, InvalidJsonFault):
            write_response(handler, Response(fault.status_code, _INVALID_JSON_BODY, JSON_TYPE))
        elif isinstance(fault, EmptyBodyFault):
            write_response(handler, Response(fault.status_code, b"", JSON_TYPE))
        elif isinstance(fault, NullDataFault):
            write_response(handler, json_response(200, {"data": None}))
        elif isinstance(fault, GraphQLErrorFault):
            write_response(handler, json_response(fault.status_code, fault.json_body()))
        elif isinstance(fault, DropConnectionFault):
            handler.close_connection = True
        else:  # pragma: no cover - every fault class without runs_flow is handled above
            raise TypeError(f"unhandled fault {fault!r}")

    def _send_with_fault(
        self, handler: RequestHandler, response: Response, fault: Fault | None
    ) -> None:
        if isinstance(fault, TruncatedJsonFault):
            cut = response.body[: len(response.body) // 2]
            write_response(
                handler, Response(response.status, cut, response.content_type, response.headers)
            )
        elif isinstance(fault, StallFault):
            write_response(handler, response, stall=fault.seconds, wait=self._engine.wait)
        elif isinstance(fault, ResetMidBodyFault):
            write_response(handler, response, reset_after=len(response.body) // 2)
        else:
            write_response(handler, response)

    def _send_stream(
        self, handler: RequestHandler, stream: PreparedStream, fault: Fault | None
    ) -> None:
        events = stream.plan.events
        abort = stream.plan.abort
        if isinstance(fault, (TruncatedJsonFault, ResetMidBodyFault)):
            events = events[: len(events) // 2]
            abort = isinstance(fault, ResetMidBodyFault)
        write_stream(
            handler,
            events,
            abort=abort,
            frame_delay=stream.frame_delay,
            wait=self._engine.wait,
            stall=fault.seconds if isinstance(fault, StallFault) else 0.0,
        )

    # Routing, authentication and GraphQL

    def _respond(self, record: RecordedRequest, parsed: Any) -> Response | PreparedStream:
        path = record.path.split("?", 1)[0]
        if path not in _GRAPHQL_PATHS:
            page = _NOT_FOUND_PAGE.format(method=record.method, path=html.escape(path))
            return Response(404, page.encode("utf-8"), HTML_TYPE)
        if record.method != "POST":
            return error_response(
                405,
                f"{record.method} is not supported on /graphql; send a POST with a JSON body",
                "METHOD_NOT_ALLOWED",
                (("Allow", "POST"),),
            )

        rejection = self._authenticate(record.headers)
        if rejection is not None:
            return rejection

        content_type = record.headers.get("content-type", "")
        if content_type.split(";", 1)[0].strip().lower() != "application/json":
            return error_response(
                400,
                "POST body must be JSON with the header Content-Type: application/json",
                "BAD_REQUEST",
            )
        if parsed is None and record.body.strip() != b"null":
            return error_response(400, "POST body is not valid JSON", "BAD_REQUEST")

        try:
            prepared = prepare_request(parsed)
            wants_stream = prepared.operation_type == "subscription"
            if wants_stream and "text/event-stream" not in record.headers.get("accept", ""):
                return error_response(
                    400,
                    "Subscriptions are only served as Server-Sent Events; send the header "
                    "Accept: text/event-stream",
                    "BAD_REQUEST",
                )
            scope = RequestScope(self._engine)
            outcome = execute_request(prepared, scope)
        except GraphQLRequestError as error:
            return json_response(error.status, error.body)

        if scope.stream is not None and outcome.status == 200 and "errors" not in outcome.body:
            return scope.stream
        return json_response(outcome.status, outcome.body)

    def _authenticate(self, headers: Headers) -> Response | None:
        signature = headers.get("x-lamatic-signature")
        authorization = headers.get("authorization")
        if signature:
            # The SDKs send only the access token when both credentials are configured.
            try:
                claims = decode_hs256(signature.strip(), self._secret_key)
            except (ExpiredTokenError, ImmatureTokenError) as error:
                return error_response(
                    403,
                    f"Access token rejected: {error}; mint a new one with the project's secret key",
                    "FORBIDDEN",
                )
            except InvalidTokenError as error:
                return error_response(
                    401, f"Invalid access token: {error}", "UNAUTHENTICATED", _UNAUTHORIZED
                )
            if claims.get("project_id") != self._project_id:
                return error_response(
                    403,
                    "Access token was issued for another project (project_id claim mismatch)",
                    "FORBIDDEN",
                )
        elif authorization:
            scheme, _, credential = authorization.strip().partition(" ")
            if scheme.lower() != "bearer" or not credential.strip():
                return error_response(
                    401,
                    "Authorization header must be 'Bearer <API key>'",
                    "UNAUTHENTICATED",
                    _UNAUTHORIZED,
                )
            if not secrets.compare_digest(
                credential.strip().encode("utf-8"), self._api_key.encode("utf-8")
            ):
                return error_response(401, "Invalid API key", "UNAUTHENTICATED", _UNAUTHORIZED)
        else:
            return error_response(
                401,
                "Missing credentials: send Authorization: Bearer <API key> or "
                "X-Lamatic-Signature: <access token>",
                "UNAUTHENTICATED",
                _UNAUTHORIZED,
            )

        project = headers.get("x-project-id")
        if not project:
            return error_response(403, "Missing x-project-id header", "FORBIDDEN")
        if project != self._project_id:
            return error_response(
                403, f"x-project-id '{project}' does not match this project", "FORBIDDEN"
            )
        return None


_UNAUTHORIZED = (("WWW-Authenticate", 'Bearer realm="lamatic"'),)
