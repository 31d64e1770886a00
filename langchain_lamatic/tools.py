"""``LamaticFlowTool`` and ``LamaticAgentTool``: Lamatic flows and agents as LangChain tools.

A tool validates the model's arguments against its input schema before any request. It runs
the flow or agent as a traced child run of the tool run and returns ``(content, artifact)``,
which is text for the model and the full result for the application.

Failures split in two:

- The flow or agent ran and failed (``LamaticExecutionError``), Lamatic rejected the
  arguments (``LamaticBadRequestError``), or the arguments do not match the schema (pydantic
  ``ValidationError``): the calling model receives an error ``ToolMessage`` it can act on, and
  the agent continues.
- Every other error (authentication, permission, not found, connection, timeout, rate limit,
  server, response) raises to the application.

``tool_error_types``, ``handle_tool_error`` and ``handle_validation_error`` change the split.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from typing import Any, ClassVar, Literal

from langchain_core.callbacks import (
    AsyncCallbackManagerForToolRun,
    CallbackManagerForToolRun,
)
from langchain_core.runnables import RunnableConfig
from langchain_core.runnables.config import ensure_config, patch_config
from langchain_core.tools import BaseTool, ToolException
from langchain_core.tools.base import ArgsSchema, ToolExceptionHandlerOutput
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)
from pydantic.v1 import ValidationError as ValidationErrorV1
from typing_extensions import Self

from langchain_lamatic._polling import DEFAULT_POLL_DEADLINE, DEFAULT_POLL_INTERVAL
from langchain_lamatic._settings import (
    ENDPOINT_ENV,
    PROJECT_ID_ENV,
    check_setting_names,
    resolve_credential,
)
from langchain_lamatic.client import LamaticClient
from langchain_lamatic.errors import (
    LamaticBadRequestError,
    LamaticError,
    LamaticExecutionError,
    LamaticResponseError,
)
from langchain_lamatic.runnables import (
    LamaticAgent,
    LamaticFlow,
    _getenv,
    _LamaticRunnable,
    _reject_settings_beside_client,
)
from langchain_lamatic.schema import (
    model_from_input_names,
    payload_from_model,
    schema_to_model,
    single_input_model,
)

__all__ = [
    "DEFAULT_MAX_CONTENT_CHARS",
    "DEFAULT_TOOL_ERROR_TYPES",
    "TOOL_NAME_PATTERN",
    "LamaticAgentTool",
    "LamaticFlowTool",
    "LamaticToolError",
    "describe_validation_error",
    "sanitise_tool_name",
    "unique_tool_names",
]

logger = logging.getLogger(__name__)

TOOL_NAME_PATTERN = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
"""Tool names that OpenAI, Anthropic and the Gemini API all accept.

