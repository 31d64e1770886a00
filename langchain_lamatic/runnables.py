"""``LamaticFlow`` and ``LamaticAgent``: Lamatic executions as LangChain runnables."""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from langchain_core.callbacks import (
    AsyncCallbackManagerForChainRun,
    CallbackManagerForChainRun,
    adispatch_custom_event,
    dispatch_custom_event,
)
from langchain_core.messages import BaseMessage
from langchain_core.prompt_values import PromptValue
from langchain_core.runnables import RunnableConfig, RunnableSerializable
from langchain_core.runnables.config import (
    ensure_config,
    get_async_callback_manager_for_config,
    patch_config,
    set_config_context,
)
from langchain_core.runnables.utils import coro_with_context
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    model_validator,
)
from typing_extensions import Self

from langchain_lamatic._polling import (
    DEFAULT_POLL_DEADLINE,
    DEFAULT_POLL_INTERVAL,
    PollProgress,
    check_poll_deadline,
    pending_request_id,
)
from langchain_lamatic._settings import (
    ACCESS_TOKEN_ENV,
    API_KEY_ENV,
    ENDPOINT_ENV,
    PROJECT_ID_ENV,
    check_setting_names,
    resolve_credential,
)
from langchain_lamatic.client import DEFAULT_TIMEOUT, LamaticClient, LamaticResponse
from langchain_lamatic.errors import LamaticResponseError
from langchain_lamatic.streaming import FlowCompleted, NodeCompleted, TextDelta

if TYPE_CHECKING:
    from langchain_lamatic.tools import LamaticAgentTool, LamaticFlowTool

__all__ = [
    "CONFIG_ACCESS_TOKEN",
    "CONFIG_PROJECT_ID",
    "FLOW_COMPLETED_EVENT",
    "NODE_COMPLETED_EVENT",
    "POLL_EVENT",
    "LamaticAgent",
    "LamaticFlow",
]

logger = logging.getLogger(__name__)

CONFIG_ACCESS_TOKEN = "lamatic_access_token"  # noqa: S105
"""``config["configurable"]`` key: a ``SecretStr`` access token that replaces the credential."""

CONFIG_PROJECT_ID = "lamatic_project_id"
"""``config["configurable"]`` key: a project id that replaces the configured one."""

POLL_EVENT = "lamatic_poll"
"""Custom event sent after each ``checkStatus`` poll of an async run; its data is
``PollProgress.to_dict()``: request_id, attempt, elapsed, status, next_poll_in and the id."""

NODE_COMPLETED_EVENT = "lamatic_node_completed"
"""Custom event sent when a node of a streamed flow finishes; data: flow_id, node_id, output,
metadata."""

FLOW_COMPLETED_EVENT = "lamatic_flow_completed"
"""Custom event sent when a streamed flow finishes; data: flow_id, output (the whole output
object), text (rebuilt from the deltas) and metadata."""


def _per_call_overrides(config: RunnableConfig) -> dict[str, Any]:
    """Read the per-call credential overrides from ``config["configurable"]``.

    Raises:
        TypeError: the access token is not a ``SecretStr``. LangChain copies plain string
            values of ``configurable`` into tracing metadata, so a plain token would leak.
    """
    configurable = config.get("configurable") or {}
    overrides: dict[str, Any] = {}
    token = configurable.get(CONFIG_ACCESS_TOKEN)
    if token is not None:
        if not isinstance(token, SecretStr):
            raise TypeError(
                f'config["configurable"]["{CONFIG_ACCESS_TOKEN}"] must be a pydantic SecretStr, '
                f"got {type(token).__name__}. LangChain copies plain strings from configurable "
                "into tracing metadata, so wrap the token: SecretStr(token)."
            )
        if not token.get_secret_value().strip():
            raise ValueError(
                f'config["configurable"]["{CONFIG_ACCESS_TOKEN}"] is empty; pass the caller\'s '
                "access token, or leave the key out to use the configured credential"
            )
        overrides["access_token"] = token
    project_id = configurable.get(CONFIG_PROJECT_ID)
    if project_id is not None:
        if not isinstance(project_id, str) or not project_id.strip():
            raise TypeError(
                f'config["configurable"]["{CONFIG_PROJECT_ID}"] must be a non-empty str, '
                f"got {project_id!r}"
            )
        overrides["project_id"] = project_id
    return overrides


