"""Flows, agents and executions of the test server, independent of HTTP.

`Engine` stores the registered flows and agents, runs their handlers, keeps every execution by
request id (for `checkStatus` and `submitFeedback`) and counts executions. A `RequestScope` is
the `OperationHandler` the GraphQL layer calls for one request.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from langchain_lamatic.testing._graphql import FieldError
from langchain_lamatic.testing._records import Feedback
from langchain_lamatic.testing._streaming import StreamOptions, StreamPlan, build_stream_plan
from langchain_lamatic.testing._trigger_schema import (
    TriggerSchema,
    compile_trigger_schema,
    describe_value,
)

__all__ = [
    "CompletedShape",
    "Engine",
    "FlowExecutionFailed",
    "FlowHandler",
    "FlowSpec",
    "RequestScope",
    "ResponseType",
    "RunningStatus",
]

logger = logging.getLogger(__name__)

FlowHandler = Callable[[dict[str, Any]], dict[str, Any]]
ResponseType = Literal["realtime", "async"]
CompletedShape = Literal["documented", "data_output"]
RunningStatus = Literal["in-progress", "in_progress"]

_RESPONSE_TYPES = ("realtime", "async")
_COMPLETED_SHAPES = ("documented", "data_output")
_RUNNING_STATUSES = ("in-progress", "in_progress")


class FlowExecutionFailed(Exception):
    """Raised by a flow handler to make the execution fail like a failed node.

    A realtime execution then returns `{"status": status, "result": {"errorMsg": message},
    "message": message}` with HTTP 200. An async one reports the failure through `checkStatus`,
    and a streamed one ends with an error frame.

    Args:
        message: The node's error text.
        status: The execution status to report, `"error"` (default) or `"failed"`.
    """

    def __init__(self, message: str, *, status: Literal["error", "failed"] = "error") -> None:
        if status not in ("error", "failed"):
            raise ValueError(f"status must be 'error' or 'failed', got {status!r}")
        super().__init__(message)
        self.message = message
        self.status = status


@dataclass(frozen=True)
class FlowSpec:
    """A registered flow or agent."""

    flow_id: str
    kind: Literal["flow", "agent"]
    handler: FlowHandler
    schema: TriggerSchema | None
    response_type: ResponseType
    run_time: float
    completed_shape: CompletedShape
    running_status: RunningStatus
    delay: float
    stream: StreamOptions | None
    name: str | None
    description: str | None

    @property
    def label(self) -> str:
        """`flow 'id'` or `agent 'id'`, for messages."""
        return f"{self.kind} '{self.flow_id}'"


@dataclass
class _Execution:
    request_id: str
    spec: FlowSpec
    payload: dict[str, Any]
    accepted_at: float
    done: threading.Event = field(default_factory=threading.Event)
    finished_at: float | None = None
    result: dict[str, Any] | None = None
    failure: FlowExecutionFailed | None = None


class _HandlerCrashed(Exception):
    """A handler raised something other than FlowExecutionFailed or returned a bad value."""


def _check_seconds(name: str, value: float) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value < 0
    ):
        raise ValueError(f"{name} must be a finite number of seconds >= 0, got {value!r}")


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        allowed = ", ".join(repr(choice) for choice in choices)
        raise ValueError(f"{name} must be one of {allowed}, got {value!r}")


class Engine:
    """Registered flows and agents, executions, feedback and counters; thread-safe."""

    def __init__(
        self,
        *,
        stop_event: threading.Event,
        not_found_status: int,
        stream_options: StreamOptions,
    ) -> None:
        self._stop_event = stop_event
        self.not_found_status = not_found_status
        self.stream_options = stream_options
        self._lock = threading.Lock()
        self._flows: dict[str, FlowSpec] = {}
        self._agents: dict[str, FlowSpec] = {}
        self._executions: dict[str, _Execution] = {}
        self._counts: Counter[str] = Counter()
        self._feedback: list[Feedback] = []
        self._handler_errors: list[BaseException] = []
        self._async_threads: set[threading.Thread] = set()

    # Registration

    def register(
        self,
        flow_id: str,
        handler: FlowHandler,
        *,
        kind: Literal["flow", "agent"],
        schema: str | Mapping[str, Any] | None,
        response_type: ResponseType,
        run_time: float,
        completed_shape: CompletedShape,
        running_status: RunningStatus,
        delay: float,
        stream: StreamOptions | None,
        name: str | None,
        description: str | None,
    ) -> FlowSpec:
        """Check the settings and register (or replace) a flow or agent."""
        if not isinstance(flow_id, str) or not flow_id.strip():
            raise ValueError(f"{kind} id must be a non-empty string, got {flow_id!r}")
        if not callable(handler):
            raise TypeError(
                f"handler for {kind} '{flow_id}' must be callable, got {type(handler).__name__}"
            )
        _check_choice("response_type", response_type, _RESPONSE_TYPES)
        _check_choice("completed_shape", completed_shape, _COMPLETED_SHAPES)
        _check_choice("running_status", running_status, _RUNNING_STATUSES)
        _check_seconds("run_time", run_time)
        _check_seconds("delay", delay)
        if stream is not None and not isinstance(stream, StreamOptions):
            raise TypeError(f"stream must be a StreamOptions or None, got {type(stream).__name__}")
        try:
            compiled = compile_trigger_schema(schema)
        except ValueError as error:
            raise ValueError(f"{kind} '{flow_id}': {error}") from error

        spec = FlowSpec(
            flow_id=flow_id,
            kind=kind,
            handler=handler,
            schema=compiled,
            response_type=response_type,
            run_time=float(run_time),
            completed_shape=completed_shape,
            running_status=running_status,
            delay=float(delay),
            stream=stream,
            name=name,
            description=description,
        )
        with self._lock:
            registry = self._flows if kind == "flow" else self._agents
            registry[flow_id] = spec
        return spec

    def flow_ids(self) -> tuple[str, ...]:
        """Ids of the registered flows."""
        with self._lock:
            return tuple(self._flows)

    def agent_ids(self) -> tuple[str, ...]:
        """Ids of the registered agents."""
        with self._lock:
            return tuple(self._agents)

    # Counters and records

    def execution_count(self, flow_id: str) -> int:
        """Number of handler runs started for a flow or agent id."""
        with self._lock:
            return self._counts[flow_id]

    def reset_counts(self) -> None:
        """Set every execution count to zero."""
        with self._lock:
            self._counts.clear()

    @property
    def feedback(self) -> list[Feedback]:
        """A copy of the feedback received, oldest first."""
        with self._lock:
            return list(self._feedback)

    @property
    def handler_errors(self) -> list[BaseException]:
        """A copy of the unexpected exceptions raised by handlers, oldest first."""
        with self._lock:
            return list(self._handler_errors)

    def join_async_runs(self, timeout: float) -> list[threading.Thread]:
        """Wait for async executions to end; return the threads still running."""
        deadline = time.monotonic() + timeout
        with self._lock:
            threads = list(self._async_threads)
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return [thread for thread in threads if thread.is_alive()]

    # Execution

    def lookup(self, kind: Literal["flow", "agent"], flow_id: str) -> FlowSpec:
        """Return a registered flow or agent, or raise the service's "not found" error."""
        with self._lock:
            spec = (self._flows if kind == "flow" else self._agents).get(flow_id)
        if spec is None:
            raise FieldError(
                "Flow not found" if kind == "flow" else "Agent not found",
                "NOT_FOUND",
                http_status=self.not_found_status,
            )
        return spec

    def check_payload(self, spec: FlowSpec, payload: Any) -> dict[str, Any]:
        """Return the payload as a dict, or raise HTTP 422 naming the invalid field."""
        if payload is None:
            payload = {}
        if not isinstance(payload, dict):
            raise FieldError(
                f"Invalid payload for {spec.label}: the payload must be a JSON object, "
                f"got {describe_value(payload)}",
                "BAD_USER_INPUT",
                http_status=422,
                field="",
            )
        if spec.schema is not None:
            violation = spec.schema.validate(payload)
            if violation is not None:
                raise FieldError(
                    f"Invalid payload for {spec.label}: {violation.message}",
                    "BAD_USER_INPUT",
                    http_status=422,
                    field=violation.field,
                )
        return payload

    def wait(self, seconds: float) -> bool:
        """Sleep unless the server stops first; return True when it did."""
        return seconds > 0 and self._stop_event.wait(seconds)

    def begin(self, spec: FlowSpec, payload: dict[str, Any]) -> _Execution:
        """Count an execution and store it under a new request id."""
        execution = _Execution(
            request_id=str(uuid.uuid4()),
            spec=spec,
            payload=copy.deepcopy(payload),
            accepted_at=time.monotonic(),
        )
        with self._lock:
            self._counts[spec.flow_id] += 1
            self._executions[execution.request_id] = execution
        return execution

    def run_handler(self, execution: _Execution) -> None:
        """Run the handler and store its result or failure on the execution.

        Raises:
            _HandlerCrashed: The handler raised another exception or returned something that is
                not a JSON object; the exception is kept in `handler_errors`.
        """
        spec = execution.spec
        try:
            result = spec.handler(copy.deepcopy(execution.payload))
        except FlowExecutionFailed as failure:
            execution.failure = failure
            return
        except Exception as error:
            self.record_crash(spec, error)
            raise _HandlerCrashed(
                f"the handler of {spec.label} raised {type(error).__name__}: {error}"
            ) from error

        if not isinstance(result, dict):
            error = TypeError(
                f"the handler of {spec.label} must return a dict, got {type(result).__name__}"
            )
            self.record_crash(spec, error)
            raise _HandlerCrashed(str(error))
        try:
            json.dumps(result, allow_nan=False)
        except (TypeError, ValueError) as error:
            self.record_crash(spec, error)
            raise _HandlerCrashed(
                f"the handler of {spec.label} returned a result that is not JSON: {error}"
            ) from error
        execution.result = result

    def record_crash(self, spec: FlowSpec, error: BaseException) -> None:
        """Log and keep an unexpected exception from caller code."""
        logger.error("Handler of %s failed", spec.label, exc_info=error)
        with self._lock:
            self._handler_errors.append(error)

    def finish(self, execution: _Execution) -> None:
        """Mark an execution complete."""
        execution.finished_at = time.monotonic()
        execution.done.set()

    def start_async(self, execution: _Execution) -> None:
        """Run an async execution in a background thread."""
        thread = threading.Thread(
            target=self._run_async,
            args=(execution,),
            name=f"lamatic-test-server-async-{execution.request_id[:8]}",
            daemon=True,
        )
        with self._lock:
            self._async_threads.add(thread)
        thread.start()

    def _run_async(self, execution: _Execution) -> None:
        try:
            try:
                self.run_handler(execution)
            except _HandlerCrashed as crash:
                execution.failure = FlowExecutionFailed(f"Internal error: {crash}")
            remaining = execution.accepted_at + execution.spec.run_time - time.monotonic()
            if self.wait(remaining):
                execution.failure = FlowExecutionFailed(
                    "The test server stopped before the execution finished"
                )
                execution.result = None
            self.finish(execution)
        finally:
            with self._lock:
                self._async_threads.discard(threading.current_thread())

    def find_execution(self, request_id: str) -> _Execution | None:
        """Return the execution stored under a request id."""
        with self._lock:
            return self._executions.get(request_id)

    def add_feedback(self, feedback: Feedback) -> None:
        """Store received feedback."""
        with self._lock:
            self._feedback.append(feedback)


