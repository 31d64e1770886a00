"""Connection settings: environment fallbacks, credential rules and endpoint normalisation."""

from __future__ import annotations

import httpx
import pytest
from pydantic import SecretStr

from langchain_lamatic import LamaticClient, LamaticFlow
from langchain_lamatic._settings import is_loopback_host, normalise_endpoint

ENDPOINT = "https://demo-project.lamatic.dev/graphql"
PROJECT_ID = "project-123"
API_KEY = "lt-" + "settings0key0abcdef"
ACCESS_TOKEN = "settings-access-token-xyz"


def _fail_if_called(request: httpx.Request) -> httpx.Response:
    raise AssertionError(f"no request may be sent, but one went to {request.url}")


FAILING_TRANSPORT = httpx.MockTransport(_fail_if_called)


def _sent_headers(**settings: object) -> httpx.Headers:
    """Build a client from ``settings``, run one flow and return the headers it sent."""
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        body = {"data": {"executeWorkflow": {"status": "success", "result": {}}}}
        return httpx.Response(200, json=body)

    client = LamaticClient(transport=httpx.MockTransport(handler), **settings)  # type: ignore[arg-type]
    client.execute_flow("flow-1", {})
    return seen[0].headers


# --- Environment fallbacks ------------------------------------------------------------------


def test_endpoint_falls_back_to_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAMATIC_ENDPOINT", "https://env-project.lamatic.dev/graphql")
    client = LamaticClient(project_id=PROJECT_ID, api_key=API_KEY)
    assert client.endpoint == "https://env-project.lamatic.dev/graphql"


def test_project_id_falls_back_to_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAMATIC_PROJECT_ID", "env-project")
    client = LamaticClient(endpoint=ENDPOINT, api_key=API_KEY)
    assert client.project_id == "env-project"


def test_api_key_falls_back_to_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAMATIC_API_KEY", API_KEY)
    client = LamaticClient(endpoint=ENDPOINT, project_id=PROJECT_ID)
    headers = _sent_headers(endpoint=ENDPOINT, project_id=PROJECT_ID)
    assert client.credential_kind == "api_key"
    assert headers["authorization"] == f"Bearer {API_KEY}"


def test_access_token_falls_back_to_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAMATIC_ACCESS_TOKEN", ACCESS_TOKEN)
    client = LamaticClient(endpoint=ENDPOINT, project_id=PROJECT_ID)
    headers = _sent_headers(endpoint=ENDPOINT, project_id=PROJECT_ID)
    assert client.credential_kind == "access_token"
    assert headers["x-lamatic-signature"] == ACCESS_TOKEN


def test_all_settings_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAMATIC_ENDPOINT", "https://env-project.lamatic.dev")
    monkeypatch.setenv("LAMATIC_PROJECT_ID", "env-project")
    monkeypatch.setenv("LAMATIC_API_KEY", API_KEY)
    client = LamaticClient()
    headers = _sent_headers()
    assert client.endpoint == "https://env-project.lamatic.dev/graphql"
    assert headers["x-project-id"] == "env-project"
    assert headers["authorization"] == f"Bearer {API_KEY}"


def test_explicit_endpoint_beats_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAMATIC_ENDPOINT", "https://env-project.lamatic.dev/graphql")
    client = LamaticClient(endpoint=ENDPOINT, project_id=PROJECT_ID, api_key=API_KEY)
    assert client.endpoint == ENDPOINT


def test_explicit_project_id_beats_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAMATIC_PROJECT_ID", "env-project")
    client = LamaticClient(endpoint=ENDPOINT, project_id=PROJECT_ID, api_key=API_KEY)
    assert client.project_id == PROJECT_ID


def test_explicit_api_key_beats_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAMATIC_API_KEY", "lt-" + "from0the0environment")
    headers = _sent_headers(endpoint=ENDPOINT, project_id=PROJECT_ID, api_key=API_KEY)
    assert headers["authorization"] == f"Bearer {API_KEY}"


def test_explicit_access_token_beats_env_api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAMATIC_API_KEY", "lt-" + "from0the0environment")
    headers = _sent_headers(endpoint=ENDPOINT, project_id=PROJECT_ID, access_token=ACCESS_TOKEN)
    assert headers["x-lamatic-signature"] == ACCESS_TOKEN
    assert "authorization" not in headers


