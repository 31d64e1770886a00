r"""``LamaticToolkit``: a set of Lamatic flow and agent tools that share one client.

A toolkit is built from definitions, in code or from a JSON manifest file::

    {
      "tools": [
        {"kind": "flow", "id": "plan-trip", "name": "plan_trip",
         "description": "Plan a trip to a city.",
         "schema": "{\\"city\\": \\"string\\", \\"days\\": \\"int\\"}",
         "output_key": "summary"},
        {"kind": "flow", "id": "article-summariser", "input_names": ["url"]},
        {"kind": "agent", "id": "research-agent"}
      ]
    }

A manifest may also be the bare list. ``example_manifest_path()`` is the manifest of the
flows that ``langchain_lamatic.testing.add_demo_flows`` registers.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from langchain_core.tools import BaseTool, BaseToolkit
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from typing_extensions import Self

from langchain_lamatic._polling import DEFAULT_POLL_DEADLINE, DEFAULT_POLL_INTERVAL
from langchain_lamatic._settings import check_setting_names
from langchain_lamatic.client import DEFAULT_TIMEOUT, LamaticClient
from langchain_lamatic.runnables import _reject_settings_beside_client
from langchain_lamatic.tools import (
    DEFAULT_MAX_CONTENT_CHARS,
    DEFAULT_TOOL_ERROR_TYPES,
    LamaticAgentTool,
    LamaticFlowTool,
    unique_tool_names,
)

if sys.version_info >= (3, 11):
    from importlib.resources.abc import Traversable
else:
    from importlib.abc import Traversable

__all__ = [
    "LamaticToolDefinition",
    "LamaticToolkit",
    "example_manifest_path",
    "load_manifest",
]


class LamaticToolDefinition(BaseModel):
    """One flow or agent of a toolkit, as written in a manifest.

    Attributes:
        kind: ``"flow"`` or ``"agent"``.
        id: the flow's or agent's id from Lamatic Studio.
        name: the tool name; defaults to the id. It is sanitised and made unique in the toolkit.
        description: what the tool does, for the model; defaults to one built from the id
            and the arguments.
        args_schema: the input schema (key ``schema`` in a manifest): an ``advance_schema``
            string, a JSON Schema or short-form dict, or, in code, a pydantic model class.
        input_names: input names of a flow whose API trigger has an empty schema.
        input_key: name of the single string argument when there is neither a schema nor
            input names; ``"prompt"`` by default, ``"chatMessage"`` for chat-trigger flows.
        output_key: the result key whose value the model receives; the whole result by default.
    """

    model_config = ConfigDict(
        extra="forbid", populate_by_name=True, frozen=True, arbitrary_types_allowed=True
    )

    kind: Literal["flow", "agent"] = "flow"
    id: str = Field(min_length=1)
    name: str | None = None
    description: str | None = None
    args_schema: str | dict[str, Any] | type[BaseModel] | None = Field(default=None, alias="schema")
    input_names: list[str] | None = None
    input_key: str | None = None
    output_key: str | None = None

    @field_validator("id")
    @classmethod
    def _check_id(cls, value: str) -> str:
        if not value.strip():
            raise ValueError(
                "id must not be blank; copy the flow's or agent's id from Lamatic Studio"
            )
        return value


class LamaticToolkit(BaseToolkit):
    """Lamatic flows and agents as tools for one agent, sharing one ``LamaticClient``.

    Each definition becomes a ``LamaticFlowTool`` or ``LamaticAgentTool``. Tool names are
    sanitised and then made unique in definition order (``search``, ``search_2``...).

    Connection settings are those of ``LamaticClient``, with the same environment
    fallbacks, or a shared ``client=``.

    Example:
        .. code-block:: python

            from langchain_lamatic import LamaticToolkit

            toolkit = LamaticToolkit.from_manifest("lamatic_tools.json")
            agent = create_agent(model, toolkit.get_tools())

    Args:
        definitions: the flows and agents, as ``LamaticToolDefinition`` or dicts of the
            manifest shape.
        client: a shared client; when given, the connection settings must keep their defaults.
        max_content_chars: cap on each tool's content; ``None`` sends everything.
        tool_error_types: errors that reach the model as an error ``ToolMessage``.

    Raises:
        ValueError: a definition is invalid, or a connection setting is missing or in conflict.
    """

    definitions: list[LamaticToolDefinition]
    """The flows and agents of the toolkit, in the order of ``get_tools()``."""
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
    """Seconds between ``checkStatus`` polls while an async flow runs."""
    poll_deadline: float | None = Field(default=DEFAULT_POLL_DEADLINE, gt=0)
    """Seconds to wait for an async flow before raising ``LamaticTimeoutError``; None waits
    without a limit."""
    max_content_chars: int | None = DEFAULT_MAX_CONTENT_CHARS
    """Cap on the characters of each tool's content; ``None`` sends everything."""
    tool_error_types: tuple[type[Exception], ...] = DEFAULT_TOOL_ERROR_TYPES
    """Errors that reach the calling model as an error ``ToolMessage``. Others raise."""

    # A misspelled setting such as ``tiemout=`` raises instead of being dropped, and no
    # validation error shows its input, which may hold a credential.
    model_config = ConfigDict(
        arbitrary_types_allowed=True, extra="forbid", hide_input_in_errors=True
    )

    @model_validator(mode="before")
    @classmethod
    def _check_setting_names(cls, values: Any) -> Any:
        check_setting_names(cls, values)
        return values

    _client: LamaticClient = PrivateAttr()
    _tools: list[LamaticFlowTool | LamaticAgentTool] = PrivateAttr()

    @model_validator(mode="after")
    def _build_tools(self) -> Self:
        if self.client is not None:
            _reject_settings_beside_client(self)
            self._client = self.client
        else:
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

        names = unique_tool_names(
            definition.name or definition.id for definition in self.definitions
        )
        self._tools = [
            self._build_tool(definition, name)
            for definition, name in zip(self.definitions, names, strict=True)
        ]
        return self

    def _build_tool(
        self, definition: LamaticToolDefinition, name: str
    ) -> LamaticFlowTool | LamaticAgentTool:
        settings: dict[str, Any] = {
            "name": name,
            "description": definition.description,
            "args_schema": definition.args_schema,
            "input_names": definition.input_names,
            "output_key": definition.output_key,
            "client": self._client,
            "max_content_chars": self.max_content_chars,
            "tool_error_types": self.tool_error_types,
            "poll_interval": self.poll_interval,
            "poll_deadline": self.poll_deadline,
        }
        if definition.input_key is not None:
            settings["input_key"] = definition.input_key
        try:
            if definition.kind == "agent":
                return LamaticAgentTool(agent_id=definition.id, **settings)
            return LamaticFlowTool(flow_id=definition.id, **settings)
        except (ValueError, TypeError) as error:
            raise ValueError(
                f"The toolkit definition of {definition.kind} {definition.id!r} is invalid: {error}"
            ) from error

    def __getstate__(self) -> dict[Any, Any]:
        # Pickles carry no credential: the copy reads it from the environment, as an
        # unpickled LamaticClient does.
        state = super().__getstate__()
        fields = dict(state.get("__dict__", {}))
        fields["api_key"] = None
        fields["access_token"] = None
        return {**state, "__dict__": fields}

    @property
    def lamatic_client(self) -> LamaticClient:
        """The ``LamaticClient`` that every tool of the toolkit sends its requests through."""
        return self._client

    def get_tools(self) -> list[BaseTool]:
        """Return the toolkit's tools, one per definition, in definition order."""
        return list(self._tools)

    @classmethod
    def from_manifest(
        cls, path: str | os.PathLike[str] | Traversable, **kwargs: Any
    ) -> LamaticToolkit:
        """Build a toolkit from a JSON manifest file.

        Args:
            path: the manifest file.
            **kwargs: the other fields of ``LamaticToolkit``, such as ``client`` or
                ``max_content_chars``.

        Raises:
            OSError: the file cannot be read.
            ValueError: the file is not valid JSON or does not have the manifest shape; the
                message names the file and the first invalid entry.
        """
        return cls(definitions=load_manifest(path), **kwargs)


