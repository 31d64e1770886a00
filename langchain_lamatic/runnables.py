"""``LamaticFlow`` and ``LamaticAgent``: Lamatic executions as LangChain runnables."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, ClassVar

from langchain_core.callbacks import (
    AsyncCallbackManagerForChainRun,
    CallbackManagerForChainRun,
)
from langchain_core.messages import BaseMessage
from langchain_core.prompt_values import PromptValue
from langchain_core.runnables import RunnableConfig, RunnableSerializable
from langchain_core.runnables.config import ensure_config
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

from langchain_lamatic._settings import (
    ACCESS_TOKEN_ENV,
    API_KEY_ENV,
    ENDPOINT_ENV,
    PROJECT_ID_ENV,
    resolve_credential,
)
from langchain_lamatic.client import DEFAULT_TIMEOUT, LamaticClient, LamaticResponse
from langchain_lamatic.errors import LamaticResponseError

__all__ = ["CONFIG_ACCESS_TOKEN", "CONFIG_PROJECT_ID", "LamaticAgent", "LamaticFlow"]

CONFIG_ACCESS_TOKEN = "lamatic_access_token"  # noqa: S105
"""``config["configurable"]`` key: a ``SecretStr`` access token that replaces the credential."""

CONFIG_PROJECT_ID = "lamatic_project_id"
"""``config["configurable"]`` key: a project id that replaces the configured one."""


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
            raise ValueError(f'config["configurable"]["{CONFIG_ACCESS_TOKEN}"] is empty')
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
    """Seconds per attempt; ``None`` uses the client's default (10 s connect, 330 s total)."""
    max_retries: int = 2
    """Retries for failures that cannot have run the flow; see ``LamaticClient``."""
    allow_insecure_http: bool = False
    """Allow plain ``http://`` to a host that is not loopback."""
    bypass_cache: bool = False
    """Send ``X-Bypass-Cache: True`` so Lamatic skips its response cache."""
    client: LamaticClient | None = Field(default=None, exclude=True)
    """A shared client; when given, the connection settings above must not be."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    _client: LamaticClient = PrivateAttr()
    _kind: ClassVar[str] = "flow"

    @model_validator(mode="before")
    @classmethod
    def _fill_from_environment(cls, values: Any) -> Any:
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
        if self.client is not None:
            given = [
                name
                for name in ("endpoint", "project_id", "api_key", "access_token")
                if getattr(self, name) is not None
            ]
            if given:
                raise ValueError(
                    f"Pass either client= or connection settings, not both (also got {given})."
                )
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
        """Map the credential fields to their environment variables, so dumps hold no secret."""
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
                    f"{self.output_key!r}; it has {present}. Fix output_key to one of them.",
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
        return await self._acall_with_config(
            self._ainvoke, input, self._run_config(config), **kwargs
        )

    def _invoke(
        self, value: Any, run_manager: CallbackManagerForChainRun, config: RunnableConfig
    ) -> Any:
        payload = self._to_payload(value)
        response = self._execute(payload, _per_call_overrides(config))
        return self._select_output(response)

    async def _ainvoke(
        self, value: Any, run_manager: AsyncCallbackManagerForChainRun, config: RunnableConfig
    ) -> Any:
        payload = self._to_payload(value)
        response = await self._aexecute(payload, _per_call_overrides(config))
        return self._select_output(response)

    def _run_config(self, config: RunnableConfig | None) -> RunnableConfig:
        config = ensure_config(config)
        config["metadata"] = {
            **config.get("metadata", {}),
            f"lamatic_{self._kind}_id": self._target_id,
        }
        return config


class LamaticFlow(_LamaticRunnable):
    """A deployed Lamatic flow as a LangChain runnable.

    Input: a dict is the payload; a str becomes ``{input_key: text}``; a chat message or a
    prompt value becomes its text under ``input_key``; a pydantic model is dumped to a dict.
    Output: the flow's result object, or one key of it (``output_key``), optionally
    validated into ``result_model``. Each call is one traced run named
    ``LamaticFlow:<flow_id>`` with ``lamatic_flow_id`` in its metadata.

    Connection settings are those of ``LamaticClient``, with the same environment
    fallbacks, or a shared ``client=``. Per call, ``config["configurable"]`` may carry
    ``lamatic_access_token`` (a ``SecretStr``) and ``lamatic_project_id``.

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


def _getenv(name: str) -> str | None:
    return os.environ.get(name, "").strip() or None


def _first_validation_error(error: ValidationError) -> str:
    first = error.errors()[0]
    location = ".".join(str(part) for part in first.get("loc", ())) or "result"
    return f"{location}: {first.get('msg', 'invalid')}"