def status_object(execution: _Execution) -> dict[str, Any]:
    """Build the `checkStatus` status object of an execution in its flow's completed shape."""
    spec = execution.spec
    if not execution.done.is_set() or execution.finished_at is None:
        return {"status": spec.running_status}
    failure = execution.failure
    if spec.completed_shape == "data_output":
        if failure is not None:
            return {
                "status": failure.status,
                "data": {"output": {"result": {"errorMsg": failure.message}}},
            }
        return {"status": "success", "data": {"output": {"result": execution.result}}}

    # NOTE: The docs list `nodes` without defining its entries; these entries are a guess.
    trigger_node = {
        "nodeId": "triggerNode_1",
        "nodeType": "graphqlNode",
        "status": "success",
        "output": execution.payload,
    }
    elapsed = round(execution.finished_at - execution.accepted_at, 3)
    if failure is not None:
        return {
            "status": failure.status,
            "input": execution.payload,
            "output": None,
            "error": failure.message,
            "nodes": [
                trigger_node,
                {
                    "nodeId": "codeNode_1",
                    "nodeType": "codeNode",
                    "status": "error",
                    "error": failure.message,
                },
            ],
            "statusCode": 500,
            "timeTakenInSeconds": elapsed,
        }
    return {
        "status": "success",
        "input": execution.payload,
        "output": execution.result,
        "nodes": [
            trigger_node,
            {
                "nodeId": "responseNode_1",
                "nodeType": "graphqlResponseNode",
                "status": "success",
                "output": execution.result,
            },
        ],
        "statusCode": 200,
        "timeTakenInSeconds": elapsed,
    }