NOTE: Vertex AI function declarations also require the first character to be a letter or
``_``, which this pattern does not check. For Vertex AI, give a flow whose id starts with a
digit or ``-`` an explicit ``name`` that starts with a letter.
"""

MAX_TOOL_NAME_LENGTH = 64

DEFAULT_MAX_CONTENT_CHARS = 4000
"""Default cap on the characters of text a tool returns to the model."""

DEFAULT_TOOL_ERROR_TYPES: tuple[type[LamaticError], ...] = (
    LamaticExecutionError,
    LamaticBadRequestError,
)
"""Lamatic errors that reach the calling model as an error ``ToolMessage``. Others raise."""

# The smallest max_content_chars that still leaves room for the truncation notice and text.
_MIN_CONTENT_CHARS = 200
_HASH_CHARS = 8
# Latin letters that Unicode does not decompose into an ASCII letter and a mark.
_TRANSLITERATION = str.maketrans(
    {
        "ß": "ss",
        "Æ": "AE",
        "æ": "ae",
        "Œ": "OE",
        "œ": "oe",
        "Ø": "O",
        "ø": "o",
        "Ł": "L",
        "ł": "l",
        "Đ": "D",
        "đ": "d",
        "Þ": "Th",
        "þ": "th",
        "\u0131": "i",  # dotless i
    }
)
_PAYLOAD_ARGUMENT = "lamatic_payload"
_VALIDATION_ERRORS_SHOWN = 5
_VALUE_PREVIEW_CHARS = 80


# --- Tool names ----------------------------------------------------------------------------


def _short_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:_HASH_CHARS]


def sanitise_tool_name(name: str, *, fallback: str = "lamatic_tool") -> str:
    """Turn a flow or agent name into a tool name that matches ``^[a-zA-Z0-9_-]{1,64}$``.

    Accented letters lose their accents (``é`` becomes ``e``, ``ß`` becomes ``ss``).
    Characters with no ASCII form, such as letters of non-Latin scripts and emoji, are
    dropped. Other characters outside the pattern, such as spaces, dots and slashes, become
    ``_``, and runs of them collapse to one. A name longer than 64 characters is cut and ends
    in ``_`` and 8 hex digits of the SHA-256 of the original name. So two long names that
    share a prefix stay distinct, and a name always maps to the same tool name. A name with
    nothing left becomes ``fallback``, followed by the same hash when the original was not
    empty.

    Args:
        name: the name to sanitise, for example a flow's display name or id.
        fallback: the name used when nothing of ``name`` survives; it must itself be valid.

    Returns:
        A valid tool name; a valid ``name`` is returned unchanged.

    Raises:
        ValueError: ``fallback`` does not match the pattern.
    """
    if not TOOL_NAME_PATTERN.fullmatch(fallback) or len(fallback) > MAX_TOOL_NAME_LENGTH - 9:
        raise ValueError(
            f"fallback must match {TOOL_NAME_PATTERN.pattern} and leave room for a 9-character "
            f"suffix, got {fallback!r}"
        )
    if TOOL_NAME_PATTERN.fullmatch(name):
        return name

    decomposed = unicodedata.normalize("NFKD", name.translate(_TRANSLITERATION))
    ascii_text = decomposed.encode("ascii", "ignore").decode("ascii")
    cleaned = re.sub(r"[^a-zA-Z0-9_-]+", "_", ascii_text).strip("_")
    if not cleaned.strip("-"):
        return f"{fallback}_{_short_hash(name)}" if name.strip() else fallback
    if len(cleaned) > MAX_TOOL_NAME_LENGTH:
        head = cleaned[: MAX_TOOL_NAME_LENGTH - _HASH_CHARS - 1].rstrip("_-")
        cleaned = f"{head}_{_short_hash(name)}"
    return cleaned


def unique_tool_names(names: Iterable[str]) -> list[str]:
    """Sanitise ``names`` and make them unique, keeping the order and the first of each.

    A repeated name gets ``_2``, ``_3`` and so on, cut from the end of the name when needed to
    stay within 64 characters, so ``["search", "search", "search_2"]`` becomes
    ``["search", "search_2", "search_2_2"]``.
    """
    result: list[str] = []
    taken: set[str] = set()
    for raw in names:
        name = sanitise_tool_name(raw)
        candidate = name
        counter = 2
        while candidate in taken:
            suffix = f"_{counter}"
            candidate = name[: MAX_TOOL_NAME_LENGTH - len(suffix)] + suffix
            counter += 1
        taken.add(candidate)
        result.append(candidate)
    return result


# --- Errors --------------------------------------------------------------------------------


class LamaticToolError(ToolException):
    """A flow or agent failed in a way the calling model can act on.

    With the default ``handle_tool_error=True`` its message becomes the content of an error
    ``ToolMessage``. The original ``LamaticError`` is ``__cause__`` and ``lamatic_error``.

    Attributes:
        tool_name: the tool that failed.
        flow_id: the flow's id, for a flow tool.
        agent_id: the agent's id, for an agent tool.
        request_id: Lamatic's request id of the failed execution, when it sent one.
        lamatic_error: the error the tool caught.
    """

    def __init__(
        self,
        message: str,
        *,
        tool_name: str,
        flow_id: str | None = None,
        agent_id: str | None = None,
        request_id: str | None = None,
        lamatic_error: LamaticError | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.tool_name = tool_name
        self.flow_id = flow_id
        self.agent_id = agent_id
        self.request_id = request_id
        self.lamatic_error = lamatic_error

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_tool_error, (self.message, self._fields()))

    def _fields(self) -> dict[str, Any]:
        return {
            "tool_name": self.tool_name,
            "flow_id": self.flow_id,
            "agent_id": self.agent_id,
            "request_id": self.request_id,
            "lamatic_error": self.lamatic_error,
        }


def _rebuild_tool_error(message: str, fields: dict[str, Any]) -> LamaticToolError:
    return LamaticToolError(message, **fields)


def _model_message(error: LamaticError, kind: str) -> str:
    """Write the text that the calling model receives for an error it can act on."""
    reason = error.message.rstrip(". ")
    if isinstance(error, LamaticExecutionError):
        return (
            f"Error: {reason}. The {kind} ran and failed; check the arguments, because the same "
            "call will likely fail the same way."
        )
    if isinstance(error, LamaticBadRequestError):
        return (
            f"Error: {reason}. Lamatic rejected the arguments; fix them to match the tool's "
            "schema and call the tool again."
        )
    return f"Error: {reason}."


def describe_validation_error(error: ValidationError | ValidationErrorV1) -> str:
    """Describe invalid tool arguments so the calling model can correct them.

    The default ``handle_validation_error`` of Lamatic tools. It names each invalid argument,
    the problem and a short preview of the value given, up to five of them.
    """
    if isinstance(error, ValidationError):
        details = error.errors(include_url=False)
    else:
        details = error.errors()  # type: ignore[assignment]
    parts = []
    for detail in details[:_VALIDATION_ERRORS_SHOWN]:
        location = ".".join(str(part) for part in detail.get("loc", ())) or "arguments"
        part = f"{location}: {detail.get('msg', 'invalid value')}"
        if detail.get("type") != "missing" and "input" in detail:
            preview = repr(detail["input"])
            if len(preview) > _VALUE_PREVIEW_CHARS:
                preview = preview[:_VALUE_PREVIEW_CHARS] + "..."
            part += f" (got {preview})"
        parts.append(part)
    if len(details) > _VALIDATION_ERRORS_SHOWN:
        parts.append(f"and {len(details) - _VALIDATION_ERRORS_SHOWN} more")
    return (
        "Error: invalid tool arguments: "
        + "; ".join(parts)
        + ". Call the tool again with arguments that match its schema."
    )


# --- The tools -----------------------------------------------------------------------------


class _LamaticTool(BaseTool):
    """Settings, schema resolution, output formatting and error mapping of Lamatic tools."""

    # A misspelled setting such as ``tiemout=`` raises instead of being dropped, and no
    # validation error shows its input, which may hold a credential.
    model_config = ConfigDict(
        arbitrary_types_allowed=True, extra="forbid", hide_input_in_errors=True
    )

    endpoint: str | None = None
    """GraphQL URL of the project; falls back to ``LAMATIC_ENDPOINT``."""
    project_id: str | None = None
    """Project id sent as ``x-project-id``; falls back to ``LAMATIC_PROJECT_ID``."""
    api_key: SecretStr | None = None
    """Project API key; falls back to ``LAMATIC_API_KEY``."""
    access_token: SecretStr | None = None
    """HS256 access token; falls back to ``LAMATIC_ACCESS_TOKEN``."""
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
    poll_interval: float = Field(default=DEFAULT_POLL_INTERVAL, gt=0, allow_inf_nan=False)
    """Seconds between ``checkStatus`` polls while an async flow runs; see ``LamaticFlow``."""
    poll_deadline: float | None = Field(default=DEFAULT_POLL_DEADLINE, gt=0)
    """Seconds to wait for an async flow before raising ``LamaticTimeoutError``; None waits
    without a limit."""

    input_key: str = "prompt"
    """Name of the single string argument of a tool built without a schema or input names."""
    input_names: list[str] | None = None
    """Input names of a flow whose API trigger has an empty schema; each becomes a string."""
    output_key: str | None = None
    """Result key whose value is the model's content; ``None`` sends the whole result as JSON."""
    max_content_chars: int | None = DEFAULT_MAX_CONTENT_CHARS
    """Cap on the content's characters, notice included; ``None`` sends everything."""
    tool_error_types: tuple[type[Exception], ...] = DEFAULT_TOOL_ERROR_TYPES
    """Errors turned into ``LamaticToolError``, which reaches the model. Others raise."""

    response_format: Literal["content", "content_and_artifact"] = "content_and_artifact"
    """``content_and_artifact``: text for the model and the full result as the artifact."""
    handle_tool_error: bool | str | Callable[[ToolException], ToolExceptionHandlerOutput] | None = (
        True
    )
    """``True``: a ``LamaticToolError`` becomes an error ``ToolMessage``; ``False`` raises it."""
    handle_validation_error: (
        bool | str | Callable[[ValidationError | ValidationErrorV1], str] | None
    ) = describe_validation_error
    """Invalid arguments become an error ``ToolMessage`` naming each problem; ``False`` raises."""

    _runnable: _LamaticRunnable = PrivateAttr()
    # The args_schema argument when the model class was generated from it, for pickling.
    _schema_source: Any = PrivateAttr(default=None)
    _schema_generated: bool = PrivateAttr(default=False)
    _kind: ClassVar[Literal["flow", "agent"]] = "flow"
    _id_field: ClassVar[str] = "flow_id"
    _runnable_class: ClassVar[type[_LamaticRunnable]] = LamaticFlow

    def __init__(self, **kwargs: Any) -> None:
        # BaseTool rejects an args_schema that is neither a pydantic class nor a dict before
        # any validator runs, so the schema is converted here.
        given_schema = kwargs.get("args_schema")
        super().__init__(**self._prepare_arguments(kwargs))
        if not (isinstance(given_schema, type) and issubclass(given_schema, BaseModel)):
            self._schema_source = given_schema
            self._schema_generated = True

    def __getstate__(self) -> dict[Any, Any]:
        # Pickles carry no credential: the copy reads it from the environment, as an
        # unpickled LamaticClient does. A generated schema class cannot be pickled by
        # reference, so the copy rebuilds it from its source.
        state = super().__getstate__()
        fields = dict(state.get("__dict__", {}))
        fields["api_key"] = None
        fields["access_token"] = None
        if self._schema_generated:
            fields["args_schema"] = None
        return {**state, "__dict__": fields}

    def __setstate__(self, state: dict[Any, Any]) -> None:
        super().__setstate__(state)
        if self._schema_generated:
            self.args_schema = self._build_args_schema(self._schema_source)

    def _build_args_schema(self, source: Any) -> type[BaseModel]:
        return _resolve_args_schema(
            source,
            input_names=self.input_names,
            input_key=self.input_key,
            model_name=_model_name(self.name),
            target=f"{self._kind} {self._target_id!r}",
        )

    @classmethod
    def _prepare_arguments(cls, kwargs: dict[str, Any]) -> dict[str, Any]:
        target_id = kwargs.get(cls._id_field)
        if isinstance(target_id, str) and not target_id.strip():
            # Pydantic accepts a blank str and reports only the missing name and description.
            raise ValueError(
                f"{cls._id_field} must not be empty; copy the {cls._kind}'s id from Lamatic Studio"
            )
        if not isinstance(target_id, str):
            # Leave the error to pydantic's field validation, which names the field.
            return kwargs
        kwargs = dict(kwargs)

        given_name = kwargs.get("name")
        if given_name is not None and not isinstance(given_name, str):
            raise TypeError(f"name must be a str, got {type(given_name).__name__}")
        name = sanitise_tool_name(given_name or target_id, fallback=f"lamatic_{cls._kind}")
        if given_name and name != given_name:
            logger.debug("Lamatic tool name %r was sanitised to %r", given_name, name)
        kwargs["name"] = name

        kwargs["args_schema"] = _resolve_args_schema(
            kwargs.get("args_schema"),
            input_names=kwargs.get("input_names"),
            input_key=kwargs.get("input_key") or "prompt",
            model_name=_model_name(name),
            target=f"{cls._kind} {target_id!r}",
        )
        if not kwargs.get("description"):
            kwargs["description"] = _default_description(
                cls._kind, target_id, kwargs["args_schema"], kwargs.get("output_key")
            )
        return kwargs

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

    @field_validator("max_content_chars")
    @classmethod
    def _check_max_content_chars(cls, value: int | None) -> int | None:
        if value is not None and value < _MIN_CONTENT_CHARS:
            raise ValueError(
                f"max_content_chars must be at least {_MIN_CONTENT_CHARS} or None (no cap), "
                f"got {value}"
            )
        return value

    @model_validator(mode="after")
    def _build_runnable(self) -> Self:
        target: dict[str, Any] = {self._id_field: self._target_id}
        if self.client is not None:
            _reject_settings_beside_client(self)
            self._runnable = self._runnable_class(
                **target,
                client=self.client,
                input_key=self.input_key,
                poll_interval=self.poll_interval,
                poll_deadline=self.poll_deadline,
            )
            return self
        self._runnable = self._runnable_class(
            **target,
            endpoint=self.endpoint,
            project_id=self.project_id,
            api_key=self.api_key,
            access_token=self.access_token,
            timeout=self.timeout,
            max_retries=self.max_retries,
            allow_insecure_http=self.allow_insecure_http,
            bypass_cache=self.bypass_cache,
            input_key=self.input_key,
            poll_interval=self.poll_interval,
            poll_deadline=self.poll_deadline,
        )
        return self

    @classmethod
    def _from_runnable(cls, runnable: _LamaticRunnable, kwargs: dict[str, Any]) -> Self:
        if not isinstance(runnable, cls._runnable_class):
            raise TypeError(
                f"{cls.__name__}.from_runnable() needs a {cls._runnable_class.__name__}, "
                f"got {type(runnable).__name__}"
            )
        settings = {
            "input_key": runnable.input_key,
            "output_key": runnable.output_key,
            "poll_interval": runnable.poll_interval,
            "poll_deadline": runnable.poll_deadline,
            **kwargs,
        }
        if settings.get("name") is None and runnable.name:
            settings["name"] = runnable.name
        tool = cls(
            **{cls._id_field: getattr(runnable, cls._id_field)},
            client=runnable.lamatic_client,
            **settings,
        )
        # Run a copy of the given runnable, so settings it has beyond the tool's fields apply,
        # but return its whole result: the tool picks output_key itself and keeps the rest.
        tool._runnable = runnable.model_copy(update={"output_key": None, "result_model": None})
        return tool

    # --- Properties --------------------------------------------------------------------------

    @property
    def _target_id(self) -> str:
        value: str = getattr(self, self._id_field)
        return value

    @property
    def lamatic_client(self) -> LamaticClient:
        """The ``LamaticClient`` that sends this tool's requests."""
        return self._runnable.lamatic_client

    @property
    def tool_call_schema(self) -> ArgsSchema:
        """The argument schema sent to the model, a subclass of ``args_schema`` with the tool name.

        ``BaseTool`` builds a new model from the schema's fields instead, which drops field
        aliases and model settings such as ``extra="forbid"``, so inputs named ``class`` or
        ``my-key`` would reach the model as ``class_`` and ``my_key``.
        """
        memo = self._tool_call_schema_memo
        if memo is not None:
            return memo
        schema = self.args_schema
        if not isinstance(schema, type) or not issubclass(schema, BaseModel):
            return super().tool_call_schema
        named: type[BaseModel] = create_model(self.name, __base__=schema, __doc__=self.description)
        self._tool_call_schema_memo = named
        return named

    # --- Running -----------------------------------------------------------------------------

    def _parse_input(
        self, tool_input: str | dict[str, Any], tool_call_id: str | None
    ) -> str | dict[str, Any]:
        """Validate the arguments and turn them into the flow's payload.

        Unlike ``BaseTool``, which passes optional arguments the model left out as their
        defaults, this leaves them out of the payload. A string input goes to the argument
        named ``input_key`` when there is one, otherwise to the first argument.

        Raises:
            pydantic.ValidationError: the arguments do not match ``args_schema``.
        """
        schema = self.args_schema
        if not isinstance(schema, type) or not issubclass(schema, BaseModel):
            raise TypeError(
                f"args_schema of tool {self.name!r} must be a pydantic model class; build the "
                "tool again with the schema instead of assigning args_schema afterwards"
            )
        if isinstance(tool_input, str):
            tool_input = {_string_argument(schema, self.input_key): tool_input}
        instance = schema.model_validate(tool_input)
        return {_PAYLOAD_ARGUMENT: payload_from_model(instance)}

    def _run(
        self,
        lamatic_payload: dict[str, Any],
        run_manager: CallbackManagerForToolRun | None = None,
    ) -> Any:
        config = self._child_config(run_manager)
        try:
            result = self._runnable.invoke(lamatic_payload, config)
        except self.tool_error_types as error:
            raise self._tool_error(error) from error
        return self._format_output(result)

    async def _arun(
        self,
        lamatic_payload: dict[str, Any],
        run_manager: AsyncCallbackManagerForToolRun | None = None,
    ) -> Any:
        config = self._child_config(run_manager)
        try:
            result = await self._runnable.ainvoke(lamatic_payload, config)
        except self.tool_error_types as error:
            raise self._tool_error(error) from error
        return self._format_output(result)

    def _child_config(
        self, run_manager: CallbackManagerForToolRun | AsyncCallbackManagerForToolRun | None
    ) -> RunnableConfig:
        # ensure_config() returns the tool run's config (BaseTool sets it as the context of
        # _run and _arun), which carries configurable, tags and metadata. Its callbacks are
        # replaced by the tool run's child manager, so the Lamatic run nests under the tool.
        config = ensure_config()
        if run_manager is None:
            return config
        return patch_config(config, callbacks=run_manager.get_child())

    def _tool_error(self, error: Exception) -> LamaticToolError:
        if isinstance(error, LamaticError):
            message = _model_message(error, self._kind)
            request_id = error.request_id
        else:
            message = f"Error: Lamatic {self._kind} {self._target_id!r} failed: {error}."
            request_id = None
        logger.info(
            "Lamatic %s %s failed with %s (request id %s); the calling model receives the error",
            self._kind,
            self._target_id,
            type(error).__name__,
            request_id,
        )
        return LamaticToolError(
            message,
            tool_name=self.name,
            flow_id=self._target_id if self._kind == "flow" else None,
            agent_id=self._target_id if self._kind == "agent" else None,
            request_id=request_id,
            lamatic_error=error if isinstance(error, LamaticError) else None,
        )

    def _format_output(self, result: Any) -> Any:
        content = self._content(result)
        if self.response_format == "content":
            return content
        artifact = result if result is not None else {}
        return content, artifact

    def _content(self, result: Any) -> str:
        """Build the model's text: the ``output_key`` value or the whole result, capped.

        Raises:
            LamaticResponseError: ``output_key`` is set and the result has no such key.
        """
        value = result
        if self.output_key is not None:
            if not isinstance(result, Mapping) or self.output_key not in result:
                present = sorted(result) if isinstance(result, Mapping) else type(result).__name__
                raise LamaticResponseError(
                    f"The result of Lamatic {self._kind} {self._target_id!r} has no key "
                    f"{self.output_key!r}; it has {present}. Fix output_key of tool "
                    f"{self.name!r} to one of them.",
                    flow_id=self._target_id if self._kind == "flow" else None,
                    agent_id=self._target_id if self._kind == "agent" else None,
                    # The class hint blames the endpoint, but the response itself was valid.
                    hint="",
                )
            value = result[self.output_key]
        text = value if isinstance(value, str) else _compact_json(value)
        return _cap(text, self.max_content_chars)


