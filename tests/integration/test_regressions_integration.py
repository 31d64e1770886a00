"""Regression tests, over loopback sockets, for defects found by trying the package as a user."""

from __future__ import annotations

import json

import pytest

from langchain_lamatic import LamaticClient, create_access_token
from langchain_lamatic.__main__ import main
from langchain_lamatic.testing import LamaticTestServer


def _use_server(monkeypatch: pytest.MonkeyPatch, server: LamaticTestServer, key: str) -> None:
    monkeypatch.setenv("LAMATIC_ENDPOINT", server.endpoint)
    monkeypatch.setenv("LAMATIC_PROJECT_ID", server.project_id)
    monkeypatch.setenv("LAMATIC_API_KEY", key)


# --- python -m langchain_lamatic run --------------------------------------------------------


def test_cli_run_prints_result_as_json(
    server: LamaticTestServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _use_server(monkeypatch, server, server.api_key)
    status = main(["run", "slow-echo", "--payload", '{"city": "Lisboa"}'])
    captured = capsys.readouterr()
    assert status == 0
    assert json.loads(captured.out) == {"echo": {"city": "Lisboa"}}


def test_cli_run_unknown_flow_exits_with_one(
    server: LamaticTestServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _use_server(monkeypatch, server, server.api_key)
    status = main(["run", "no-such-flow"])
    captured = capsys.readouterr()
    assert status == 1
    assert captured.out == ""
    assert "not found" in captured.err.lower()


def test_cli_run_payload_list_is_a_usage_error(
    server: LamaticTestServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _use_server(monkeypatch, server, server.api_key)
    with pytest.raises(SystemExit) as caught:
        main(["run", "slow-echo", "--payload", "[1, 2]"])
    assert caught.value.code == 2
    assert "JSON object" in capsys.readouterr().err
    assert server.requests == []


def test_cli_run_tolerates_key_with_trailing_newline(
    server: LamaticTestServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # As after `export LAMATIC_API_KEY="$(cat key.txt)"` from a file that ends in CRLF.
    _use_server(monkeypatch, server, server.api_key + "\r\n")
    assert main(["run", "slow-echo"]) == 0
    assert json.loads(capsys.readouterr().out) == {"echo": {}}


def test_cli_run_hides_unsendable_key(
    server: LamaticTestServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    key = "copied0key0with0a0break"
    _use_server(monkeypatch, server, f"{key}\n{key}")
    status = main(["run", "slow-echo"])
    captured = capsys.readouterr()
    assert status == 1
    assert "LAMATIC_API_KEY" in captured.err
    assert key not in captured.err
    assert server.requests == []


# --- python -m langchain_lamatic demo -------------------------------------------------------


def test_cli_demo_runs_every_step(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo"]) == 0
    output = capsys.readouterr().out
    assert "LamaticBadRequestError" in output
    assert "LamaticNotFoundError" in output
    assert "HiringAssessment(score=" in output


# --- Access tokens minted for a padded project id --------------------------------------------


def test_token_for_padded_project_id_is_accepted(server: LamaticTestServer) -> None:
    padded = f" {server.project_id}\n"
    token = create_access_token(server.secret_key, padded, expires_in=60)
    with LamaticClient(
        endpoint=server.endpoint, project_id=padded, access_token=token, max_retries=0
    ) as client:
        response = client.execute_flow("slow-echo", {"n": 1})
    assert response.result == {"echo": {"n": 1}}


# --- LamaticTestServer settings that no client could match -----------------------------------


@pytest.mark.parametrize(
    "settings",
    [{"project_id": " padded "}, {"api_key": "lt-key\n"}, {"secret_key": " secret"}],
)
def test_test_server_rejects_padded_settings(settings: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="surrounding whitespace"):
        LamaticTestServer(**settings)


@pytest.mark.parametrize("port", [-1, 65536, "8080", True])
def test_test_server_rejects_invalid_port(port: object) -> None:
    with pytest.raises(ValueError, match="port must be an int"):
        LamaticTestServer(port=port)  # type: ignore[arg-type]
