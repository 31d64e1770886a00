"""Streamed flow runs over HTTP: opening ``executeWorkflowWithStream`` and reading its events.

`LamaticClient.stream_flow` and `LamaticClient.astream_flow` build the request and hand it to
the generators here, which send it with ``Accept: text/event-stream`` and decode the body with
`~langchain_lamatic.streaming.LamaticStreamDecoder` as it arrives.

Retries happen only before the stream starts: failures before the request was sent, and
HTTP 429, 502, 503 and 504 responses, under the client's retry policy. Once the server has
returned an event stream the flow is running, so nothing is retried after that.

A server that returns plain JSON for the subscription is read like any other response: an
``errors`` body raises the typed error, and a ``data`` body becomes a single
`~langchain_lamatic.streaming.FlowCompleted`. When asked to, a flow whose server cannot stream
(it rejects the subscription before running anything) runs through ``executeWorkflow`` instead.

The body is read to its end after the final frame, so the connection goes back to the pool.
A body that goes on for more than about a second after the final frame is not waited for,
and its connection is closed. The response is closed in a ``finally`` block, so breaking out
of the loop, closing the iterator or cancelling the task before that closes the connection at
once.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import AsyncGenerator, AsyncIterator, Generator, Iterator, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeAlias

import httpx
from pydantic import SecretStr
from typing_extensions import Self

from langchain_lamatic.errors import (
    LamaticBadRequestError,
    LamaticError,
    LamaticResponseError,
    LamaticTimeoutError,
    redact,
)
from langchain_lamatic.streaming import (
    FlowCompleted,
    LamaticStreamDecoder,
    NodeCompleted,
    StreamError,
    StreamEvent,
    TextDelta,
)

if TYPE_CHECKING:
    from langchain_lamatic.client import LamaticClient, LamaticResponse, _Call

__all__ = [
    "AsyncFlowEventStream",
    "FlowEvent",
    "FlowEventStream",
    "aiter_flow_events",
    "is_streaming_unsupported",
    "iter_flow_events",
    "reclaim_cancelled_connections",
]

logger = logging.getLogger(__name__)

FlowEvent: TypeAlias = TextDelta | NodeCompleted | FlowCompleted
"""An event of a streamed flow run; errors are raised, never yielded."""

EVENT_STREAM = "text/event-stream"

# Messages of GraphQL errors from servers that cannot run the subscription at all: a schema
# without a Subscription type or without the field, or a server that takes subscriptions only
# over WebSocket.
_UNSUPPORTED_STREAM_MESSAGE = re.compile(
    r"subscription|executeworkflowwithstream|event-stream|"
    r"stream(ing)? (is |are )?not (supported|enabled|available)",
    re.IGNORECASE,
)
_NOT_ACCEPTABLE = 406

# After the final frame the rest of the body is read, so the connection can go back to the
# pool. Some servers keep the response open and send keep-alive comments after that frame.
# Reading stops at the first chunk that arrives this many seconds after the final event was
# delivered, and the response is closed.
_MAX_DRAIN_SECONDS = 1.0


class FlowEventStream(Iterator[FlowEvent]):
    """The events of a streamed flow run: an iterator that is also a context manager.

    The request is sent when the first event is requested. Leaving the ``with`` block, calling
    `close`, or breaking out of a ``for`` loop over it closes the HTTP response.
    """

    def __init__(self, events: Generator[FlowEvent, None, None]) -> None:
        self._events = events

    def __iter__(self) -> Self:
        return self

    def __next__(self) -> FlowEvent:
        return next(self._events)

    def close(self) -> None:
        """Stop reading and close the HTTP response; later iteration ends at once."""
        self._events.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


class AsyncFlowEventStream(AsyncIterator[FlowEvent]):
    """The events of a streamed flow run, for ``async for``; also an async context manager.

    The request is sent when the first event is awaited. Leaving the ``async with`` block,
    awaiting `aclose`, or cancelling the task closes the HTTP response at once. Breaking out
    of an ``async for`` loop without either closes it only when the iterator is garbage
    collected, as for any async generator.
    """

    def __init__(self, events: AsyncGenerator[FlowEvent, None]) -> None:
        self._events = events

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> FlowEvent:
        return await self._events.__anext__()

    async def aclose(self) -> None:
        """Stop reading and close the HTTP response; later iteration ends at once."""
        await self._events.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()


def is_streaming_unsupported(error: LamaticError) -> bool:
    """Return whether an error returned before the stream began means the server cannot stream.

    True for HTTP 406 (the server will not send ``text/event-stream``) and for a bad request
    whose GraphQL message is about the subscription, for example "Schema is not configured
    to execute subscription operation" or "Cannot query field executeWorkflowWithStream".
    Such a server rejected the request before running the flow, so running it another way
    cannot run it twice.
    """
    if error.status_code == _NOT_ACCEPTABLE:
        return True
    if not isinstance(error, LamaticBadRequestError):
        return False
    # The excerpt of the response body contains the server's own messages. The error's
    # message also names the flow, whose id could contain any of the words.
    return bool(error.body_excerpt and _UNSUPPORTED_STREAM_MESSAGE.search(error.body_excerpt))


def _plain(value: str | SecretStr) -> str:
    return value.get_secret_value() if isinstance(value, SecretStr) else value


def _is_event_stream(response: httpx.Response) -> bool:
    content_type = response.headers.get("content-type", "")
    return 200 <= response.status_code < 300 and content_type.lower().startswith(EVENT_STREAM)


def _completed_from_response(response: LamaticResponse, *, streamed: bool) -> FlowCompleted:
    metadata: dict[str, Any] = {"status": response.status, "streamed": streamed}
    if response.request_id is not None:
        metadata["requestId"] = response.request_id
    if response.message is not None:
        metadata["message"] = response.message
    return FlowCompleted(output=response.result, text="", metadata=metadata)


def _completed_from_json(client: LamaticClient, call: _Call, value: Any) -> FlowCompleted:
    """Read the ``data.executeWorkflowWithStream`` value of a plain JSON response."""
    if isinstance(value, Mapping) and value.get("isFlowExecutionFinished") is True:
        if isinstance(value.get("status"), str):
            # Raises for "error" and "failed", as for an execution's response.
            details = value.get("result") if value.get("result") is not None else value.get("data")
            client._execution_response(call, {**value, "result": details})
        output = value.get("data") if value.get("data") is not None else value.get("result")
        metadata = {key: item for key, item in value.items() if key not in ("data", "result")}
        metadata["streamed"] = False
        return FlowCompleted(output=output, text="", metadata=metadata)
    if isinstance(value, Mapping) and value.get("status") == "streaming":
        raise LamaticResponseError(
            f"Lamatic flow {call.flow_id!r} returned one stream frame as plain JSON instead "
            "of an event stream, so the server does not stream over HTTP. "
            "The flow may have run, so check its run log before running it again",
            status_code=200,
            operation=call.operation,
            flow_id=call.flow_id,
        )
    return _completed_from_response(client._execution_response(call, value), streamed=False)


def _log_failure_after_finish(call: _Call, error: httpx.HTTPError) -> None:
    # The final frame had arrived, so every event of the run was already yielded.
    logger.debug(
        "The stream of Lamatic flow %s failed after the flow finished: %s",
        call.target,
        type(error).__name__,
    )


def _broken_stream_error(
    client: LamaticClient,
    call: _Call,
    decoder: LamaticStreamDecoder,
    error: httpx.HTTPError,
) -> LamaticError:
    """Map a transport failure before the final frame to a typed error."""
    if isinstance(error, httpx.TimeoutException):
        detail = redact(str(error) or type(error).__name__, client._secrets(call))
        return LamaticTimeoutError(
            f"Lamatic flow {call.flow_id!r} sent nothing for longer than the read timeout "
            f"after {decoder.frame_count} stream frames ({detail}). The flow may still be "
            "running; raise the timeout if its nodes are slow",
            status_code=decoder.status_code,
            operation=call.operation,
            flow_id=call.flow_id,
        )
    try:
        decoder.close()
    except LamaticError as cut:
        return cut
    # Not reached: close() raises for every stream that did not finish, and callers check
    # finished first. Kept so that a change there cannot turn a failure into a success.
    return LamaticResponseError(
        f"Lamatic flow {call.flow_id!r} stream failed: {type(error).__name__}",
        status_code=decoder.status_code,
        operation=call.operation,
        flow_id=call.flow_id,
    )


def _drain_took_too_long(call: _Call, drain_started: float | None) -> bool:
    """Return whether to stop reading a body that goes on after the flow's final frame."""
    if drain_started is None or time.monotonic() - drain_started <= _MAX_DRAIN_SECONDS:
        return False
    logger.debug(
        "The stream of Lamatic flow %s went on after the flow finished; closing it",
        call.target,
    )
    return True