_CONNECTION_SETTINGS = (
    "endpoint",
    "project_id",
    "api_key",
    "access_token",
    "timeout",
    "max_retries",
    "allow_insecure_http",
    "bypass_cache",
)
"""The fields of flows, agents, tools and toolkits that configure their own LamaticClient."""


def _reject_settings_beside_client(model: BaseModel) -> None:
    """Raise ValueError naming the connection settings set beside ``client=``.

    The client would ignore them. A setting counts only when its value differs from the
    field's default: LangChain's ``configurable_fields`` rebuilds an object by passing every
    field again, so ``model_fields_set`` cannot tell a setting from a copied default.
    """
    fields = type(model).model_fields
    given = [
        name
        for name in _CONNECTION_SETTINGS
        if getattr(model, name) != fields[name].get_default(call_default_factory=True)
    ]
    if given:
        raise ValueError(
            f"Pass either client= or connection settings, not both (also got {given}). "
            "Set them on the LamaticClient instead, or leave them at their defaults."
        )


class _LamaticRunnable(RunnableSerializable[Any, Any]):
    """Shared settings, input coercion and output selection of flows and agents."""

    endpoint: str | None = None
    """GraphQL URL of the project; falls back to ``LAMATIC_ENDPOINT``."""
    project_id: str | None = None
    """Project id sent as ``x-project-id``; falls back to ``LAMATIC_PROJECT_ID``."""
    api_key: SecretStr | None = None
    """Project API key; falls back to ``LAMATIC_API_KEY``."""
    access_token: SecretStr | None = None
    """HS256 access token; falls back to ``LAMATIC_ACCESS_TOKEN``."""
    input_key: str = "prompt"
    """Payload key that a string, message or prompt value input is sent under."""
    output_key: str | None = None
    """Return only this key of the result, instead of the whole result object."""
    result_model: type[BaseModel] | None = Field(default=None, exclude=True)
    """Validate the result (or the ``output_key`` value) into this pydantic model."""
    timeout: float | None = None
    """Seconds per attempt; ``None`` uses the client's default (10 s to connect, 330 s per read)."""
    max_retries: int = 2
    """Retries for failures that cannot have run the flow; see ``LamaticClient``."""
    allow_insecure_http: bool = False
    """Allow plain ``http://`` to a host that is not loopback."""
    bypass_cache: bool = False
    """Send ``X-Bypass-Cache: True`` so Lamatic skips its response cache."""
    client: LamaticClient | None = Field(default=None, exclude=True)
    """A shared client; when given, the connection settings above must keep their defaults."""
    wait_for_async_result: bool = True
    """Wait for async flows: when the execution returns a request id instead of a result,
    poll ``checkStatus`` until the run finishes and return its output. False returns
    ``{"requestId": ..., "status": ...}`` at once, for callers that poll themselves with
    ``LamaticClient.check_status``."""
    poll_interval: float = Field(default=DEFAULT_POLL_INTERVAL, gt=0, allow_inf_nan=False)
    """Seconds between ``checkStatus`` polls of an async run. Values under 3 are raised to 3,
    the limit in Lamatic's documentation, except for loopback endpoints such as a local test
    server."""
    poll_deadline: float | None = Field(default=DEFAULT_POLL_DEADLINE, gt=0)
    """Seconds to wait for an async run before raising ``LamaticTimeoutError`` with the
    request id; None waits without a limit."""

    # A misspelled setting such as ``tiemout=`` raises instead of being dropped, and no
    # validation error shows its input, which may hold a credential.
    model_config = ConfigDict(
        arbitrary_types_allowed=True, extra="forbid", hide_input_in_errors=True
    )

    _client: LamaticClient = PrivateAttr()
    _kind: ClassVar[str] = "flow"

    @model_validator(mode="before")
    @classmethod
    def _fill_from_environment(cls, values: Any) -> Any:
        check_setting_names(cls, values)
        if not isinstance(values, dict) or values.get("client") is not None:
            return values
        values = dict(values)
        for field, env in (("endpoint", ENDPOINT_ENV), ("project_id", PROJECT_ID_ENV)):
            if values.get(field) is None:
                values[field] = _getenv(env)
        if values.get("api_key") is None and values.get("access_token") is None:
            secret, kind = resolve_credential(None, None)
            values[kind] = secret
        return values

    @model_validator(mode="after")
    def _build_client(self) -> Self:
        if not self._target_id.strip():
            raise ValueError(
                f"{self._kind}_id must not be empty; copy it from the {self._kind}'s page in "
                "Lamatic Studio"
            )
        if self.client is not None:
            _reject_settings_beside_client(self)
            self._client = self.client
            return self
        self._client = LamaticClient(
            endpoint=self.endpoint,
            project_id=self.project_id,
            api_key=self.api_key,
            access_token=self.access_token,
            timeout=self.timeout if self.timeout is not None else DEFAULT_TIMEOUT,
            max_retries=self.max_retries,
            allow_insecure_http=self.allow_insecure_http,
            bypass_cache=self.bypass_cache,
        )
        return self

    # --- Serialisation ----------------------------------------------------------------------

    @classmethod
    def is_lc_serializable(cls) -> bool:
        """Return True: flows and agents can be saved with ``langchain_core.load.dumpd``."""
        return True

    @property
    def lc_secrets(self) -> dict[str, str]:
        """Map the credential fields to their environment variables, so dumps contain no secret."""
        return {"api_key": API_KEY_ENV, "access_token": ACCESS_TOKEN_ENV}

    def __getstate__(self) -> dict[Any, Any]:
        # Pickles carry no credential; the unpickled copy reads it from the environment.
        state = super().__getstate__()
        fields = dict(state.get("__dict__", {}))
        fields["api_key"] = None
        fields["access_token"] = None
        return {**state, "__dict__": fields}

    # --- Input and output -------------------------------------------------------------------

    @property
    def lamatic_client(self) -> LamaticClient:
        """The ``LamaticClient`` that sends this runnable's requests."""
        return self._client

    @property
    def _target_id(self) -> str:
        raise NotImplementedError

    def get_name(self, suffix: str | None = None, *, name: str | None = None) -> str:
        """Return the run name: the ``name`` field, or the class name and the id."""
        if name is None and self.name is None:
            name = f"{type(self).__name__}:{self._target_id}"
        return super().get_name(suffix, name=name)

    def _to_payload(self, value: Any) -> dict[str, Any]:
        """Turn a runnable input into the execution payload.

        Raises:
            TypeError: for an input type with no payload form.
        """
        if isinstance(value, Mapping):
            return dict(value)
        if isinstance(value, str):
            return {self.input_key: value}
        if isinstance(value, BaseMessage):
            return {self.input_key: value.text}
        if isinstance(value, PromptValue):
            return {self.input_key: value.to_string()}
        if isinstance(value, BaseModel):
            dumped: dict[str, Any] = value.model_dump(mode="json", by_alias=True)
            return dumped
        raise TypeError(
            f"{type(self).__name__} {self._target_id!r} accepts a dict payload, a str, a chat "
            f"message, a prompt value or a pydantic model, got {type(value).__name__}."
        )

    def _select_output(self, response: LamaticResponse) -> Any:
        """Apply ``output_key`` and ``result_model`` to a response.

        Raises:
            LamaticResponseError: the key is missing or the result does not fit the model.
        """
        output = response.result
        common: dict[str, Any] = {
            "status_code": response.status_code,
            "request_id": response.request_id,
            f"{self._kind}_id": self._target_id,
        }
        if self.output_key is not None:
            if not isinstance(output, Mapping) or self.output_key not in output:
                present = sorted(output) if isinstance(output, Mapping) else type(output).__name__
                raise LamaticResponseError(
                    f"The result of Lamatic {self._kind} {self._target_id!r} has no key "
                    f"{self.output_key!r}; it has {present}",
                    hint="Set output_key to one of the keys of the flow's API Response node",
                    **common,
                )
            output = output[self.output_key]
        if self.result_model is not None:
            try:
                output = self.result_model.model_validate(output)
            except ValidationError as error:
                raise LamaticResponseError(
                    f"The result of Lamatic {self._kind} {self._target_id!r} does not match "
                    f"{self.result_model.__name__}: {error.error_count()} validation error(s), "
                    f"first: {_first_validation_error(error)}",
                    hint="Make result_model match the keys and types of the flow's result",
                    **common,
                ) from error
        return output

    def _execute(self, payload: dict[str, Any], overrides: dict[str, Any]) -> LamaticResponse:
        raise NotImplementedError

    async def _aexecute(
        self, payload: dict[str, Any], overrides: dict[str, Any]
    ) -> LamaticResponse:
        raise NotImplementedError

    def invoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        """Run the flow or agent on ``input`` and return its output, as one traced run."""
        return self._call_with_config(self._invoke, input, self._run_config(config), **kwargs)

    async def ainvoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        """Run the flow or agent without blocking the event loop; see ``invoke``."""
        # The steps of Runnable._acall_with_config, which would also inspect _ainvoke's
        # signature twice and patch the config twice on every call. That is about a fifth of
        # the CPU time of a call (docs/benchmarks.md). The traced run is the same, which
        # tests/unit/test_tracing_parity.py checks against invoke.
        config = self._run_config(config)
        callback_manager = get_async_callback_manager_for_config(config)
        run_manager = await callback_manager.on_chain_start(
            None,
            input,
            name=config.get("run_name") or self.get_name(),
            run_id=config.pop("run_id", None),
        )
        try:
            child_config = patch_config(config, callbacks=run_manager.get_child())
            with set_config_context(child_config) as context:
                output = await coro_with_context(
                    self._ainvoke(input, run_manager, child_config, **kwargs), context
                )
        except BaseException as error:
            await run_manager.on_chain_error(error)
            raise
        await run_manager.on_chain_end(output)
        return output

    def _invoke(
        self, value: Any, run_manager: CallbackManagerForChainRun, config: RunnableConfig
    ) -> Any:
        payload = self._to_payload(value)
        overrides = _per_call_overrides(config)
        response = self._execute(payload, overrides)
        return self._finish(response, overrides, config)

    async def _ainvoke(
        self, value: Any, run_manager: AsyncCallbackManagerForChainRun, config: RunnableConfig
    ) -> Any:
        payload = self._to_payload(value)
        overrides = _per_call_overrides(config)
        response = await self._aexecute(payload, overrides)
        return await self._afinish(response, overrides, config)

    # --- Async runs -------------------------------------------------------------------------

    def _poll_settings(self, overrides: dict[str, Any]) -> dict[str, Any]:
        interval = self._client._effective_poll_interval(self.poll_interval)
        return {
            "interval": interval,
            "deadline": check_poll_deadline(self.poll_deadline, argument="poll_deadline"),
            # The run has only just started, so the first poll waits one interval too.
            "first_poll_after": interval,
            f"{self._kind}_id": self._target_id,
            **overrides,
        }

    def _finish(
        self, response: LamaticResponse, overrides: dict[str, Any], config: RunnableConfig
    ) -> Any:
        """Return the output for an execution's response, first waiting for an async run."""
        request_id = pending_request_id(
            response.status,
            response.result,
            response.request_id,
            **{f"{self._kind}_id": self._target_id},
        )
        if request_id is None:
            return self._select_output(response)
        if not self.wait_for_async_result:
            return {"requestId": request_id, "status": response.status}

        def report(progress: PollProgress) -> None:
            dispatch_custom_event(POLL_EVENT, progress.to_dict(), config=config)

        final = self._client._wait_for_status(
            request_id, on_poll=report, **self._poll_settings(overrides)
        )
        return self._select_output(final)

    async def _afinish(
        self, response: LamaticResponse, overrides: dict[str, Any], config: RunnableConfig
    ) -> Any:
        """Return the output for an execution's response, polling without blocking the loop."""
        request_id = pending_request_id(
            response.status,
            response.result,
            response.request_id,
            **{f"{self._kind}_id": self._target_id},
        )
        if request_id is None:
            return self._select_output(response)
        if not self.wait_for_async_result:
            return {"requestId": request_id, "status": response.status}

        async def report(progress: PollProgress) -> None:
            await adispatch_custom_event(POLL_EVENT, progress.to_dict(), config=config)

        final = await self._client._await_status(
            request_id, on_poll=report, **self._poll_settings(overrides)
        )
        return self._select_output(final)

    def _run_config(self, config: RunnableConfig | None) -> RunnableConfig:
        config = ensure_config(config)
        config["metadata"] = {
            **config.get("metadata", {}),
            f"lamatic_{self._kind}_id": self._target_id,
        }
        return config


