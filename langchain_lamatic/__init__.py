"""LangChain integration for Lamatic AI: flows and agents as runnables and tools.

Start with ``LamaticFlow`` for a flow in a chain, ``LamaticClient`` for the transport on its
own, and ``langchain_lamatic.testing.LamaticTestServer`` for tests without the network.
"""

from langchain_lamatic._polling import (
    DEFAULT_POLL_DEADLINE,
    DEFAULT_POLL_INTERVAL,
    MIN_POLL_INTERVAL,
    PollProgress,
)
from langchain_lamatic._stream_client import AsyncFlowEventStream, FlowEventStream
from langchain_lamatic._version import __version__
from langchain_lamatic.auth import access_token_provider, create_access_token
from langchain_lamatic.client import DEFAULT_TIMEOUT, LamaticClient, LamaticResponse
from langchain_lamatic.errors import (
    RETRYABLE_ERRORS,
    LamaticAuthenticationError,
    LamaticBadRequestError,
    LamaticConnectionError,
    LamaticError,
    LamaticExecutionError,
    LamaticNotFoundError,
    LamaticPermissionError,
    LamaticRateLimitError,
    LamaticResponseError,
    LamaticServerError,
    LamaticTimeoutError,
)
from langchain_lamatic.runnables import (
    CONFIG_ACCESS_TOKEN,
    CONFIG_PROJECT_ID,
    FLOW_COMPLETED_EVENT,
    NODE_COMPLETED_EVENT,
    POLL_EVENT,
    LamaticAgent,
    LamaticFlow,
)
from langchain_lamatic.streaming import FlowCompleted, NodeCompleted, TextDelta
from langchain_lamatic.toolkit import LamaticToolDefinition, LamaticToolkit
from langchain_lamatic.tools import LamaticAgentTool, LamaticFlowTool, LamaticToolError

__all__ = [
    "CONFIG_ACCESS_TOKEN",
    "CONFIG_PROJECT_ID",
    "DEFAULT_POLL_DEADLINE",
    "DEFAULT_POLL_INTERVAL",
    "DEFAULT_TIMEOUT",
    "FLOW_COMPLETED_EVENT",
    "MIN_POLL_INTERVAL",
    "NODE_COMPLETED_EVENT",
    "POLL_EVENT",
    "RETRYABLE_ERRORS",
    "AsyncFlowEventStream",
    "FlowCompleted",
    "FlowEventStream",
    "LamaticAgent",
    "LamaticAgentTool",
    "LamaticAuthenticationError",
    "LamaticBadRequestError",
    "LamaticClient",
    "LamaticConnectionError",
    "LamaticError",
    "LamaticExecutionError",
    "LamaticFlow",
    "LamaticFlowTool",
    "LamaticNotFoundError",
    "LamaticPermissionError",
    "LamaticRateLimitError",
    "LamaticResponse",
    "LamaticResponseError",
    "LamaticServerError",
    "LamaticTimeoutError",
    "LamaticToolDefinition",
    "LamaticToolError",
    "LamaticToolkit",
    "NodeCompleted",
    "PollProgress",
    "TextDelta",
    "__version__",
    "access_token_provider",
    "create_access_token",
]