class LamaticFlowTool(_LamaticTool):
    """A deployed Lamatic flow as a LangChain tool.

    The model calls it with arguments that match ``args_schema``. They are validated before
    any request, and optional arguments the model left out are not sent. The tool returns
    ``(content, artifact)``. ``content`` is the ``output_key`` value of the result, or the
    whole result as compact JSON, cut to ``max_content_chars`` characters with a notice.
    ``artifact`` is the whole result, or ``{}`` when the flow returned ``null``.

    ``args_schema`` may be a pydantic model, a JSON Schema dict, or the flow's
    ``advance_schema`` string (``{"city": "string", "days": "int", "note": "string?"}``).
    A flow whose API trigger has an empty schema gets one string argument per entry of
    ``input_names``, or a single string argument named ``input_key``.

    The name defaults to the flow id and is sanitised to ``^[a-zA-Z0-9_-]{1,64}$``; the
    description defaults to one built from the flow id and its arguments.

    A failed run (``LamaticExecutionError``), a rejected payload (``LamaticBadRequestError``)
    and invalid arguments reach the model as an error ``ToolMessage``; other errors raise.
    Per call, ``config["configurable"]`` may carry ``lamatic_access_token`` (a ``SecretStr``)
    and ``lamatic_project_id``. Each call runs ``LamaticFlow:<flow_id>`` as a child run of
    the tool run.

    Example:
        .. code-block:: python

            from langchain_lamatic import LamaticClient, LamaticFlowTool

            client = LamaticClient()
            plan_trip = LamaticFlowTool(
                flow_id="plan-trip",
                description="Plan a trip: day-by-day itinerary and budget for a city.",
                args_schema='{"city": "string", "days": "int", "budget": "int", '
                '"preferences": "string", "travelDate": "string"}',
                output_key="summary",
                client=client,
            )
            message = plan_trip.invoke(
                {"type": "tool_call", "id": "1", "name": "plan-trip",
                 "args": {"city": "Lisbon", "days": 3, "budget": 900,
                          "preferences": "food", "travelDate": "2027-04-10"}}
            )
            message.content   # the summary, for the model
            message.artifact  # the whole result

    Raises:
        ValueError: at construction, for a missing or conflicting setting or an invalid schema.
        LamaticError: when called, for errors outside ``tool_error_types``.
    """

    flow_id: str
    """The flow's id from Lamatic Studio."""

    _kind: ClassVar[Literal["flow", "agent"]] = "flow"
    _id_field: ClassVar[str] = "flow_id"
    _runnable_class: ClassVar[type[_LamaticRunnable]] = LamaticFlow

    @classmethod
    def from_runnable(cls, flow: LamaticFlow, **kwargs: Any) -> LamaticFlowTool:
        """Build a tool that runs ``flow``, sharing its client and settings.

        ``input_key`` and ``output_key`` default to the flow's, and ``name`` to the flow's
        ``name`` or id. The flow's ``result_model`` is not applied: the artifact is the whole
        result.

        Args:
            flow: the configured flow.
            **kwargs: any other tool field, such as ``name``, ``description``, ``args_schema``
                or ``max_content_chars``; connection settings are not allowed.

        Raises:
            TypeError: ``flow`` is not a ``LamaticFlow``.
        """
        return cls._from_runnable(flow, kwargs)


