"""The demo behind ``python -m langchain_lamatic demo``: chains against a local Lamatic server."""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

from langchain_core.output_parsers import JsonOutputParser, StrOutputParser
from pydantic import BaseModel, Field

from langchain_lamatic.client import LamaticClient
from langchain_lamatic.errors import LamaticBadRequestError, LamaticError, LamaticNotFoundError
from langchain_lamatic.runnables import LamaticFlow


class HiringAssessment(BaseModel):
    """The nested result of the hiring-screener flow, validated on arrival."""

    score: int = Field(ge=0, le=100)
    strength: str
    weakness: str
    recommendation: str


def _credentials_configured() -> bool:
    has_credential = bool(
        os.environ.get("LAMATIC_API_KEY") or os.environ.get("LAMATIC_ACCESS_TOKEN")
    )
    return has_credential and bool(os.environ.get("LAMATIC_ENDPOINT"))


def _show(title: str, value: Any, *, quiet: bool, note: str = "") -> None:
    if not quiet:
        print(f"\n== {title}")
        if note:
            print(f"   {note}")
    text = value if isinstance(value, str) else json.dumps(value, indent=2, default=str)
    print(text)


def run_demo(*, quiet: bool = False) -> int:
    """Start the local server, run the demo steps against it, and return the exit status."""
    try:
        from langchain_lamatic.testing import LamaticTestServer, add_demo_flows
    except ImportError as error:
        print(
            f"error: the demo needs the local server's extra ({error}). Install it with: "
            "pip install 'langchain-lamatic[testing]'",
            file=sys.stderr,
        )
        return 1

    if _credentials_configured() and not quiet:
        print(
            "LAMATIC_ENDPOINT and a credential are set, but the demo's flow ids exist only on "
            "the local server, so the demo runs there. To run a flow of your own project: "
            "python -m langchain_lamatic run FLOW_ID --payload '{...}'"
        )

    started = time.perf_counter()
    with LamaticTestServer() as server:
        add_demo_flows(server)
        if not quiet:
            elapsed = time.perf_counter() - started
            print(f"Local Lamatic server at {server.endpoint} (started in {elapsed:.2f} s)")

        with LamaticClient(
            endpoint=server.endpoint, project_id=server.project_id, api_key=server.api_key
        ) as client:
            try:
                _run_steps(client, quiet=quiet)
            except LamaticError as error:
                print(f"error: the demo failed unexpectedly: {error}", file=sys.stderr)
                return 1
    return 0


def _run_steps(client: LamaticClient, *, quiet: bool) -> None:
    summarise = LamaticFlow(flow_id="article-summariser", client=client, output_key="summary")
    chain = summarise | StrOutputParser()
    _show(
        "A chain: LamaticFlow | StrOutputParser",
        chain.invoke({"url": "https://example.org/posts/why-queues-matter"}),
        quiet=quiet,
        note="article-summariser returns {'summary': ...}; output_key picks the text.",
    )

    docsense = LamaticFlow(flow_id="docsense-intake", client=client, output_key="result")
    _show(
        "JSON inside a Markdown fence: LamaticFlow | JsonOutputParser",
        (docsense | JsonOutputParser()).invoke(
            {"document": "Invoice 2291 from Northwind, due 2027-01-31, total 1,240.00 EUR"}
        ),
        quiet=quiet,
        note="docsense-intake returns ```json ... ```; the parser strips the fence.",
    )

    screener = LamaticFlow(
        flow_id="automation-hiring",
        client=client,
        output_key="output",
        result_model=HiringAssessment,
    )
    assessment = screener.invoke(
        {
            "name": "Ada Example",
            "email": "ada@example.org",
            "job_description": "Backend engineer, Python, queues",
            "resume_url": "https://example.org/cv/ada.pdf",
        }
    )
    _show(
        "A typed result: result_model=HiringAssessment",
        f"{type(assessment).__name__}(score={assessment.score}, "
        f"recommendation={assessment.recommendation!r})",
        quiet=quiet,
    )

    planner = LamaticFlow(flow_id="plan-trip", client=client, output_key="summary")
    trips = [
        {
            "city": city,
            "days": days,
            "budget": 900,
            "preferences": "food",
            "travelDate": "2027-04-10",
        }
        for city, days in (("Lisbon", 3), ("Kyoto", 5), ("Oaxaca", 4))
    ]
    _show(
        "A batch of three trips, at most two at a time",
        planner.batch(trips, config={"max_concurrency": 2}),
        quiet=quiet,
    )

    chunks = list(chain.stream({"url": "https://example.org/posts/why-queues-matter"}))
    _show(
        "Streaming: chain.stream() yields the text as the flow generates it",
        f"{len(chunks)} chunks: " + " | ".join(repr(chunk) for chunk in chunks[:6]) + " ...",
        quiet=quiet,
    )

    analyzer = LamaticFlow(
        flow_id="repo-analyzer", client=client, output_key="projectOverview", poll_interval=0.1
    )
    _show(
        "An async flow: invoke() polls checkStatus until the run finishes",
        analyzer.invoke(
            {"repo_url": "https://example.org/acme/ledger", "developer_role": "backend"}
        ),
        quiet=quiet,
        note="repo-analyzer returns a request id; the local server allows fast polling.",
    )

    try:
        planner.invoke({**trips[0], "days": "three"})
    except LamaticBadRequestError as error:
        _show(
            "A typed error: LamaticBadRequestError",
            str(error),
            quiet=quiet,
            note="plan-trip declares days as int, so the server rejected the payload.",
        )

    try:
        LamaticFlow(flow_id="no-such-flow", client=client).invoke({"prompt": "hello"})
    except LamaticNotFoundError as error:
        _show("A typed error: LamaticNotFoundError", str(error), quiet=quiet)
