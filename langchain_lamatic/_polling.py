"""Async flows: parsing ``checkStatus`` responses and pacing the polls until a run finishes.

A flow whose API trigger is set to async returns a request id from ``executeWorkflow`` at once,
and the caller polls ``checkStatus`` until the status is ``success``, ``error`` or ``failed``.
This module has no I/O of its own: the client passes it a function that sends one poll, so the
sync and async clients share the parsing, the schedule and the deadline handling.

Two completed shapes are in circulation and both are read:

- documented: ``{"status", "input", "output": {...}, "nodes": [...], "statusCode",
  "timeTakenInSeconds"}``;
- ``{"status", "data": {"output": {"result": {...}}}}``, with a failure's text at
  ``data.output.result.errorMsg``.

``checkStatus`` is a ``JSON`` scalar, so it is usually sent without a selection set. A server
may still accept a ``{ status result }`` selection. Its ``result`` is then either the whole
status object or the flow's output, and both are read.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NoReturn

import httpx

from langchain_lamatic.errors import (
    LamaticError,
    LamaticExecutionError,
    LamaticResponseError,
    LamaticTimeoutError,
    redact,
)

__all__ = [
    "CHECK_STATUS_WITH_SELECTION",
    "DEFAULT_POLL_DEADLINE",
    "DEFAULT_POLL_INTERVAL",
    "MIN_POLL_INTERVAL",
    "PollProgress",
    "PollSchedule",
    "StatusReport",
    "arun_poll_loop",
    "check_poll_deadline",
    "check_poll_interval",
    "execution_failure",
    "needs_selection_set",
    "normalise_status",
    "parse_status_report",
    "pending_request_id",
    "poll_timeout",
    "run_poll_loop",
]

logger = logging.getLogger(__name__)

OPERATION = "checkStatus"

MIN_POLL_INTERVAL = 3.0
"""Lamatic's documentation requests at most one poll every 3 seconds per IP address, because
its CDN may block faster pollers. Loopback endpoints (local stand-ins and tests) are exempt."""

DEFAULT_POLL_INTERVAL = MIN_POLL_INTERVAL
"""Seconds between the starts of two ``checkStatus`` polls."""

DEFAULT_POLL_DEADLINE = 900.0
"""Seconds to wait for an async run, as in the official SDKs. Async runs may last about 20
minutes on Lamatic, so long flows need a larger deadline."""

# Sent instead of the scalar form when a server rejects a checkStatus without a selection set.
CHECK_STATUS_WITH_SELECTION = """query CheckStatus($requestId: String!) {
  checkStatus(requestId: $requestId) {
    status
    result
  }
}"""

_SUCCESS = "success"
_FAILED_STATUSES = frozenset({"error", "failed"})
_RUNNING = "in-progress"
_RUNNING_SPELLINGS = frozenset({"in-progress", "in_progress", "in progress", "inprogress"})
_REQUEST_ID_KEYS = ("requestId", "request_id")
# Keys an async acknowledgement may carry besides the request id.
_ACKNOWLEDGEMENT_KEYS = frozenset({"requestId", "request_id", "status", "message", "data"})
_ERROR_TEXT_KEYS = ("errorMsg", "error", "message", "errorMessage")
# The smallest HTTP timeout given to one poll near the deadline, so the last poll can still
# get a response from a slow server.
_MIN_POLL_REQUEST_SECONDS = 5.0


# --- Parsing responses ------------------------------------------------------------------------


@dataclass(frozen=True)
class StatusReport:
    """One ``checkStatus`` response, with both completed shapes mapped to the same fields.

    Attributes:
        status: The status in lower case, with ``in_progress`` spelled ``in-progress``.
        output: The flow's output (the keys of its API Response node), or None while running.
        metadata: The response's other fields, such as ``nodes``, ``statusCode`` and
            ``timeTakenInSeconds``.
        failure_text: For ``error`` and ``failed``, the error text the server sent.
    """

    status: str
    output: Any = None
    metadata: dict[str, Any] = field(default_factory=dict)
    failure_text: str | None = None

    @property
    def finished(self) -> bool:
        """Whether the run ended, successfully or not."""
        return self.status == _SUCCESS or self.status in _FAILED_STATUSES

    @property
    def failed(self) -> bool:
        """Whether the run ended with ``error`` or ``failed``."""
        return self.status in _FAILED_STATUSES


def normalise_status(status: str) -> str:
    """Return ``status`` in lower case, with ``in_progress`` and similar spelled ``in-progress``."""
    lowered = status.strip().lower()
    return _RUNNING if lowered in _RUNNING_SPELLINGS else lowered


def parse_status_report(
    value: Any, *, request_id: str, secrets: tuple[str, ...] = ()
) -> StatusReport:
    """Read the ``data.checkStatus`` value of a response.

    Accepts the JSON object, the same object sent as a JSON string, a bare status string,
    and a ``{status, result}`` selection whose ``result`` is either the whole status object
    or the flow's output. ``secrets`` are replaced with "[REDACTED]" in the failure text.

    Raises:
        LamaticResponseError: The value has no status string.
    """
    if isinstance(value, str):
        value = _decode_json_string(value)
    if isinstance(value, str):
        return StatusReport(status=normalise_status(value))
    if not isinstance(value, Mapping):
        raise _shape_error(
            f"returned {type(value).__name__} where an object with a status was expected",
            request_id,
        )

    body: Mapping[str, Any] = value
    selected = value.get("result")
    if isinstance(selected, str):
        selected = _decode_json_string(selected)
    if (
        "output" not in value
        and "data" not in value
        and isinstance(selected, Mapping)
        and _is_status_object(selected)
    ):
        # A {status result} selection whose result is the whole status object.
        body = {**selected, "status": value.get("status") or selected.get("status")}

    raw_status = body.get("status")
    if isinstance(raw_status, str) and not raw_status.strip():
        raise _shape_error(
            "returned an empty status; expected a string such as 'success' or 'in-progress'",
            request_id,
        )
    if not isinstance(raw_status, str):
        raise _shape_error(
            f"returned a status of type {type(raw_status).__name__}; expected a string such "
            "as 'success' or 'in-progress'",
            request_id,
        )
    status = normalise_status(raw_status)
    output, metadata = _output_and_metadata(body)
    failure_text = None
    if status in _FAILED_STATUSES:
        failure_text = redact(_failure_text(body, output), secrets)
    return StatusReport(status=status, output=output, metadata=metadata, failure_text=failure_text)


def _decode_json_string(text: str) -> Any:
    stripped = text.strip()
    if stripped.startswith(("{", "[")):
        try:
            return json.loads(stripped)
        except (ValueError, RecursionError):
            return text
    return text


def _is_status_object(value: Mapping[str, Any]) -> bool:
    return "status" in value and (
        "output" in value
        or "nodes" in value
        or "statusCode" in value
        or isinstance(value.get("data"), Mapping)
    )


def _output_and_metadata(body: Mapping[str, Any]) -> tuple[Any, dict[str, Any]]:
    data = body.get("data")
    nested_output = data.get("output") if isinstance(data, Mapping) else None
    if isinstance(data, Mapping) and nested_output is not None:
        # {"status", "data": {"output": {"result": {...}}}}
        if isinstance(nested_output, Mapping) and "result" in nested_output:
            output = nested_output["result"]
        else:
            output = nested_output
        metadata = {key: item for key, item in body.items() if key not in ("status", "data")}
        metadata.update({key: item for key, item in data.items() if key != "output"})
        return output, metadata
    if "output" in body:
        output = body["output"]
        metadata = {key: item for key, item in body.items() if key not in ("status", "output")}
        return output, metadata
    output = body.get("result", data)
    metadata = {key: item for key, item in body.items() if key not in ("status", "result", "data")}
    return output, metadata


def _text_in(value: Any) -> str | None:
    if isinstance(value, str) and value.strip():
        return value
    if isinstance(value, Mapping):
        for key in _ERROR_TEXT_KEYS:
            text = _text_in(value.get(key))
            if text:
                return text
    return None


def _failure_text(body: Mapping[str, Any], output: Any) -> str:
    for candidate in (output, body, body.get("result")):
        if isinstance(candidate, Mapping):
            text = _text_in(candidate)
            if text:
                return text
    if isinstance(output, str) and output.strip():
        return output
    nodes = body.get("nodes")
    if isinstance(nodes, list):
        for node in nodes:
            if not isinstance(node, Mapping):
                continue
            text = _text_in(node.get("error")) or _text_in(node.get("output"))
            node_status = node.get("status")
            if text and isinstance(node_status, str) and node_status.lower() in _FAILED_STATUSES:
                node_id = node.get("nodeId") or node.get("id")
                return f"{text} (node {node_id!r})" if node_id else text
    return "no error message was returned"


def _shape_error(problem: str, request_id: str) -> LamaticResponseError:
    return LamaticResponseError(
        f"Lamatic checkStatus for request {request_id!r} {problem}",
        status_code=200,
        request_id=request_id,
        operation=OPERATION,
    )


def execution_failure(
    report: StatusReport,
    *,
    request_id: str,
    flow_id: str | None,
    agent_id: str | None,
    secrets: tuple[str, ...],
) -> LamaticExecutionError:
    """Build the error for a run that ended with ``error`` or ``failed``."""
    what = _target(flow_id, agent_id, request_id)
    code = report.metadata.get("statusCode")
    code_text = f" (statusCode {code})" if isinstance(code, int) else ""
    reason = redact(report.failure_text or "no error message was returned", secrets)
    return LamaticExecutionError(
        f"{what} reported status {report.status!r}{code_text}: {reason}",
        status_code=200,
        request_id=request_id,
        operation=OPERATION,
        flow_id=flow_id,
        agent_id=agent_id,
    )


def _target(flow_id: str | None, agent_id: str | None, request_id: str) -> str:
    if flow_id is not None:
        return f"Lamatic flow {flow_id!r} (request {request_id!r})"
    if agent_id is not None:
        return f"Lamatic agent {agent_id!r} (request {request_id!r})"
    return f"Lamatic request {request_id!r}"


def needs_selection_set(message: str) -> bool:
    """Return whether a GraphQL error reports that ``checkStatus`` needs a selection set."""
    lowered = message.lower()
    return "checkstatus" in lowered and "selection" in lowered and "must have" in lowered


def pending_request_id(
    status: str,
    result: Any,
    request_id: str | None,
    *,
    flow_id: str | None = None,
    agent_id: str | None = None,
) -> str | None:
    """Return the request id when an execute response is an async acknowledgement, else None.

    An async flow returns ``result.requestId`` (some apps also read ``request_id`` or
    ``result.data.requestId``) and nothing else in ``result``. A result with other keys is a
    realtime flow's output that happens to contain a request id. A running status such as
    ``in-progress`` with a request id anywhere is an acknowledgement too.

    Raises:
        LamaticResponseError: The status is a running one but no request id came with it, so
            the run can neither be returned nor polled.
    """
    inner_id = _request_id_in_result(result)
    if normalise_status(status) == _RUNNING:
        pending = inner_id or request_id
        if pending is None:
            subject = (
                f"Lamatic flow {flow_id!r}"
                if flow_id is not None
                else f"Lamatic agent {agent_id!r}"
                if agent_id is not None
                else "Lamatic execution"
            )
            raise LamaticResponseError(
                f"{subject} returned status {status!r} without a request id (requestId or "
                "request_id), so the run cannot be polled for its result",
                hint="The run may still be going on, so check its run log in Lamatic Studio",
                status_code=200,
                flow_id=flow_id,
                agent_id=agent_id,
            )
        return pending
    if inner_id is None or not isinstance(result, Mapping):
        return None
    if not set(result) <= _ACKNOWLEDGEMENT_KEYS:
        return None
    data = result.get("data")
    if data is not None and not (isinstance(data, Mapping) and set(data) <= _ACKNOWLEDGEMENT_KEYS):
        return None
    return inner_id


def _request_id_in_result(result: Any) -> str | None:
    if not isinstance(result, Mapping):
        return None
    for container in (result, result.get("data")):
        if isinstance(container, Mapping):
            for key in _REQUEST_ID_KEYS:
                value = container.get(key)
                if isinstance(value, str) and value.strip():
                    return value
    return None


# --- Settings -------------------------------------------------------------------------------


def check_poll_interval(value: object, *, argument: str = "poll_interval") -> float:
    """Return ``value`` as seconds, or raise for a value that is not a positive number."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{argument} must be a number of seconds, got {type(value).__name__}")
    seconds = float(value)
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"{argument} must be a positive, finite number of seconds, got {value!r}")
    return seconds