def test_explicit_api_key_beats_env_access_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAMATIC_ACCESS_TOKEN", ACCESS_TOKEN)
    headers = _sent_headers(endpoint=ENDPOINT, project_id=PROJECT_ID, api_key=API_KEY)
    assert headers["authorization"] == f"Bearer {API_KEY}"
    assert "x-lamatic-signature" not in headers


def test_secretstr_credentials_are_accepted() -> None:
    headers = _sent_headers(endpoint=ENDPOINT, project_id=PROJECT_ID, api_key=SecretStr(API_KEY))
    assert headers["authorization"] == f"Bearer {API_KEY}"


# --- Missing and conflicting settings -------------------------------------------------------


def test_missing_endpoint_names_argument_and_env() -> None:
    with pytest.raises(ValueError, match="endpoint") as caught:
        LamaticClient(project_id=PROJECT_ID, api_key=API_KEY)
    assert "endpoint=" in str(caught.value)
    assert "LAMATIC_ENDPOINT" in str(caught.value)


def test_missing_project_id_names_argument_and_env() -> None:
    with pytest.raises(ValueError, match="project_id") as caught:
        LamaticClient(endpoint=ENDPOINT, api_key=API_KEY)
    assert "project_id=" in str(caught.value)
    assert "LAMATIC_PROJECT_ID" in str(caught.value)


def test_missing_credential_names_arguments_and_env() -> None:
    with pytest.raises(ValueError, match="credential") as caught:
        LamaticClient(endpoint=ENDPOINT, project_id=PROJECT_ID)
    message = str(caught.value)
    assert "api_key=" in message
    assert "access_token=" in message
    assert "LAMATIC_API_KEY" in message
    assert "LAMATIC_ACCESS_TOKEN" in message


def test_blank_env_value_counts_as_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAMATIC_ENDPOINT", "   ")
    with pytest.raises(ValueError, match="LAMATIC_ENDPOINT"):
        LamaticClient(project_id=PROJECT_ID, api_key=API_KEY)


def test_empty_api_key_counts_as_missing() -> None:
    with pytest.raises(ValueError, match="LAMATIC_API_KEY"):
        LamaticClient(endpoint=ENDPOINT, project_id=PROJECT_ID, api_key="")


def test_both_credential_arguments_are_rejected() -> None:
    with pytest.raises(ValueError, match="api_key and access_token") as caught:
        LamaticClient(
            endpoint=ENDPOINT, project_id=PROJECT_ID, api_key=API_KEY, access_token=ACCESS_TOKEN
        )
    assert "exactly one" in str(caught.value)


def test_both_credential_env_vars_are_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAMATIC_API_KEY", API_KEY)
    monkeypatch.setenv("LAMATIC_ACCESS_TOKEN", ACCESS_TOKEN)
    with pytest.raises(ValueError, match="LAMATIC_API_KEY") as caught:
        LamaticClient(endpoint=ENDPOINT, project_id=PROJECT_ID)
    assert "LAMATIC_ACCESS_TOKEN" in str(caught.value)


def test_non_string_endpoint_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="endpoint must be a str"):
        LamaticClient(endpoint=123, project_id=PROJECT_ID, api_key=API_KEY)  # type: ignore[arg-type]


def test_non_string_api_key_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="credentials must be str or SecretStr"):
        LamaticClient(endpoint=ENDPOINT, project_id=PROJECT_ID, api_key=12345)  # type: ignore[arg-type]