def load_manifest(path: str | os.PathLike[str] | Traversable) -> list[LamaticToolDefinition]:
    """Read and validate a manifest file: ``{"tools": [...]}`` or a bare list.

    Raises:
        OSError: the file cannot be read.
        ValueError: the file is not valid JSON or does not have the manifest shape.
    """
    source = path if isinstance(path, Traversable) else Path(path)
    # utf-8-sig also accepts the byte order mark that some Windows editors write.
    try:
        text = source.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise ValueError(
            f"The Lamatic tool manifest {path} is not UTF-8 text: {error}; save it as UTF-8."
        ) from None
    try:
        document = json.loads(text)
    except ValueError as error:
        raise ValueError(f"The Lamatic tool manifest {path} is not valid JSON: {error}") from None

    if isinstance(document, Mapping):
        unknown = sorted(set(document) - {"tools", "description"})
        if unknown or "tools" not in document:
            raise ValueError(
                f"The Lamatic tool manifest {path} must be a list of tool definitions or an "
                f'object with a "tools" list (and optionally "description"); got keys '
                f"{sorted(document)}"
            )
        entries = document["tools"]
    else:
        entries = document
    if not isinstance(entries, list):
        raise ValueError(
            f"The tool definitions in the Lamatic tool manifest {path} must be a list, "
            f"got {type(entries).__name__}"
        )

    definitions = []
    for index, entry in enumerate(entries):
        try:
            definitions.append(LamaticToolDefinition.model_validate(entry))
        except ValidationError as error:
            raise ValueError(
                f"Entry {index} of the Lamatic tool manifest {path} is invalid: "
                f"{_first_error(error)}"
            ) from None
    return definitions


def example_manifest_path() -> Traversable:
    """Return the example manifest for the demo flows of ``LamaticTestServer``."""
    return resources.files("langchain_lamatic") / "examples" / "agentkit_manifest.json"


def _first_error(error: ValidationError) -> str:
    first = error.errors(include_url=False)[0]
    location = ".".join(str(part) for part in first.get("loc", ())) or "entry"
    return f"{location}: {first.get('msg', 'invalid')} ({error.error_count()} error(s) in all)"
