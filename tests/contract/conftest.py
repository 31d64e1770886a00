"""Contract tests: recorded Lamatic exchanges, replayed offline or recorded again.

Every test here uses the `contract` fixture, which opens the test's own cassette,
`cassettes/<module>/<test>.yaml`, and runs in one of three modes:

- replay (the default, and what CI runs): the cassette is replayed with record mode "none"
  and sockets are disabled, except the Unix sockets asyncio needs. A missing cassette, a
  request the cassette does not hold, or a recorded request the test no longer sends fails the
  test with the command that records it again. The client talks to `REPLAY_ENDPOINT`.
- local recording (`LAMATIC_RECORD=1 .venv/bin/python -m pytest tests/contract`): each test
  starts a `LamaticTestServer` with the contract flows, injects the faults it needs, and
  rewrites its cassette. A test that fails or is skipped keeps the previous cassette.
- live (`.venv/bin/python -m pytest -m live tests/contract`): the tests run against a real
  Lamatic project and rewrite their cassettes. The mode needs `LAMATIC_ENDPOINT`,
  `LAMATIC_PROJECT_ID` and `LAMATIC_API_KEY` (or `LAMATIC_ACCESS_TOKEN`). Without them every
  test is skipped with a message naming what to set. Each test also needs the ids of the flows
  it calls (`LAMATIC_LIVE_FLOW_ID`, `LAMATIC_LIVE_ASYNC_FLOW_ID`, `LAMATIC_LIVE_AGENT_ID`,
  `LAMATIC_LIVE_FAILING_FLOW_ID`) and, for the access-token tests, `LAMATIC_SECRET_KEY`, and
  is skipped without them. Tests that need a fault the real service cannot be made to produce
  (a 503, an HTML page) are skipped and keep their locally recorded cassettes. Real flow ids
  are recorded under the contract ids (`contract-flow`...), so replay needs no live setting.

`LAMATIC_CASSETTE_DIR` moves the cassette folder, for trying the modes without touching the
committed cassettes. Every variable is read once, when this file is imported, because the
shared conftest removes `LAMATIC_*` variables around each test.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_socket
from contract_support import (
    CONTRACT_PROJECT_ID,
    LIVE_FLOW_VARIABLES,
    RECORD_API_KEY,
    RECORD_SECRET_KEY,
    SETTINGS,
    Api,
    ContractBackend,
    add_contract_flows,
    cassette_path,
    contract_mode,
    contract_scrubber,
    record_command,
)

from langchain_lamatic.testing import LamaticTestServer
from langchain_lamatic.testing.vcr import use_lamatic_cassette

# --- Test outcome, so a failed recording keeps the previous cassette ----------------------------

_REPORTS = pytest.StashKey[dict[str, pytest.TestReport]]()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    report: pytest.TestReport = yield
    item.stash.setdefault(_REPORTS, {})[report.when] = report
    return report


def _test_passed(item: pytest.Item) -> bool:
    reports = item.stash.get(_REPORTS, {})
    return all(report.passed for report in reports.values()) and "call" in reports


@pytest.fixture
async def contract(request: pytest.FixtureRequest) -> AsyncIterator[ContractBackend]:
    """The test's cassette and backend; see the module docstring for the modes."""
    mode = contract_mode(request.config)
    if mode == "live":
        missing = SETTINGS.live.missing()
        if missing:
            pytest.skip(
                "Live mode needs a real Lamatic project: set "
                + ", ".join(missing)
                + "; the tests that use them also need "
                + ", ".join(LIVE_FLOW_VARIABLES.values())
                + " and LAMATIC_SECRET_KEY"
            )

    item = request.node
    path = cassette_path(item)
    with contextlib.ExitStack() as stack:
        server: LamaticTestServer | None = None
        if mode == "local":
            server = stack.enter_context(
                LamaticTestServer(
                    project_id=CONTRACT_PROJECT_ID,
                    api_key=RECORD_API_KEY,
                    secret_key=RECORD_SECRET_KEY,
                )
            )
            add_contract_flows(server)
        elif mode == "replay":
            pytest_socket.disable_socket(allow_unix_socket=True)
            stack.callback(pytest_socket.enable_socket)

        handle = stack.enter_context(
            use_lamatic_cassette(
                path,
                record_mode="none" if mode == "replay" else "rewrite",
                scrubber=contract_scrubber(mode, server),
                record_command=record_command(item),
            )
        )
        backend = ContractBackend(mode, handle, server)
        try:
            yield backend
        finally:
            await backend.aclose()

        if mode != "replay" and not _test_passed(item):
            handle.discard()
        if mode == "replay" and _test_passed(item) and not handle.cassette.all_played:
            played = handle.cassette.play_count
            pytest.fail(
                f"The test sent {played} of the {len(handle.cassette)} requests recorded in "
                f"{path}; the client's behaviour changed. Record it again with: "
                f"{record_command(item)}"
            )


@pytest.fixture(params=["sync", "async"])
def api(request: pytest.FixtureRequest) -> Api:
    """The sync or async variant of each call; every contract test runs both."""
    return Api(request.param)