def _decoder_for(
    client: LamaticClient, call: _Call, response: httpx.Response
) -> LamaticStreamDecoder:
    return LamaticStreamDecoder(
        flow_id=call.flow_id,
        status_code=response.status_code,
        secrets=client._secrets(call),
    )


def _checked(events: list[StreamEvent]) -> Iterator[FlowEvent]:
    for event in events:
        if isinstance(event, StreamError):
            raise event.error
        yield event


# --- Cancellation ---------------------------------------------------------------------------


async def reclaim_cancelled_connections(http: httpx.AsyncClient, request: httpx.Request) -> None:
    """Close the pool connections that a cancelled request left behind, and free their slots.

    NOTE: httpcore 1.0.9 keeps a cancelled request's connection in its pool for good when
    the cancellation arrives while the connection is being opened or its response is being
    closed. Each such connection takes a slot, and once ``max_connections`` are taken every
    request fails with ``PoolTimeout``. Random cancellations against the local test server
    used up two slots within 150 calls. This function reads httpcore's private pool state,
    and does nothing when that state is not there.
    """
    transport = getattr(http, "_transport", None)
    # The client's own transport has no such state, but the stock httpx transport it uses
    # while a mock is active does.
    transport = getattr(transport, "stock_transport", transport)
    pool = getattr(transport, "_pool", None)
    pending = getattr(pool, "_requests", None)
    connections = getattr(pool, "_connections", None)
    if not isinstance(pending, list) or not isinstance(connections, list):
        return

    # httpx hands the request's extensions dict to httpcore as is, so identity finds our entry.
    ours = [
        entry
        for entry in pending
        if getattr(getattr(entry, "request", None), "extensions", None) is request.extensions
    ]
    for entry in ours:
        pending.remove(entry)
    in_use = {id(getattr(entry, "connection", None)) for entry in pending}
    orphans = [
        connection
        for connection in connections
        if id(connection) not in in_use and not connection.is_idle() and not connection.is_closed()
    ]
    for connection in orphans:
        connections.remove(connection)
    for connection in orphans:
        try:
            await connection.aclose()
        except Exception as error:
            logger.debug("Could not close a connection left by a cancelled request: %r", error)
    if ours or orphans:
        logger.debug(
            "Released %d pool connections left by a cancelled request to %s",
            len(orphans),
            request.url,
        )


