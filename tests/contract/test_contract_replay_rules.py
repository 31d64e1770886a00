"""The replay rules, checked against the committed cassettes with sockets disabled.

A reformatted query still replays, a changed variable does not, host and port do not count,
and a missing or partly used cassette fails its test with the command that records it again.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import pytest_socket
from contract_support import CONTRACT_PAYLOAD, CONTRACT_PROJECT_ID, REPLAY_API_KEY, SETTINGS
from vcr.errors import CannotOverwriteExistingCassetteException

from langchain_lamatic import LamaticClient, _queries
from langchain_lamatic.testing.vcr import (
    REPLAY_ENDPOINT,
    CassetteScrubber,
    PrettyJSONYAMLSerializer,
    use_lamatic_cassette,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
SUCCESS_TEST = "tests/contract/test_contract_execute.py::test_execute_flow_returns_result[sync]"
SUCCESS_CASSETTE = (
    SETTINGS.cassette_dir / "test_contract_execute" / "test_execute_flow_returns_result-sync.yaml"
)


@pytest.fixture(autouse=True)
def _no_network() -> Iterator[None]:
    pytest_socket.disable_socket(allow_unix_socket=True)
    yield
    pytest_socket.enable_socket()


def replay_client(endpoint: str = REPLAY_ENDPOINT) -> LamaticClient:
    return LamaticClient(
        endpoint=endpoint, project_id=CONTRACT_PROJECT_ID, api_key=REPLAY_API_KEY, max_retries=0
    )


def recorded_response_body() -> bytes:
    data = PrettyJSONYAMLSerializer().deserialize(SUCCESS_CASSETTE.read_text())
    body = data["interactions"][0]["response"]["body"]["string"]
    return body.encode() if isinstance(body, str) else body


def test_reformatted_query_still_replays(monkeypatch: pytest.MonkeyPatch) -> None:
    reformatted = "\n\n".join(_queries.EXECUTE_WORKFLOW.split()).replace("status", "status,")
    monkeypatch.setattr(_queries, "EXECUTE_WORKFLOW", "# reformatted\n" + reformatted)

    with use_lamatic_cassette(SUCCESS_CASSETTE, scrubber=CassetteScrubber()) as handle:
        response = replay_client().execute_flow("contract-flow", CONTRACT_PAYLOAD)

    assert response.status == "success"
    assert handle.cassette.all_played


def test_replayed_body_is_recorded_bytes() -> None:
    body = httpx.Request(
        "POST",
        REPLAY_ENDPOINT,
        json={
            "query": _queries.EXECUTE_WORKFLOW,
            "variables": {"workflowId": "contract-flow", "payload": CONTRACT_PAYLOAD},
        },
    ).content

    with (
        use_lamatic_cassette(SUCCESS_CASSETTE, scrubber=CassetteScrubber()),
        httpx.Client() as http,
    ):
        response = http.post(REPLAY_ENDPOINT, content=body)

    assert response.content == recorded_response_body()


def test_changed_variable_does_not_replay() -> None:
    changed = {**CONTRACT_PAYLOAD, "question": "Something else?"}

    with (
        use_lamatic_cassette(SUCCESS_CASSETTE, scrubber=CassetteScrubber()),
        pytest.raises(CannotOverwriteExistingCassetteException) as caught,
    ):
        replay_client().execute_flow("contract-flow", changed)

    assert "GraphQL variables differ at $.payload.question" in str(caught.value)


def test_changed_flow_id_does_not_replay() -> None:
    with (
        use_lamatic_cassette(SUCCESS_CASSETTE, scrubber=CassetteScrubber()),
        pytest.raises(CannotOverwriteExistingCassetteException, match=r"\$\.workflowId"),
    ):
        replay_client().execute_flow("another-flow", CONTRACT_PAYLOAD)


def test_host_and_port_do_not_count() -> None:
    with use_lamatic_cassette(SUCCESS_CASSETTE, scrubber=CassetteScrubber()):
        response = replay_client("http://localhost:48213/graphql").execute_flow(
            "contract-flow", CONTRACT_PAYLOAD
        )

    assert response.status == "success"


def run_contract_test(node_id: str, cassette_dir: Path) -> subprocess.CompletedProcess[str]:
    """Run one contract test in replay mode in a fresh interpreter, with its own cassettes."""
    environ = {k: v for k, v in os.environ.items() if not k.upper().startswith("LAMATIC_")}
    environ["LAMATIC_CASSETTE_DIR"] = str(cassette_dir)
    return subprocess.run(  # noqa: S603 - runs this interpreter on a fixed test id
        [sys.executable, "-m", "pytest", node_id, "-q", "-p", "no:cacheprovider"],
        cwd=REPO_ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_deleted_cassette_fails_with_command(tmp_path: Path) -> None:
    result = run_contract_test(SUCCESS_TEST, tmp_path)

    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "MissingCassetteError" in output
    assert "does not exist, and record mode 'none' only replays" in output
    assert f"Record it with: LAMATIC_RECORD=1 .venv/bin/python -m pytest '{SUCCESS_TEST}'" in output


def test_unplayed_interaction_fails_the_test(tmp_path: Path) -> None:
    serializer = PrettyJSONYAMLSerializer()
    data = serializer.deserialize(SUCCESS_CASSETTE.read_text())
    data["interactions"] = data["interactions"] * 2
    copy = tmp_path / SUCCESS_CASSETTE.parent.name / SUCCESS_CASSETTE.name
    copy.parent.mkdir()
    copy.write_text(serializer.serialize(data))

    result = run_contract_test(SUCCESS_TEST, tmp_path)

    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "The test sent 1 of the 2 requests recorded" in output