@dataclass(frozen=True)
class PreparedStream:
    """A streamed execution whose handler has run; the HTTP layer sends `plan`."""

    spec: FlowSpec
    request_id: str
    plan: StreamPlan
    frame_delay: float


class RequestScope:
    """The `OperationHandler` for one HTTP request."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self.stream: PreparedStream | None = None

    def _prepare(self, kind: Literal["flow", "agent"], flow_id: str, payload: Any) -> _Execution:
        engine = self._engine
        spec = engine.lookup(kind, flow_id)
        checked = engine.check_payload(spec, payload)
        if engine.wait(spec.delay):
            raise FieldError(
                "The test server is shutting down", "SERVICE_UNAVAILABLE", http_status=503
            )
        return engine.begin(spec, checked)

    def _run_now(self, execution: _Execution) -> None:
        try:
            self._engine.run_handler(execution)
        except _HandlerCrashed as crash:
            execution.failure = FlowExecutionFailed(f"Internal error: {crash}")
            self._engine.finish(execution)
            raise FieldError(
                f"Internal server error: {crash}", "INTERNAL_SERVER_ERROR", http_status=500
            ) from crash
        self._engine.finish(execution)

    def _execute(
        self, kind: Literal["flow", "agent"], flow_id: str, payload: Any
    ) -> dict[str, Any]:
        execution = self._prepare(kind, flow_id, payload)
        if execution.spec.response_type == "async":
            self._engine.start_async(execution)
            return {
                "status": "success",
                "result": {"requestId": execution.request_id},
                "requestId": execution.request_id,
                "message": None,
            }

        self._run_now(execution)
        if execution.failure is not None:
            # NOTE: Where the real service puts a failed node's text is not documented. Clients
            # that select only `{ status result }` (the official SDKs) still see it here, in the
            # same `errorMsg` key that async failures use.
            return {
                "status": execution.failure.status,
                "result": {"errorMsg": execution.failure.message},
                "requestId": execution.request_id,
                "message": execution.failure.message,
            }
        return {
            "status": "success",
            "result": execution.result,
            "requestId": execution.request_id,
            "message": None,
        }

    def execute_workflow(self, workflow_id: str, payload: Any) -> dict[str, Any]:
        """Run a flow; see `OperationHandler`."""
        return self._execute("flow", workflow_id, payload)

    def execute_agent(self, agent_id: str, payload: Any) -> dict[str, Any]:
        """Run an agent; see `OperationHandler`."""
        return self._execute("agent", agent_id, payload)

    def check_status(self, request_id: str) -> dict[str, Any]:
        """Return the status object of an execution; see `OperationHandler`."""
        execution = self._engine.find_execution(request_id)
        if execution is None:
            raise FieldError(
                f"Request not found: no execution has request id '{request_id}'",
                "NOT_FOUND",
                http_status=self._engine.not_found_status,
            )
        return status_object(execution)

    def submit_feedback(
        self, request_id: str, rating: int | None, comment: str | None, metadata: Any
    ) -> dict[str, Any]:
        """Store feedback for a known request id; see `OperationHandler`."""
        if self._engine.find_execution(request_id) is None:
            return {
                "success": False,
                "message": "Feedback not submitted",
                "data": None,
                "error": f"Invalid request id: '{request_id}'",
            }
        self._engine.add_feedback(
            Feedback(
                request_id=request_id,
                rating=rating,
                comment=comment,
                metadata=metadata,
                time=time.monotonic(),
            )
        )
        return {"success": True, "message": "Feedback submitted", "data": None, "error": None}

    def start_stream(
        self, workflow_id: str | None, payload: Any, source: str | None, command: str | None
    ) -> None:
        """Run a flow for streaming and keep the frames to send; see `OperationHandler`."""
        if not workflow_id:
            raise FieldError(
                "executeWorkflowWithStream needs a workflowId", "BAD_USER_INPUT", http_status=400
            )
        execution = self._prepare("flow", workflow_id, payload)
        self._run_now(execution)
        options = execution.spec.stream or self._engine.stream_options
        try:
            plan = build_stream_plan(
                options,
                execution.payload,
                execution.result,
                execution.failure.message if execution.failure else None,
            )
        except Exception as error:
            # The `text` function of StreamOptions is caller code and may fail like a handler.
            self._engine.record_crash(execution.spec, error)
            raise FieldError(
                f"Internal server error: the stream text function of {execution.spec.label} "
                f"raised {type(error).__name__}: {error}",
                "INTERNAL_SERVER_ERROR",
                http_status=500,
            ) from error
        self.stream = PreparedStream(
            execution.spec, execution.request_id, plan, options.frame_delay
        )