class LamaticFlow(_LamaticRunnable):
    """A deployed Lamatic flow as a LangChain runnable.

    Input: a dict is the payload. A str becomes ``{input_key: text}``, and a chat message or
    a prompt value becomes its text under ``input_key``. A pydantic model is dumped to a dict.
    Output: the flow's result object, or one key of it (``output_key``), optionally
    validated into ``result_model``. Each call is one traced run named
    ``LamaticFlow:<flow_id>`` with ``lamatic_flow_id`` in its metadata.

    Connection settings are those of ``LamaticClient``, with the same environment
    fallbacks, or a shared ``client=``. Per call, ``config["configurable"]`` may carry
    ``lamatic_access_token`` (a ``SecretStr``) and ``lamatic_project_id``.

    Async flows behave like realtime ones. When the execution returns a request id,
    ``invoke`` polls ``checkStatus`` every ``poll_interval`` seconds until the run finishes
    and sends a ``lamatic_poll`` custom event after each poll. Once ``poll_deadline`` passes,
    it raises ``LamaticTimeoutError`` with the request id.

    ``stream`` and ``astream`` run the flow through ``executeWorkflowWithStream``:

    - Each text delta is yielded as a ``str`` as it arrives, so ``flow | StrOutputParser()``
      streams. When the output selected by ``output_key`` is a str that continues the
      streamed text, its remainder is yielded at the end. The chunks then join to what
      ``invoke`` returns. A selected output that is not a str is yielded as the last chunk.
    - Without ``output_key`` the chunks are the generated text only, and the whole output
      object arrives in the ``lamatic_flow_completed`` custom event.
    - A flow that generates no text, a server that cannot stream, ``result_model``, or
      ``streaming=False`` yields one chunk: what ``invoke`` returns.
    - Node completions arrive as ``lamatic_node_completed`` custom events, visible in
      ``astream_events(version="v2")``.

    Example:
        .. code-block:: python

            from langchain_core.output_parsers import StrOutputParser
            from langchain_lamatic import LamaticFlow

            summarise = LamaticFlow(flow_id="article-summariser", output_key="summary")
            chain = summarise | StrOutputParser()
            chain.invoke({"url": "https://example.org/post"})

    Raises:
        LamaticError: a subclass for each failure, see ``langchain_lamatic.errors``.
        TypeError: an input that has no payload form, before any request.
    """

    flow_id: str
    """The flow's id from Lamatic Studio."""
    streaming: bool = True
    """Run ``stream`` and ``astream`` through ``executeWorkflowWithStream``. False runs a
    normal execution and yields its output as one chunk."""

    _kind: ClassVar[str] = "flow"

    @property
    def _target_id(self) -> str:
        return self.flow_id

    def _execute(self, payload: dict[str, Any], overrides: dict[str, Any]) -> LamaticResponse:
        return self._client.execute_flow(self.flow_id, payload, **overrides)

    async def _aexecute(
        self, payload: dict[str, Any], overrides: dict[str, Any]
    ) -> LamaticResponse:
        return await self._client.aexecute_flow(self.flow_id, payload, **overrides)

    def as_lamatic_tool(self, **kwargs: Any) -> LamaticFlowTool:
        """Return this flow as a ``LamaticFlowTool`` sharing its client and settings.

        Keyword arguments (``name``, ``description``, ``args_schema``, ...) go to
        ``LamaticFlowTool.from_runnable``.
        """
        from langchain_lamatic.tools import LamaticFlowTool

        return LamaticFlowTool.from_runnable(self, **kwargs)

    # --- Streaming --------------------------------------------------------------------------

    def stream(
        self, input: Any, config: RunnableConfig | None = None, **kwargs: Any | None
    ) -> Iterator[Any]:
        """Run the flow and yield its text as it is generated, as one traced run.

        See the class docstring for what the chunks are. Breaking out of the loop closes the
        HTTP response.
        """
        yield from self._transform_stream_with_config(
            iter([input]), self._stream_chunks, self._run_config(config), **kwargs
        )

    async def astream(
        self, input: Any, config: RunnableConfig | None = None, **kwargs: Any | None
    ) -> AsyncIterator[Any]:
        """Run the flow and yield its text as it is generated, without blocking the loop.

        Cancelling the task closes the HTTP response at once.
        """

        async def single_input() -> AsyncIterator[Any]:
            yield input

        async for chunk in self._atransform_stream_with_config(
            single_input(), self._astream_chunks, self._run_config(config), **kwargs
        ):
            yield chunk

    def _stream_chunks(
        self,
        inputs: Iterator[Any],
        run_manager: CallbackManagerForChainRun,
        config: RunnableConfig,
    ) -> Iterator[Any]:
        payload = self._to_payload(_only_input(list(inputs)))
        overrides = _per_call_overrides(config)
        if not self.streaming:
            yield self._finish(self._execute(payload, overrides), overrides, config)
            return

        streamed: list[str] = []
        completed: FlowCompleted | None = None
        with self._client.stream_flow(
            self.flow_id, payload, fallback_to_execute=True, **overrides
        ) as events:
            for event in events:
                if isinstance(event, TextDelta):
                    if self.result_model is None:
                        streamed.append(event.text)
                        yield event.text
                elif isinstance(event, NodeCompleted):
                    dispatch_custom_event(
                        NODE_COMPLETED_EVENT, self._node_event(event), config=config
                    )
                else:
                    completed = event
        completed = self._check_completed(completed)
        dispatch_custom_event(FLOW_COMPLETED_EVENT, self._flow_event(completed), config=config)

        output = self._finish(_response_of(completed), overrides, config)
        yield from self._closing_chunks(output, streamed)

    async def _astream_chunks(
        self,
        inputs: AsyncIterator[Any],
        run_manager: AsyncCallbackManagerForChainRun,
        config: RunnableConfig,
    ) -> AsyncIterator[Any]:
        payload = self._to_payload(_only_input([value async for value in inputs]))
        overrides = _per_call_overrides(config)
        if not self.streaming:
            response = await self._aexecute(payload, overrides)
            yield await self._afinish(response, overrides, config)
            return

        streamed: list[str] = []
        completed: FlowCompleted | None = None
        async with self._client.astream_flow(
            self.flow_id, payload, fallback_to_execute=True, **overrides
        ) as events:
            async for event in events:
                if isinstance(event, TextDelta):
                    if self.result_model is None:
                        streamed.append(event.text)
                        yield event.text
                elif isinstance(event, NodeCompleted):
                    await adispatch_custom_event(
                        NODE_COMPLETED_EVENT, self._node_event(event), config=config
                    )
                else:
                    completed = event
        completed = self._check_completed(completed)
        await adispatch_custom_event(
            FLOW_COMPLETED_EVENT, self._flow_event(completed), config=config
        )

        output = await self._afinish(_response_of(completed), overrides, config)
        for chunk in self._closing_chunks(output, streamed):
            yield chunk

    def _node_event(self, event: NodeCompleted) -> dict[str, Any]:
        return {
            "flow_id": self.flow_id,
            "node_id": event.node_id,
            "output": event.output,
            "metadata": event.metadata,
        }

    def _flow_event(self, event: FlowCompleted) -> dict[str, Any]:
        return {
            "flow_id": self.flow_id,
            "output": event.output,
            "text": event.text,
            "metadata": event.metadata,
        }

    def _check_completed(self, completed: FlowCompleted | None) -> FlowCompleted:
        if completed is None:
            # stream_flow raises for a stream that ends early, so this means a defect.
            raise LamaticResponseError(
                f"The stream of Lamatic flow {self.flow_id!r} ended without a final event",
                flow_id=self.flow_id,
                operation="executeWorkflowWithStream",
            )
        return completed

    def _closing_chunks(self, output: Any, streamed: list[str]) -> list[Any]:
        """Return the chunks that follow the text deltas, given the flow's selected output."""
        if not streamed:
            return [output]
        text = "".join(streamed)
        if isinstance(output, str):
            if output.startswith(text):
                return [output[len(text) :]] if len(output) > len(text) else []
            # NOTE: the output differs from the streamed text (for example a template that
            # adds words around it), and str chunks cannot take text back. The streamed run
            # then ends on the generated text, while invoke returns the output and the
            # lamatic_flow_completed event carries it.
            logger.debug(
                "The output of Lamatic flow %r does not continue its streamed text; the stream "
                "ends on the text",
                self.flow_id,
            )
            return []
        if self.output_key is not None:
            return [output]
        return []


