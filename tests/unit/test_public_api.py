"""The public surface of ``langchain_lamatic``: names, versions and import-time dependencies."""

from __future__ import annotations

import importlib.metadata
import inspect
import subprocess
import sys
from pathlib import Path

import langchain_lamatic
from langchain_lamatic import errors

PUBLIC_NAMES = [
    "AsyncFlowEventStream",
    "CONFIG_ACCESS_TOKEN",
    "CONFIG_PROJECT_ID",
    "DEFAULT_POLL_DEADLINE",
    "DEFAULT_POLL_INTERVAL",
    "DEFAULT_TIMEOUT",
    "FLOW_COMPLETED_EVENT",
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
    "MIN_POLL_INTERVAL",
    "NODE_COMPLETED_EVENT",
    "NodeCompleted",
    "POLL_EVENT",
    "PollProgress",
    "RETRYABLE_ERRORS",
    "TextDelta",
    "__version__",
    "access_token_provider",
    "create_access_token",
]

ERROR_CLASS_NAMES = [
    "LamaticAuthenticationError",
    "LamaticBadRequestError",
    "LamaticConnectionError",
    "LamaticError",
    "LamaticExecutionError",
    "LamaticNotFoundError",
    "LamaticPermissionError",
    "LamaticRateLimitError",
    "LamaticResponseError",
    "LamaticServerError",
    "LamaticTimeoutError",
]


def test_all_is_pinned() -> None:
    assert sorted(langchain_lamatic.__all__) == sorted(PUBLIC_NAMES)


def test_all_has_no_duplicates() -> None:
    assert len(langchain_lamatic.__all__) == len(set(langchain_lamatic.__all__))


def test_every_public_name_resolves() -> None:
    missing = [name for name in PUBLIC_NAMES if not hasattr(langchain_lamatic, name)]
    assert missing == []


def test_star_import_gives_the_public_names() -> None:
    namespace: dict[str, object] = {}
    exec("from langchain_lamatic import *", namespace)  # noqa: S102
    assert set(PUBLIC_NAMES) <= set(namespace)


def test_error_classes_exported_twice() -> None:
    for name in ERROR_CLASS_NAMES:
        assert getattr(langchain_lamatic, name) is getattr(errors, name)
        assert name in errors.__all__


def test_public_classes_and_functions_have_docstrings() -> None:
    undocumented = [
        name
        for name in PUBLIC_NAMES
        if (inspect.isclass(obj := getattr(langchain_lamatic, name)) or inspect.isfunction(obj))
        and not inspect.getdoc(obj)
    ]
    assert undocumented == []


def test_version_matches_distribution_metadata() -> None:
    assert langchain_lamatic.__version__ == importlib.metadata.version("langchain-lamatic")


def test_package_is_typed() -> None:
    assert (Path(langchain_lamatic.__file__).parent / "py.typed").is_file()


def test_import_does_not_load_optional_dependencies() -> None:
    code = (
        "import sys, langchain_lamatic\n"
        "print(sorted(m for m in ('jwt', 'graphql') if m in sys.modules))"
    )
    result = subprocess.run(  # noqa: S603
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "[]"