# --- Sync -----------------------------------------------------------------------------------


def _open_sync(
    client: LamaticClient,
    call: _Call,
    *,
    access_token: str | SecretStr | None,
    project_id: str | None,
) -> httpx.Response | FlowCompleted:
    """Send the stream request with retries, and return the open stream or the JSON result."""
    http = client._get_sync_client()
    if access_token is not None:
        call.secret = _plain(access_token)
    attempt = 0
    refreshed = False
    while True:
        attempt += 1
        request = client._build_request(
            http, call, accept=EVENT_STREAM, access_token=access_token, project_id=project_id
        )
        try:
            response = http.send(request, stream=True, follow_redirects=False)
        except httpx.HTTPError as http_error:
            error, sent = client._transport_error(call, http_error, attempt)
            wait = client._after_failure(call, error, attempt, sent)
            if wait is None:
                raise error from None
            time.sleep(wait)
            continue

        if _is_event_stream(response):
            logger.debug(
                "Lamatic %s for %s: HTTP %d, event stream opened",
                call.operation,
                call.target,
                response.status_code,
            )
            return response

        try:
            body = response.read()
        except httpx.HTTPError as http_error:
            error, _ = client._transport_error(call, http_error, attempt)
            wait = client._after_failure(call, error, attempt, True)
            if wait is None:
                raise error from None
            time.sleep(wait)
            continue
        finally:
            response.close()

        try:
            value = client._classify(call, response, body, attempt)
        except LamaticError as error:
            if client._wants_token_refresh(error, refreshed, access_token):
                refreshed = True
                client.update_access_token(client._call_token_provider_sync())
                logger.info("Refreshed the Lamatic access token after HTTP %s", error.status_code)
                attempt -= 1
                continue
            wait = client._after_failure(call, error, attempt, True)
            if wait is None:
                raise
            time.sleep(wait)
            continue
        return _completed_from_json(client, call, value)