class LamaticAgentTool(_LamaticTool):
    """A deployed Lamatic agent as a LangChain tool; behaves as ``LamaticFlowTool`` does.

    Each call runs ``LamaticAgent:<agent_id>`` as a child run of the tool run. Without a
    schema the agent takes one string argument named ``input_key`` (default ``"prompt"``).
    """

    agent_id: str
    """The agent's id from Lamatic Studio."""

    _kind: ClassVar[Literal["flow", "agent"]] = "agent"
    _id_field: ClassVar[str] = "agent_id"
    _runnable_class: ClassVar[type[_LamaticRunnable]] = LamaticAgent

    @classmethod
    def from_runnable(cls, agent: LamaticAgent, **kwargs: Any) -> LamaticAgentTool:
        """Build a tool that runs ``agent``, sharing its client; see ``LamaticFlowTool``.

        Raises:
            TypeError: ``agent`` is not a ``LamaticAgent``.
        """
        return cls._from_runnable(agent, kwargs)


# --- Schemas, descriptions and output formatting -------------------------------------------


def _resolve_args_schema(
    schema: Any,
    *,
    input_names: Any,
    input_key: str,
    model_name: str,
    target: str,
) -> type[BaseModel]:
    """Turn the ``args_schema`` argument into a pydantic model class.

    Raises:
        ValueError: the schema cannot be converted, or it conflicts with ``input_names``.
        TypeError: the schema has a type that is not supported.
    """
    if isinstance(schema, type) and issubclass(schema, BaseModel):
        if input_names:
            raise ValueError(
                f"Pass either args_schema or input_names for {target}, not both; input_names "
                "is for flows whose API trigger has an empty schema."
            )
        return schema
    if schema is not None and not isinstance(schema, (str, Mapping)):
        raise TypeError(
            f"args_schema for {target} must be a pydantic model class, a JSON Schema dict or "
            f"an advance_schema string, got {type(schema).__name__}"
        )

    is_empty = schema is None or (isinstance(schema, str) and not schema.strip()) or schema == {}
    if not is_empty:
        if input_names:
            raise ValueError(
                f"Pass either args_schema or input_names for {target}, not both; input_names "
                "is for flows whose API trigger has an empty schema."
            )
        return schema_to_model(schema, model_name=model_name)
    if input_names:
        if isinstance(input_names, str) or not all(isinstance(n, str) for n in input_names):
            raise TypeError(f"input_names for {target} must be a list of str")
        return model_from_input_names(list(input_names), model_name=model_name)
    return single_input_model(input_key, model_name=model_name)