def check_poll_deadline(value: object, *, argument: str = "deadline") -> float | None:
    """Return ``value`` as seconds or None (no deadline), or raise for an invalid value."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(
            f"{argument} must be a number of seconds or None, got {type(value).__name__}"
        )
    seconds = float(value)
    if math.isnan(seconds) or seconds <= 0:
        raise ValueError(f"{argument} must be a positive number of seconds or None, got {value!r}")
    return None if math.isinf(seconds) else seconds


# --- The poll loop --------------------------------------------------------------------------


@dataclass(frozen=True)
class PollProgress:
    """Progress of the wait for an async run, reported after every ``checkStatus`` poll.

    Attributes:
        request_id: The request id being polled.
        attempt: The number of this poll, starting at 1.
        elapsed: Seconds since the wait began.
        status: The status this poll returned, e.g. ``"in-progress"`` or ``"success"``.
        next_poll_in: Seconds until the next poll, or None when the run finished.
        flow_id: The flow being waited for, when known.
        agent_id: The agent being waited for, when known.
    """

    request_id: str
    attempt: int
    elapsed: float
    status: str
    next_poll_in: float | None
    flow_id: str | None = None
    agent_id: str | None = None

    @property
    def finished(self) -> bool:
        """Whether this poll saw the run end."""
        return self.next_poll_in is None

    def to_dict(self) -> dict[str, Any]:
        """Return the fields as a plain dict, the data of the ``lamatic_poll`` custom event."""
        data: dict[str, Any] = {
            "request_id": self.request_id,
            "attempt": self.attempt,
            "elapsed": round(self.elapsed, 3),
            "status": self.status,
            "next_poll_in": None if self.next_poll_in is None else round(self.next_poll_in, 3),
        }
        if self.flow_id is not None:
            data["flow_id"] = self.flow_id
        if self.agent_id is not None:
            data["agent_id"] = self.agent_id
        return data


PollCallback = Callable[[PollProgress], object]
"""Called after every poll with its `PollProgress`; an async callable is awaited on the async
path."""


class PollSchedule:
    """The timing of one wait: when to poll next, and when the deadline has passed.

    The interval runs from the start of one poll to the start of the next, so a slow response
    does not stretch it. The wait ends with `LamaticTimeoutError` as soon as the next poll
    would start after the deadline.

    Args:
        request_id: The request being polled.
        interval: Seconds between the starts of two polls.
        deadline: Seconds the whole wait may take, or None for no limit.
        first_poll_after: Seconds to wait before the first poll.
        flow_id: The flow being waited for, for errors and progress.
        agent_id: The agent being waited for, for errors and progress.
    """

    def __init__(
        self,
        *,
        request_id: str,
        interval: float,
        deadline: float | None,
        first_poll_after: float = 0.0,
        flow_id: str | None = None,
        agent_id: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.request_id = request_id
        self.interval = interval
        self.deadline = deadline
        self.first_poll_after = first_poll_after
        self.flow_id = flow_id
        self.agent_id = agent_id
        self._clock = clock
        self.started = clock()
        self.attempt = 0
        self.last_status = "unknown"
        self._status_seen = False
        self._next_poll_at = self.started + first_poll_after
        self._poll_started = self.started

    def elapsed(self) -> float:
        """Seconds since the wait began."""
        return self._clock() - self.started

    def wait_before_poll(self) -> float:
        """Return the seconds to sleep before the next poll.

        Raises:
            LamaticTimeoutError: The next poll would start after the deadline.
        """
        if self.deadline is not None and self._next_poll_at - self.started > self.deadline:
            raise self.deadline_error()
        return max(0.0, self._next_poll_at - self._clock())

    def begin_poll(self) -> float | None:
        """Count a poll that starts now; return the seconds left before the deadline, if any."""
        self.attempt += 1
        self._poll_started = self._clock()
        self._next_poll_at = self._poll_started + self.interval
        if self.deadline is None:
            return None
        return self.deadline - (self._poll_started - self.started)

    def progress(self, report: StatusReport) -> PollProgress:
        """Record the status a poll returned, and return the progress to report."""
        self.last_status = report.status
        self._status_seen = True
        next_poll_in = None if report.finished else max(0.0, self._next_poll_at - self._clock())
        return PollProgress(
            request_id=self.request_id,
            attempt=self.attempt,
            elapsed=self.elapsed(),
            status=report.status,
            next_poll_in=next_poll_in,
            flow_id=self.flow_id,
            agent_id=self.agent_id,
        )

    def deadline_passed(self) -> bool:
        """Return whether the deadline has passed."""
        return self.deadline is not None and self.elapsed() >= self.deadline

    def deadline_error(self) -> LamaticTimeoutError:
        """Build the error raised when the deadline passes, with the way to resume."""
        what = _target(self.flow_id, self.agent_id, self.request_id)
        if self.attempt and self._status_seen:
            state = f"was still {self.last_status!r} after {_polls(self.attempt)} in"
        elif self.attempt:
            state = f"returned no status after {_polls(self.attempt)} in"
        else:
            state = "was not polled before the deadline, after"
        deadline = self.deadline if self.deadline is not None else math.inf
        return LamaticTimeoutError(
            f"{what} {state} {self.elapsed():.1f} s, and the {deadline:g} s deadline "
            "passed. The run continues on the server: resume with "
            f"client.check_status({self.request_id!r}, wait=True), or allow more time "
            "(poll_deadline on LamaticFlow, deadline on check_status)",
            hint="The flow may still finish: poll it again with check_status",
            request_id=self.request_id,
            operation=OPERATION,
            flow_id=self.flow_id,
            agent_id=self.agent_id,
            attempts=self.attempt,
        )


def _polls(count: int) -> str:
    return "1 poll" if count == 1 else f"{count} polls"


def _log_progress(progress: PollProgress) -> None:
    if progress.finished:
        logger.info(
            "Lamatic request %s finished with status %r after %s in %.1f s",
            progress.request_id,
            progress.status,
            _polls(progress.attempt),
            progress.elapsed,
        )
    else:
        logger.info(
            "Lamatic request %s is %r after %.1f s (poll %d); next poll in %.1f s",
            progress.request_id,
            progress.status,
            progress.elapsed,
            progress.attempt,
            progress.next_poll_in,
        )


def _report_sync(on_poll: PollCallback | None, progress: PollProgress) -> None:
    _log_progress(progress)
    if on_poll is None:
        return
    outcome = on_poll(progress)
    if inspect.isawaitable(outcome):
        if inspect.iscoroutine(outcome):
            outcome.close()
        raise TypeError(
            "on_poll returned an awaitable on the sync path; pass a plain function, or use "
            "acheck_status() for an async callback"
        )


async def _report_async(on_poll: PollCallback | None, progress: PollProgress) -> None:
    _log_progress(progress)
    if on_poll is None:
        return
    outcome = on_poll(progress)
    if inspect.isawaitable(outcome):
        await outcome


def run_poll_loop(
    poll_once: Callable[[float | None], StatusReport],
    schedule: PollSchedule,
    on_poll: PollCallback | None = None,
) -> StatusReport:
    """Poll until the run finishes, and return the last report.

    ``poll_once`` sends one poll; its argument is the seconds left before the deadline, or
    None. A failed run is returned like a successful one; the caller raises its error.

    Raises:
        LamaticTimeoutError: The deadline passed; the error carries the request id.
        LamaticError: A poll failed after the client's retries; the error carries the
            request id.
    """
    while True:
        time.sleep(schedule.wait_before_poll())
        remaining = schedule.begin_poll()
        try:
            report = poll_once(remaining)
        except LamaticError as error:
            _raise_poll_failure(schedule, error)
        progress = schedule.progress(report)
        _report_sync(on_poll, progress)
        if report.finished:
            return report


async def arun_poll_loop(
    poll_once: Callable[[float | None], Awaitable[StatusReport]],
    schedule: PollSchedule,
    on_poll: PollCallback | None = None,
) -> StatusReport:
    """Poll until the run finishes without blocking the event loop; see `run_poll_loop`."""
    while True:
        await asyncio.sleep(schedule.wait_before_poll())
        remaining = schedule.begin_poll()
        try:
            report = await poll_once(remaining)
        except LamaticError as error:
            _raise_poll_failure(schedule, error)
        progress = schedule.progress(report)
        await _report_async(on_poll, progress)
        if report.finished:
            return report


def _raise_poll_failure(schedule: PollSchedule, error: LamaticError) -> NoReturn:
    """Re-raise a failed poll's error with the request id, so the caller can resume.

    A poll that timed out because the deadline had passed raises the deadline error instead.
    """
    if isinstance(error, LamaticTimeoutError) and schedule.deadline_passed():
        raise schedule.deadline_error() from error
    if error.request_id is None:
        error.request_id = schedule.request_id
    raise error


def poll_timeout(configured: httpx.Timeout, remaining: float | None) -> httpx.Timeout:
    """Return the HTTP timeout of one poll: the configured one, capped by the deadline.

    The cap never goes below a few seconds, so the last poll before the deadline can still
    get a response.
    """
    if remaining is None:
        return configured
    cap = max(remaining, _MIN_POLL_REQUEST_SECONDS)

    def capped(value: float | None) -> float:
        return cap if value is None else min(value, cap)

    return httpx.Timeout(
        connect=capped(configured.connect),
        read=capped(configured.read),
        write=capped(configured.write),
        pool=capped(configured.pool),
    )