class LamaticAgent(_LamaticRunnable):
    """A deployed Lamatic agent as a LangChain runnable; behaves as ``LamaticFlow`` does.

    Each call is one traced run named ``LamaticAgent:<agent_id>`` with ``lamatic_agent_id``
    in its metadata.
    """

    agent_id: str
    """The agent's id from Lamatic Studio."""

    _kind: ClassVar[str] = "agent"

    @property
    def _target_id(self) -> str:
        return self.agent_id

    def _execute(self, payload: dict[str, Any], overrides: dict[str, Any]) -> LamaticResponse:
        return self._client.execute_agent(self.agent_id, payload, **overrides)

    async def _aexecute(
        self, payload: dict[str, Any], overrides: dict[str, Any]
    ) -> LamaticResponse:
        return await self._client.aexecute_agent(self.agent_id, payload, **overrides)

    def as_lamatic_tool(self, **kwargs: Any) -> LamaticAgentTool:
        """Return this agent as a ``LamaticAgentTool`` sharing its client and settings.

        Keyword arguments (``name``, ``description``, ``args_schema``, ...) go to
        ``LamaticAgentTool.from_runnable``.
        """
        from langchain_lamatic.tools import LamaticAgentTool

        return LamaticAgentTool.from_runnable(self, **kwargs)


def _only_input(values: list[Any]) -> Any:
    if len(values) != 1:
        raise ValueError(f"LamaticFlow streams one input at a time, got {len(values)}")
    return values[0]


def _response_of(completed: FlowCompleted) -> LamaticResponse:
    """Turn a stream's final event into the response an execution would have returned."""
    status = completed.metadata.get("status")
    request_id = completed.metadata.get("requestId")
    return LamaticResponse(
        status=status if isinstance(status, str) else "success",
        result=completed.output,
        request_id=request_id if isinstance(request_id, str) else None,
    )


def _getenv(name: str) -> str | None:
    return os.environ.get(name, "").strip() or None


def _first_validation_error(error: ValidationError) -> str:
    first = error.errors()[0]
    location = ".".join(str(part) for part in first.get("loc", ())) or "result"
    return f"{location}: {first.get('msg', 'invalid')}"