def _model_name(tool_name: str) -> str:
    words = re.split(r"[^a-zA-Z0-9]+", tool_name)
    camel = "".join(word[:1].upper() + word[1:] for word in words if word)
    if not camel or camel[0].isdigit():
        camel = f"Lamatic{camel}"
    return f"{camel}Input"


def _default_description(
    kind: str, target_id: str, schema: type[BaseModel], output_key: Any
) -> str:
    returns = f"its {output_key!r} output" if isinstance(output_key, str) else "its result as JSON"
    text = f"Run the Lamatic {kind} {target_id!r} and return {returns}."
    try:
        json_schema = schema.model_json_schema()
    except Exception:
        # A user's model may hold types without a JSON Schema; name the arguments only.
        names = [field.alias or name for name, field in schema.model_fields.items()]
        return text + (" Arguments: " + ", ".join(names) + "." if names else "")

    # A model that refers to itself is emitted as a $ref into $defs, with no properties.
    json_schema = _resolve_top_level_ref(json_schema)
    properties = json_schema.get("properties", {})
    required = set(json_schema.get("required", []))
    arguments = [
        f"{key} ({_describe_property(spec)}{'' if key in required else ', optional'})"
        for key, spec in properties.items()
    ]
    if arguments:
        return text + " Arguments: " + ", ".join(arguments) + "."
    return text + " It takes no arguments."