def iter_flow_events(
    client: LamaticClient,
    call: _Call,
    *,
    fallback: _Call | None,
    access_token: str | SecretStr | None,
    project_id: str | None,
) -> Generator[FlowEvent, None, None]:
    """Yield the events of one streamed run; see `LamaticClient.stream_flow`."""
    try:
        opened = _open_sync(client, call, access_token=access_token, project_id=project_id)
    except LamaticError as error:
        if fallback is None or not is_streaming_unsupported(error):
            raise
        logger.info(
            "Lamatic flow %s cannot stream (%s); running it with executeWorkflow instead",
            call.target,
            type(error).__name__,
        )
        data = client._send(fallback, access_token=access_token, project_id=project_id)
        yield _completed_from_response(client._execution_response(fallback, data), streamed=False)
        return

    if isinstance(opened, FlowCompleted):
        yield opened
        return

    response = opened
    decoder = _decoder_for(client, call, response)
    drain_started: float | None = None
    try:
        try:
            # NOTE: a server that keeps the response open after the final frame without
            # sending anything blocks the iterator until the read timeout passes.
            for chunk in response.iter_bytes():
                if _drain_took_too_long(call, drain_started):
                    break
                yield from _checked(decoder.feed(chunk))
                if decoder.finished and drain_started is None:
                    drain_started = time.monotonic()
            yield from _checked(decoder.close())
        except httpx.HTTPError as http_error:
            if decoder.finished:
                _log_failure_after_finish(call, http_error)
                return
            raise _broken_stream_error(client, call, decoder, http_error) from http_error
    finally:
        response.close()


# --- Async ----------------------------------------------------------------------------------


async def _open_async(
    client: LamaticClient,
    call: _Call,
    *,
    access_token: str | SecretStr | None,
    project_id: str | None,
) -> httpx.Response | FlowCompleted:
    """Send the stream request with retries, without blocking the event loop."""
    http = client._get_async_client()
    if access_token is not None:
        call.secret = _plain(access_token)
    attempt = 0
    refreshed = False
    while True:
        attempt += 1
        request = client._build_request(
            http, call, accept=EVENT_STREAM, access_token=access_token, project_id=project_id
        )
        try:
            response = await http.send(request, stream=True, follow_redirects=False)
        except httpx.HTTPError as http_error:
            error, sent = client._transport_error(call, http_error, attempt)
            wait = client._after_failure(call, error, attempt, sent)
            if wait is None:
                raise error from None
            await asyncio.sleep(wait)
            continue
        except asyncio.CancelledError:
            await reclaim_cancelled_connections(http, request)
            raise

        if _is_event_stream(response):
            logger.debug(
                "Lamatic %s for %s: HTTP %d, event stream opened",
                call.operation,
                call.target,
                response.status_code,
            )
            return response

        try:
            body = await response.aread()
        except httpx.HTTPError as http_error:
            error, _ = client._transport_error(call, http_error, attempt)
            wait = client._after_failure(call, error, attempt, True)
            if wait is None:
                raise error from None
            await asyncio.sleep(wait)
            continue
        except asyncio.CancelledError:
            await response.aclose()
            await reclaim_cancelled_connections(http, request)
            raise
        finally:
            await response.aclose()

        try:
            value = client._classify(call, response, body, attempt)
        except LamaticError as error:
            if client._wants_token_refresh(error, refreshed, access_token):
                refreshed = True
                client.update_access_token(await client._call_token_provider_async())
                logger.info("Refreshed the Lamatic access token after HTTP %s", error.status_code)
                attempt -= 1
                continue
            wait = client._after_failure(call, error, attempt, True)
            if wait is None:
                raise
            await asyncio.sleep(wait)
            continue
        return _completed_from_json(client, call, value)


async def aiter_flow_events(
    client: LamaticClient,
    call: _Call,
    *,
    fallback: _Call | None,
    access_token: str | SecretStr | None,
    project_id: str | None,
) -> AsyncGenerator[FlowEvent, None]:
    """Yield the events of one streamed run; see `LamaticClient.astream_flow`."""
    try:
        opened = await _open_async(client, call, access_token=access_token, project_id=project_id)
    except LamaticError as error:
        if fallback is None or not is_streaming_unsupported(error):
            raise
        logger.info(
            "Lamatic flow %s cannot stream (%s); running it with executeWorkflow instead",
            call.target,
            type(error).__name__,
        )
        data = await client._asend(fallback, access_token=access_token, project_id=project_id)
        yield _completed_from_response(client._execution_response(fallback, data), streamed=False)
        return

    if isinstance(opened, FlowCompleted):
        yield opened
        return

    response = opened
    decoder = _decoder_for(client, call, response)
    drain_started: float | None = None
    try:
        try:
            async for chunk in response.aiter_bytes():
                if _drain_took_too_long(call, drain_started):
                    break
                for event in _checked(decoder.feed(chunk)):
                    yield event
                if decoder.finished and drain_started is None:
                    drain_started = time.monotonic()
            for event in _checked(decoder.close()):
                yield event
        except httpx.HTTPError as http_error:
            if decoder.finished:
                _log_failure_after_finish(call, http_error)
                return
            raise _broken_stream_error(client, call, decoder, http_error) from http_error
        except asyncio.CancelledError:
            await response.aclose()
            await reclaim_cancelled_connections(client._get_async_client(), response.request)
            raise
    finally:
        await response.aclose()
