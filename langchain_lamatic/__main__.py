"""Command line: ``python -m langchain_lamatic demo`` and ``python -m langchain_lamatic run``."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from langchain_lamatic.client import LamaticClient
from langchain_lamatic.errors import LamaticError

EXIT_FAILED = 1
EXIT_USAGE = 2


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON; use null or a number")


def _parse_payload(text: str) -> dict[str, Any]:
    try:
        payload = json.loads(text, parse_constant=_reject_constant)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"--payload is not valid JSON: {error}") from None
    if not isinstance(payload, dict):
        raise argparse.ArgumentTypeError(
            f'--payload must be a JSON object such as \'{{"url": "..."}}\', '
            f"got {type(payload).__name__}"
        )
    return payload


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m langchain_lamatic",
        description="Run Lamatic flows from the command line, or a demo against a local server.",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser(
        "demo",
        help="run chains against the bundled local Lamatic server",
        description=(
            "Start the bundled local Lamatic server with flows shaped like public AgentKit "
            "flows, and run a chain, a typed result, a batch and a caught error against it."
        ),
    )
    demo.add_argument(
        "--quiet", action="store_true", help="print only the results, without explanations"
    )

    run = commands.add_parser(
        "run",
        help="execute a flow on the project configured in the environment",
        description=(
            "Execute a flow (or agent) on the project set by LAMATIC_ENDPOINT, "
            "LAMATIC_PROJECT_ID and LAMATIC_API_KEY or LAMATIC_ACCESS_TOKEN, and print the "
            "result as JSON. On failure it prints the error to stderr and exits with status 1."
        ),
    )
    run.add_argument("flow_id", metavar="FLOW_ID", help="the flow's id from Lamatic Studio")
    run.add_argument(
        "--payload",
        type=_parse_payload,
        default={},
        help="the flow's inputs as a JSON object (default: {})",
    )
    run.add_argument("--agent", action="store_true", help="FLOW_ID is an agent id")
    run.add_argument(
        "--allow-insecure-http",
        action="store_true",
        help="allow a plain http:// endpoint on a host that is not loopback",
    )
    run.add_argument(
        "--timeout",
        type=float,
        default=None,
        help=(
            "timeout in seconds for each read, write and pool wait of an attempt; connecting "
            "waits at most 10 s (default 330)"
        ),
    )
    run.add_argument(
        "--max-retries",
        type=int,
        default=2,
        help="maximum number of retries of failures that cannot have run the flow (default 2)",
    )
    return parser


def _run(arguments: argparse.Namespace) -> int:
    try:
        client_options: dict[str, Any] = {
            "max_retries": arguments.max_retries,
            "allow_insecure_http": arguments.allow_insecure_http,
        }
        if arguments.timeout is not None:
            client_options["timeout"] = arguments.timeout
        with LamaticClient(**client_options) as client:
            if arguments.agent:
                response = client.execute_agent(arguments.flow_id, arguments.payload)
            else:
                response = client.execute_flow(arguments.flow_id, arguments.payload)
    except (LamaticError, ValueError, TypeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_FAILED
    print(json.dumps(response.result, indent=2, ensure_ascii=False))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return the exit status."""
    arguments = _build_parser().parse_args(argv)
    if arguments.command == "run":
        return _run(arguments)
    from langchain_lamatic._demo import run_demo

    return run_demo(quiet=arguments.quiet)


if __name__ == "__main__":
    sys.exit(main())