def _resolve_top_level_ref(json_schema: dict[str, Any]) -> dict[str, Any]:
    reference = json_schema.get("$ref")
    if "properties" in json_schema or not isinstance(reference, str):
        return json_schema
    target = json_schema.get("$defs", {}).get(reference.rsplit("/", 1)[-1])
    return target if isinstance(target, dict) else json_schema


def _describe_property(spec: Any) -> str:
    """Describe a JSON Schema property in a few words: its type, enum values or union."""
    if not isinstance(spec, Mapping):
        return "any value"
    if isinstance(spec.get("enum"), list):
        return "one of " + ", ".join(json.dumps(value) for value in spec["enum"])
    kind = spec.get("type")
    if isinstance(kind, str):
        return kind
    if isinstance(kind, list):
        return " or ".join(str(item) for item in kind if item != "null")
    members = spec.get("anyOf") or spec.get("oneOf")
    if isinstance(members, list):
        described = [
            _describe_property(member)
            for member in members
            if not (isinstance(member, Mapping) and member.get("type") == "null")
        ]
        return " or ".join(dict.fromkeys(described)) or "any value"
    if "$ref" in spec or "properties" in spec:
        return "object"
    return "any value"


def _string_argument(schema: type[BaseModel], input_key: str) -> str:
    keys = [field.alias or name for name, field in schema.model_fields.items()]
    if input_key in keys or not keys:
        return input_key
    return keys[0]


def _compact_json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def _cap(text: str, limit: int | None) -> str:
    if limit is None or len(text) <= limit:
        return text
    total = len(text)
    notice = f"\n[truncated: the first {{kept}} of {total} characters are shown]"
    kept = limit - len(notice.format(kept=limit))
    return text[:kept] + notice.format(kept=kept)
