"""Server-Sent Events for `subscription executeWorkflowWithStream`.

A streamed execution is sent as events of the form
`data: {"data": {"executeWorkflowWithStream": <chunk>}}`, each followed by a blank line. The
order is:

1. the trigger node's completion frame;
2. the token frames of the streaming node,
   `{"status": "streaming", "nodeId": ..., "data": {"generatedResponse": <delta>}}`;
3. that node's completion frame, which repeats the whole text and carries token counts and
   cost under `_meta`;
4. a final frame with `isFlowExecutionFinished: true`, an empty `nodeId` and the flow output
   as `data`.

`StreamOptions` adds the irregularities seen in the wild.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["StreamEvent", "StreamOptions", "StreamPlan", "build_stream_plan", "first_string_value"]

TRIGGER_NODE_ID = "triggerNode_1"

# Price per token used for the `_meta.cost` of the streaming node; an arbitrary test value.
_COST_PER_TOKEN = 0.000002


@dataclass(frozen=True)
class StreamOptions:
    """Stream settings of a flow: the generated text, its token frames and wire quirks.

    Attributes:
        text: Function of the payload returning the text the streaming node generates. When
            None, the text is the first string value at the top level of the handler's result.
        tokens: Whether the flow has a streaming node at all. False sends only the trigger
            node's frame and the final frame, as a flow without an LLM node does.
        node_id: The streaming node's id in token frames and its completion frame.
        token_size: Characters per token frame; the deltas concatenate to the whole text.
        frame_delay: Seconds to wait before each event after the first.
        crlf: End lines with CRLF instead of LF.
        keep_alive: Send `: keep-alive` comment lines before the first frame and before the
            streaming node's completion frame.
        null_chunks: Send frames whose chunk is `null` after the trigger frame and before the
            final frame.
        done_marker: Send `data: [DONE]` after the final frame.
        repeat_text: Whether the streaming node's completion frame repeats the whole text under
            `data.generatedResponse` (the real service does).
        cut_after: End the stream after this many `data:` frames, before the final frame.
        cut_abruptly: With `cut_after`, close the connection without ending the chunked body,
            so the client sees a transport error instead of a cleanly ended stream.
        error: Send an error frame (`status: "error"`, `data: {"errorMsg": error}`) after the
            token frames instead of the completion and final frames.
    """

    text: Callable[[dict[str, Any]], str] | None = None
    tokens: bool = True
    node_id: str = "LLMNode_1"
    token_size: int = 4
    frame_delay: float = 0.0
    crlf: bool = False
    keep_alive: bool = False
    null_chunks: bool = False
    done_marker: bool = False
    repeat_text: bool = True
    cut_after: int | None = None
    cut_abruptly: bool = False
    error: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.token_size, bool) or not isinstance(self.token_size, int):
            raise ValueError(f"token_size must be an int >= 1, got {self.token_size!r}")
        if self.token_size < 1:
            raise ValueError(f"token_size must be an int >= 1, got {self.token_size!r}")
        if not math.isfinite(self.frame_delay) or self.frame_delay < 0:
            raise ValueError(
                f"frame_delay must be a finite number of seconds >= 0, got {self.frame_delay!r}"
            )
        if self.cut_after is not None and (
            isinstance(self.cut_after, bool)
            or not isinstance(self.cut_after, int)
            or self.cut_after < 0
        ):
            raise ValueError(f"cut_after must be None or an int >= 0, got {self.cut_after!r}")
        if self.cut_abruptly and self.cut_after is None:
            raise ValueError("cut_abruptly needs cut_after, the number of frames to send first")
        if not self.node_id:
            raise ValueError("node_id must be a non-empty string")


@dataclass(frozen=True)
class StreamEvent:
    """One SSE event as sent on the wire, and whether it is a `data:` frame."""

    text: str
    is_data: bool


@dataclass(frozen=True)
class StreamPlan:
    """Every event of a stream, and whether the connection is closed abruptly at the end."""

    events: tuple[StreamEvent, ...]
    abort: bool


def first_string_value(result: Mapping[str, Any]) -> str:
    """Return the first top-level string value of a result, or "" when it has none."""
    for value in result.values():
        if isinstance(value, str):
            return value
    return ""


def _split(text: str, size: int) -> list[str]:
    return [text[start : start + size] for start in range(0, len(text), size)]


def _estimate_tokens(text: str) -> int:
    # About four characters per token, the usual rule of thumb for English text.
    return max(1, math.ceil(len(text) / 4))


class _Writer:
    def __init__(self, options: StreamOptions) -> None:
        self._newline = "\r\n" if options.crlf else "\n"
        self.events: list[StreamEvent] = []

    def data(self, chunk: Any) -> None:
        body = json.dumps(
            {"data": {"executeWorkflowWithStream": chunk}},
            separators=(",", ":"),
            ensure_ascii=False,
        )
        self.events.append(StreamEvent(f"data: {body}{self._newline}{self._newline}", True))

    def comment(self, text: str) -> None:
        self.events.append(StreamEvent(f": {text}{self._newline}{self._newline}", False))

    def raw(self, text: str) -> None:
        self.events.append(StreamEvent(f"data: {text}{self._newline}{self._newline}", True))


def build_stream_plan(
    options: StreamOptions,
    payload: dict[str, Any],
    result: dict[str, Any] | None,
    failure: str | None,
) -> StreamPlan:
    """Build every event of one streamed execution.

    Args:
        options: The flow's stream options.
        payload: The validated payload; the trigger frame's `data`.
        result: The handler's result, or None when it failed.
        failure: The failure message when the handler raised `FlowExecutionFailed`.

    Returns:
        The events in order, already cut and terminated as `options` ask.
    """
    writer = _Writer(options)
    if options.keep_alive:
        writer.comment("keep-alive")
    writer.data(
        {
            "status": "success",
            "nodeId": TRIGGER_NODE_ID,
            "data": payload,
            "isNodeExecutionFinished": True,
            "isFlowExecutionFinished": False,
        }
    )
    if options.null_chunks:
        writer.data(None)

    if result is None:
        writer.data(
            {"status": "error", "nodeId": options.node_id, "data": {"errorMsg": failure or ""}}
        )
        return _finish(options, writer, finished=False)

    text = ""
    if options.tokens:
        text = options.text(payload) if options.text is not None else first_string_value(result)
    deltas = _split(text, options.token_size)
    for delta in deltas:
        writer.data(
            {"status": "streaming", "nodeId": options.node_id, "data": {"generatedResponse": delta}}
        )

    if options.error is not None:
        writer.data(
            {"status": "error", "nodeId": options.node_id, "data": {"errorMsg": options.error}}
        )
        return _finish(options, writer, finished=False)

    if options.tokens:
        if options.keep_alive:
            writer.comment("keep-alive")
        prompt_tokens = _estimate_tokens(json.dumps(payload))
        completion_tokens = len(deltas)
        total_tokens = prompt_tokens + completion_tokens
        node_data: dict[str, Any] = {}
        if options.repeat_text:
            node_data["generatedResponse"] = text
        node_data["_meta"] = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": total_tokens,
            "cost": round(total_tokens * _COST_PER_TOKEN, 8),
        }
        writer.data(
            {
                "status": "success",
                "nodeId": options.node_id,
                "data": node_data,
                "isNodeExecutionFinished": True,
                "isFlowExecutionFinished": False,
            }
        )

    if options.null_chunks:
        writer.data(None)
    writer.data(
        {
            "status": "success",
            "nodeId": "",
            "data": result,
            "isNodeExecutionFinished": True,
            "isFlowExecutionFinished": True,
        }
    )
    return _finish(options, writer, finished=True)


def _finish(options: StreamOptions, writer: _Writer, *, finished: bool) -> StreamPlan:
    events = writer.events
    if options.cut_after is not None:
        kept: list[StreamEvent] = []
        data_frames = 0
        for event in events:
            if event.is_data:
                if data_frames == options.cut_after:
                    break
                data_frames += 1
            kept.append(event)
        if len(kept) < len(events):
            return StreamPlan(tuple(kept), abort=options.cut_abruptly)
    if finished and options.done_marker:
        writer.raw("[DONE]")
    return StreamPlan(tuple(writer.events), abort=False)