@pytest.mark.parametrize(("value", "message"), [(-1, "max_retries"), (True, "max_retries")])
def test_invalid_max_retries_is_rejected(value: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        LamaticClient(
            endpoint=ENDPOINT,
            project_id=PROJECT_ID,
            api_key=API_KEY,
            max_retries=value,  # type: ignore[arg-type]
        )


def test_non_callable_token_provider_is_rejected() -> None:
    with pytest.raises(TypeError, match="access_token_provider"):
        LamaticClient(
            endpoint=ENDPOINT,
            project_id=PROJECT_ID,
            access_token=ACCESS_TOKEN,
            access_token_provider="not callable",  # type: ignore[arg-type]
        )


# --- Runnables share the rules --------------------------------------------------------------


def test_flow_falls_back_to_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAMATIC_ENDPOINT", "https://env-project.lamatic.dev")
    monkeypatch.setenv("LAMATIC_PROJECT_ID", "env-project")
    monkeypatch.setenv("LAMATIC_ACCESS_TOKEN", ACCESS_TOKEN)
    flow = LamaticFlow(flow_id="flow-1")
    assert flow.lamatic_client.endpoint == "https://env-project.lamatic.dev/graphql"
    assert flow.lamatic_client.project_id == "env-project"
    assert flow.lamatic_client.credential_kind == "access_token"


def test_flow_missing_credential_names_arguments_and_env() -> None:
    with pytest.raises(ValueError, match="LAMATIC_API_KEY") as caught:
        LamaticFlow(flow_id="flow-1", endpoint=ENDPOINT, project_id=PROJECT_ID)
    assert "api_key=" in str(caught.value)


def test_flow_missing_endpoint_names_argument_and_env() -> None:
    with pytest.raises(ValueError, match="LAMATIC_ENDPOINT") as caught:
        LamaticFlow(flow_id="flow-1", project_id=PROJECT_ID, api_key=API_KEY)
    assert "endpoint=" in str(caught.value)


def test_flow_both_credential_env_vars_are_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAMATIC_API_KEY", API_KEY)
    monkeypatch.setenv("LAMATIC_ACCESS_TOKEN", ACCESS_TOKEN)
    with pytest.raises(ValueError, match="LAMATIC_ACCESS_TOKEN"):
        LamaticFlow(flow_id="flow-1", endpoint=ENDPOINT, project_id=PROJECT_ID)


def test_flow_both_credential_arguments_are_rejected() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        LamaticFlow(
            flow_id="flow-1",
            endpoint=ENDPOINT,
            project_id=PROJECT_ID,
            api_key=API_KEY,
            access_token=ACCESS_TOKEN,
        )


# --- Endpoint normalisation -----------------------------------------------------------------


@pytest.mark.parametrize(
    "given",
    [
        "https://demo-project.lamatic.dev",
        "https://demo-project.lamatic.dev/",
        "https://demo-project.lamatic.dev/graphql",
        "https://demo-project.lamatic.dev/graphql/",
        "  https://demo-project.lamatic.dev/graphql  ",
    ],
)
def test_endpoint_forms_normalise_to_graphql(given: str) -> None:
    assert normalise_endpoint(given) == "https://demo-project.lamatic.dev/graphql"


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (
            "https://gateway.example.com/api/v2/graphql",
            "https://gateway.example.com/api/v2/graphql",
        ),
        ("https://gateway.example.com/lamatic/", "https://gateway.example.com/lamatic"),
        ("https://gateway.example.com:8443/gql", "https://gateway.example.com:8443/gql"),
    ],
)
def test_endpoint_with_other_path_is_kept(given: str, expected: str) -> None:
    assert normalise_endpoint(given) == expected


@pytest.mark.parametrize(
    "given",
    [
        "https://demo-project.lamatic.dev",
        "https://demo-project.lamatic.dev/",
        "https://demo-project.lamatic.dev/graphql",
        "https://demo-project.lamatic.dev/graphql/",
    ],
)
def test_endpoint_forms_give_one_request_url(given: str) -> None:
    seen: list[httpx.URL] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url)
        body = {"data": {"executeWorkflow": {"status": "success", "result": {}}}}
        return httpx.Response(200, json=body)

    client = LamaticClient(
        endpoint=given,
        project_id=PROJECT_ID,
        api_key=API_KEY,
        transport=httpx.MockTransport(handler),
    )
    client.execute_flow("flow-1", {})
    assert str(seen[0]) == "https://demo-project.lamatic.dev/graphql"


@pytest.mark.parametrize(
    "endpoint",
    ["http://demo-project.lamatic.dev/graphql", "http://10.0.0.5:8080", "http://192.168.1.2"],
)
def test_plain_http_to_remote_host_is_rejected(endpoint: str) -> None:
    with pytest.raises(ValueError, match="http://") as caught:
        LamaticClient(
            endpoint=endpoint,
            project_id=PROJECT_ID,
            api_key=API_KEY,
            transport=FAILING_TRANSPORT,
        )
    assert "allow_insecure_http=True" in str(caught.value)


def test_plain_http_from_env_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAMATIC_ENDPOINT", "http://demo-project.lamatic.dev")
    with pytest.raises(ValueError, match="unencrypted"):
        LamaticClient(project_id=PROJECT_ID, api_key=API_KEY, transport=FAILING_TRANSPORT)


def test_flow_with_plain_http_is_rejected() -> None:
    with pytest.raises(ValueError, match="allow_insecure_http"):
        LamaticFlow(
            flow_id="flow-1",
            endpoint="http://demo-project.lamatic.dev",
            project_id=PROJECT_ID,
            api_key=API_KEY,
        )


@pytest.mark.parametrize(
    ("endpoint", "expected"),
    [
        ("http://127.0.0.1:8765", "http://127.0.0.1:8765/graphql"),
        ("http://127.0.0.2:8765/graphql", "http://127.0.0.2:8765/graphql"),
        ("http://[::1]:8765/", "http://[::1]:8765/graphql"),
        ("http://localhost:8765/graphql/", "http://localhost:8765/graphql"),
        ("http://LOCALHOST:8765", "http://localhost:8765/graphql"),
    ],
)
def test_plain_http_to_loopback_is_allowed(endpoint: str, expected: str) -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        body = {"data": {"executeWorkflow": {"status": "success", "result": {}}}}
        return httpx.Response(200, json=body)

    client = LamaticClient(
        endpoint=endpoint,
        project_id=PROJECT_ID,
        api_key=API_KEY,
        transport=httpx.MockTransport(handler),
    )
    client.execute_flow("flow-1", {})
    assert seen == [expected]


def test_plain_http_allowed_when_opted_in() -> None:
    client = LamaticClient(
        endpoint="http://lamatic.internal.example:8080",
        project_id=PROJECT_ID,
        api_key=API_KEY,
        allow_insecure_http=True,
    )
    assert client.endpoint == "http://lamatic.internal.example:8080/graphql"


def test_flow_plain_http_allowed_when_opted_in() -> None:
    flow = LamaticFlow(
        flow_id="flow-1",
        endpoint="http://lamatic.internal.example",
        project_id=PROJECT_ID,
        api_key=API_KEY,
        allow_insecure_http=True,
    )
    assert flow.lamatic_client.endpoint == "http://lamatic.internal.example/graphql"


@pytest.mark.parametrize(
    ("endpoint", "message"),
    [
        ("https://user:secret@demo-project.lamatic.dev/graphql", "user name or password"),
        ("https://user@demo-project.lamatic.dev/graphql", "user name or password"),
        ("https://demo-project.lamatic.dev/graphql?key=value", "query string"),
        ("https://demo-project.lamatic.dev/graphql#part", "fragment"),
        ("ftp://demo-project.lamatic.dev/graphql", "http\\(s\\) URL"),
        ("demo-project.lamatic.dev/graphql", "http\\(s\\) URL"),
        ("https://", "Invalid endpoint"),
    ],
)
def test_invalid_endpoint_is_rejected(endpoint: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        LamaticClient(
            endpoint=endpoint,
            project_id=PROJECT_ID,
            api_key=API_KEY,
            transport=FAILING_TRANSPORT,
        )


def test_rejected_userinfo_is_not_echoed() -> None:
    with pytest.raises(ValueError, match="user name or password") as caught:
        normalise_endpoint("https://user:hunter2-password@demo-project.lamatic.dev")
    assert "hunter2-password" not in str(caught.value)


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("api.localhost", True),
        ("localhost.example.com", False),
        ("10.0.0.1", False),
        ("demo-project.lamatic.dev", False),
        ("::ffff:8.8.8.8", False),
    ],
)
def test_loopback_host_detection(host: str, expected: bool) -> None:
    assert is_loopback_host(host) is expected
