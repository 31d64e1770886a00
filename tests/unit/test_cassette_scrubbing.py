"""Cassette scrubbing, GraphQL request matching and the pretty-printing serializer."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path
from typing import Any

import httpx
import pytest
from vcr.errors import CannotOverwriteExistingCassetteException
from vcr.request import Request

from langchain_lamatic import LamaticClient
from langchain_lamatic._queries import EXECUTE_WORKFLOW
from langchain_lamatic.testing.vcr import (
    ACCESS_TOKEN_PLACEHOLDER,
    API_KEY_PLACEHOLDER,
    DROPPED_RESPONSE_HEADERS,
    HOST_PLACEHOLDER,
    JWT_PLACEHOLDER,
    PROJECT_ID_PLACEHOLDER,
    REDACTED_PLACEHOLDER,
    REPLAY_ENDPOINT,
    CassetteScrubber,
    CassetteSecretError,
    MissingCassetteError,
    PrettyJSONYAMLSerializer,
    find_credentials,
    find_credentials_in_files,
    graphql_tokens,
    lamatic_vcr,
    match_graphql_request,
    normalise_graphql_query,
    use_lamatic_cassette,
)

API_KEY = "lt-" + "scrubtest0key0abcdefghijklmnop"
SECRET_KEY = "scrub-test-secret-key-0123456789"
PROJECT_ID = "scrub-project-7f3a"
HOST = "acme42-support7.lamatic.dev"
# A well-formed HS256 JWT (header, claims, signature) made for these tests.
JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
    "eyJwcm9qZWN0X2lkIjoic2NydWItcHJvamVjdC03ZjNhIn0."
    "c2lnbmF0dXJlLW9mLXRoZS1zY3J1Yi10ZXN0"
)


@pytest.fixture
def scrubber() -> CassetteScrubber:
    return CassetteScrubber(
        api_keys=[API_KEY],
        secrets=[SECRET_KEY],
        project_ids=[PROJECT_ID],
        hosts=[HOST],
    )


def graphql_body(query: str = EXECUTE_WORKFLOW, **variables: Any) -> bytes:
    if not variables:
        variables = {"workflowId": "summariser", "payload": {"topic": "queues"}}
    return json.dumps({"query": query, "variables": variables}, separators=(",", ":")).encode()


def vcr_request(
    body: bytes | None = None,
    *,
    uri: str = f"https://{HOST}/graphql",
    headers: dict[str, str] | None = None,
) -> Request:
    return Request("POST", uri, body if body is not None else graphql_body(), headers or {})


def vcr_response(
    body: bytes | str, headers: dict[str, list[str]] | None = None, status: int = 200
) -> dict[str, Any]:
    return {
        "status": {"code": status, "message": "OK"},
        "headers": headers or {"Content-Type": ["application/json"]},
        "body": {"string": body},
    }


# --- Request scrubbing --------------------------------------------------------------------------


def test_scrubber_replaces_bearer_api_key(scrubber: CassetteScrubber) -> None:
    request = scrubber.scrub_request(vcr_request(headers={"Authorization": f"Bearer {API_KEY}"}))

    assert request.headers["Authorization"] == f"Bearer {API_KEY_PLACEHOLDER}"


def test_scrubber_replaces_unknown_bearer_token(scrubber: CassetteScrubber) -> None:
    request = scrubber.scrub_request(
        vcr_request(headers={"Authorization": "Bearer " + "some-other-token-value"})
    )

    assert request.headers["Authorization"] == f"Bearer {API_KEY_PLACEHOLDER}"


def test_scrubber_replaces_non_bearer_authorization(scrubber: CassetteScrubber) -> None:
    request = scrubber.scrub_request(vcr_request(headers={"Authorization": "Basic dXNlcjpwdw=="}))

    assert request.headers["Authorization"] == REDACTED_PLACEHOLDER


def test_scrubber_replaces_signature_header(scrubber: CassetteScrubber) -> None:
    request = scrubber.scrub_request(vcr_request(headers={"X-Lamatic-Signature": JWT}))

    assert request.headers["X-Lamatic-Signature"] == ACCESS_TOKEN_PLACEHOLDER


def test_scrubber_replaces_project_header(scrubber: CassetteScrubber) -> None:
    request = scrubber.scrub_request(vcr_request(headers={"x-project-id": "any-project-id"}))

    assert request.headers["x-project-id"] == PROJECT_ID_PLACEHOLDER


@pytest.mark.parametrize("name", ["Cookie", "Proxy-Authorization", "X-Api-Key", "Api-Key"])
def test_scrubber_replaces_other_credential_headers(scrubber: CassetteScrubber, name: str) -> None:
    request = scrubber.scrub_request(vcr_request(headers={name: "sid=abc123"}))

    assert request.headers[name] == REDACTED_PLACEHOLDER


def test_scrubber_rewrites_url_origin(scrubber: CassetteScrubber) -> None:
    request = scrubber.scrub_request(vcr_request(uri=f"https://{HOST}:8443/graphql"))

    assert request.uri == "http://127.0.0.1:9/graphql"


def test_scrubber_rewrites_host_header(scrubber: CassetteScrubber) -> None:
    request = scrubber.scrub_request(vcr_request(headers={"Host": HOST}))

    assert request.headers["Host"] == "127.0.0.1:9"


def test_scrubber_replaces_key_in_url_query(scrubber: CassetteScrubber) -> None:
    request = scrubber.scrub_request(
        vcr_request(uri=f"https://{HOST}/graphql?key={API_KEY}&token={JWT}")
    )

    assert API_KEY not in request.uri
    assert JWT not in request.uri
    assert request.uri.endswith(f"?key={API_KEY_PLACEHOLDER}&token={JWT_PLACEHOLDER}")


def test_scrubber_replaces_values_in_body(scrubber: CassetteScrubber) -> None:
    body = graphql_body(
        workflowId="summariser",
        payload={"project": PROJECT_ID, "secret": SECRET_KEY, "site": f"https://{HOST}/x"},
    )

    request = scrubber.scrub_request(vcr_request(body))

    text = request.body.decode()
    assert PROJECT_ID not in text
    assert SECRET_KEY not in text
    assert HOST not in text
    variables = json.loads(text)["variables"]["payload"]
    assert variables == {
        "project": PROJECT_ID_PLACEHOLDER,
        "secret": REDACTED_PLACEHOLDER,
        "site": f"https://{HOST_PLACEHOLDER}/x",
    }


def test_scrubber_replaces_unconfigured_key_shapes(scrubber: CassetteScrubber) -> None:
    other_key = "lt-" + "0123456789abcdefghij"
    body = graphql_body(workflowId="summariser", payload={"k": other_key, "t": JWT})

    request = scrubber.scrub_request(vcr_request(body))

    payload = json.loads(request.body)["variables"]["payload"]
    assert payload == {"k": API_KEY_PLACEHOLDER, "t": JWT_PLACEHOLDER}


def test_scrubber_updates_request_content_length(scrubber: CassetteScrubber) -> None:
    body = graphql_body(workflowId="summariser", payload={"secret": SECRET_KEY})
    request = vcr_request(body, headers={"Content-Length": str(len(body))})

    scrubbed = scrubber.scrub_request(request)

    assert scrubbed.headers["Content-Length"] == str(len(scrubbed.body))


def test_scrubber_maps_aliases() -> None:
    scrubber = CassetteScrubber(aliases={"3f9c2a71-live-flow": "contract-flow"})
    body = graphql_body(workflowId="3f9c2a71-live-flow", payload={})

    request = scrubber.scrub_request(vcr_request(body))

    assert json.loads(request.body)["variables"]["workflowId"] == "contract-flow"


def test_scrubber_is_idempotent(scrubber: CassetteScrubber) -> None:
    request = vcr_request(
        graphql_body(workflowId="summariser", payload={"k": API_KEY}),
        headers={"Authorization": f"Bearer {API_KEY}", "x-project-id": PROJECT_ID},
    )
    once = scrubber.scrub_request(request)
    snapshot = (once.uri, dict(once.headers), once.body)

    twice = scrubber.scrub_request(once)

    assert (twice.uri, dict(twice.headers), twice.body) == snapshot


def test_scrubber_rejects_short_values() -> None:
    with pytest.raises(ValueError, match="shorter than 6"):
        CassetteScrubber(project_ids=["p1"])


def test_scrubber_reads_lamatic_environment() -> None:
    environ = {
        "LAMATIC_API_KEY": API_KEY,
        "LAMATIC_SECRET_KEY": SECRET_KEY,
        "LAMATIC_PROJECT_ID": PROJECT_ID,
        "LAMATIC_ENDPOINT": f"https://{HOST}/graphql",
    }

    scrubber = CassetteScrubber.from_environment(environ)

    assert set(scrubber.secret_values) == {API_KEY, SECRET_KEY, PROJECT_ID}
    assert scrubber.scrub_text(f"{HOST} {PROJECT_ID}") == (
        f"{HOST_PLACEHOLDER} {PROJECT_ID_PLACEHOLDER}"
    )


# --- Response scrubbing -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["Set-Cookie", "CF-Ray", "X-Request-Id", "Server-Timing", "Report-To", "Via"]
)
def test_scrubber_drops_identifying_headers(scrubber: CassetteScrubber, name: str) -> None:
    response = vcr_response(b"{}", {name: ["value-1"], "Content-Type": ["application/json"]})

    scrubbed = scrubber.scrub_response(response)

    assert name.lower() in DROPPED_RESPONSE_HEADERS
    assert name not in scrubbed["headers"]
    assert scrubbed["headers"]["Content-Type"] == ["application/json"]


def test_scrubber_keeps_retry_after(scrubber: CassetteScrubber) -> None:
    response = vcr_response(b"{}", {"Retry-After": ["7"]}, status=429)

    assert scrubber.scrub_response(response)["headers"]["Retry-After"] == ["7"]


def test_scrubber_keeps_authentication_challenge(scrubber: CassetteScrubber) -> None:
    response = vcr_response(b"{}", {"WWW-Authenticate": ['Bearer realm="lamatic"']}, status=401)

    scrubbed = scrubber.scrub_response(response)

    assert scrubbed["headers"]["WWW-Authenticate"] == ['Bearer realm="lamatic"']


def test_scrubber_replaces_echoed_secret_in_body(scrubber: CassetteScrubber) -> None:
    body = json.dumps({"errors": [{"message": f"Invalid API key {API_KEY}"}]}).encode()
    response = vcr_response(body, {"Content-Length": [str(len(body))]})

    scrubbed = scrubber.scrub_response(response)

    assert API_KEY.encode() not in scrubbed["body"]["string"]
    assert scrubbed["headers"]["Content-Length"] == [str(len(scrubbed["body"]["string"]))]


def test_scrubber_decodes_gzip_before_scrubbing(scrubber: CassetteScrubber) -> None:
    plain = json.dumps({"data": {"token": JWT}}).encode()
    response = vcr_response(gzip.compress(plain), {"Content-Encoding": ["gzip"]})

    scrubbed = scrubber.scrub_response(response)

    assert json.loads(scrubbed["body"]["string"]) == {"data": {"token": JWT_PLACEHOLDER}}
    assert "Content-Encoding" not in scrubbed["headers"]


def test_scrubber_decodes_zstd_before_scrubbing(scrubber: CassetteScrubber) -> None:
    # zstandard comes with langsmith today, but no extra of this project requires it.
    zstandard = pytest.importorskip("zstandard")
    plain = json.dumps({"data": {"key": API_KEY}}).encode()
    compressed = zstandard.ZstdCompressor().compress(plain)
    response = vcr_response(compressed, {"Content-Encoding": ["zstd"]})

    scrubbed = scrubber.scrub_response(response)

    assert json.loads(scrubbed["body"]["string"]) == {"data": {"key": API_KEY_PLACEHOLDER}}


def test_scrubber_rejects_unknown_encoding(scrubber: CassetteScrubber) -> None:
    response = vcr_response(b"\x00\x01", {"Content-Encoding": ["compress"]})

    with pytest.raises(CassetteSecretError, match="compress"):
        scrubber.scrub_response(response)


def test_scrubber_rejects_undecodable_gzip(scrubber: CassetteScrubber) -> None:
    response = vcr_response(b"not gzip at all", {"Content-Encoding": ["gzip"]})

    with pytest.raises(CassetteSecretError, match="does not decode"):
        scrubber.scrub_response(response)


# --- Finding credentials ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("Authorization: Bearer " + "abcdefgh12345678", "bearer token"),
        (f"key={API_KEY}", "Lamatic API key"),
        (f"token {JWT} end", "JWT"),
    ],
)
def test_scanner_flags_credential_shape(text: str, kind: str) -> None:
    findings = find_credentials(text)

    assert [finding.kind for finding in findings] == [kind]


@pytest.mark.parametrize(
    "text",
    [
        f"Authorization: Bearer {API_KEY_PLACEHOLDER}",
        'WWW-Authenticate: Bearer realm="lamatic"',
        "the default-configuration-value stays",
        "lt-short",
        "Bearer [REDACTED]",
    ],
)
def test_scanner_ignores_placeholders_and_prose(text: str) -> None:
    assert find_credentials(text) == []


def test_scanner_flags_configured_value_in_json_form() -> None:
    secret = 'pa"ss/word-123'
    text = json.dumps({"value": secret})

    findings = find_credentials(text, [secret])

    assert [finding.kind for finding in findings] == ["configured secret"]


def test_scanner_finding_hides_the_value() -> None:
    [finding] = find_credentials(f"line one\nkey={API_KEY}", source="x.yaml")

    assert API_KEY not in str(finding)
    assert str(finding) == f"x.yaml:2:5: Lamatic API key ({len(API_KEY)} characters)"


def test_scanner_reads_directories(tmp_path: Path) -> None:
    planted = tmp_path / "planted"
    (planted / "nested").mkdir(parents=True)
    (planted / "nested" / "a.yaml").write_text(f"token: {JWT}\n")
    (planted / "b.bin").write_bytes(b"\xff\xfe" + SECRET_KEY.encode())
    try:
        findings = find_credentials_in_files([planted], [SECRET_KEY])
    finally:
        # The test run's temporary files are scanned for credentials too.
        shutil.rmtree(planted)

    assert sorted(Path(str(f.source)).name for f in findings) == ["a.yaml", "b.bin"]


# --- GraphQL matching ---------------------------------------------------------------------------


def test_tokens_ignore_whitespace_commas_and_comments() -> None:
    compact = "query Q($id: String!) { executeWorkflow(workflowId: $id) { status result } }"
    spread = """
        # a comment that does not count
        query Q(
            $id: String!,
        ) {
          executeWorkflow(workflowId: $id) {
            status,
            result
          }
        }
    """

    assert graphql_tokens(compact) == graphql_tokens(spread)


def test_tokens_keep_whitespace_inside_strings() -> None:
    assert graphql_tokens('{ f(a: "x  y") }') != graphql_tokens('{ f(a: "x y") }')


def test_tokens_keep_block_strings_whole() -> None:
    tokens = graphql_tokens('{ f(a: """one\n  two""") }')

    assert '"""one\n  two"""' in tokens


def test_normalised_query_is_one_line() -> None:
    assert normalise_graphql_query(EXECUTE_WORKFLOW) == (
        "query ExecuteWorkflow($workflowId:String!$payload:JSON!)"
        "{executeWorkflow(workflowId:$workflowId payload:$payload){status result requestId}}"
    )


def test_matcher_accepts_reformatted_query() -> None:
    reformatted = "  ".join(EXECUTE_WORKFLOW.split()).replace("status", "status,")
    sent = vcr_request(graphql_body(reformatted))
    recorded = vcr_request(graphql_body(EXECUTE_WORKFLOW))

    assert match_graphql_request(sent, recorded) is None


def test_matcher_rejects_changed_variable() -> None:
    sent = vcr_request(graphql_body(workflowId="summariser", payload={"topic": "cache"}))
    recorded = vcr_request(graphql_body(workflowId="summariser", payload={"topic": "queues"}))

    with pytest.raises(AssertionError, match=r"at \$\.payload\.topic: sent 'cache'"):
        match_graphql_request(sent, recorded)


def test_matcher_rejects_added_variable() -> None:
    sent = vcr_request(graphql_body(workflowId="summariser", payload={"topic": "q", "n": 1}))
    recorded = vcr_request(graphql_body(workflowId="summariser", payload={"topic": "q"}))

    with pytest.raises(AssertionError, match="key 'n' was sent but not recorded"):
        match_graphql_request(sent, recorded)


def test_matcher_rejects_boolean_for_number() -> None:
    sent = vcr_request(graphql_body(workflowId="summariser", payload={"n": True}))
    recorded = vcr_request(graphql_body(workflowId="summariser", payload={"n": 1}))

    with pytest.raises(AssertionError, match="sent boolean true, recorded number 1"):
        match_graphql_request(sent, recorded)


def test_matcher_rejects_changed_selection() -> None:
    sent = vcr_request(graphql_body(EXECUTE_WORKFLOW.replace("requestId", "message")))
    recorded = vcr_request(graphql_body(EXECUTE_WORKFLOW))

    with pytest.raises(AssertionError, match="GraphQL query differs"):
        match_graphql_request(sent, recorded)


def test_matcher_treats_null_variables_as_empty() -> None:
    query = '{ checkStatus(requestId: "r1") }'
    sent = vcr_request(json.dumps({"query": query, "variables": None}).encode())
    recorded = vcr_request(json.dumps({"query": query}).encode())

    assert match_graphql_request(sent, recorded) is None


def test_matcher_compares_operation_name() -> None:
    sent = vcr_request(json.dumps({"query": "{a}", "operationName": "A"}).encode())
    recorded = vcr_request(json.dumps({"query": "{a}", "operationName": "B"}).encode())

    with pytest.raises(AssertionError, match="operationName"):
        match_graphql_request(sent, recorded)


def test_matcher_compares_other_bodies_exactly() -> None:
    assert match_graphql_request(vcr_request(b"plain"), vcr_request(b"plain")) is None
    with pytest.raises(AssertionError, match="not GraphQL"):
        match_graphql_request(vcr_request(b"plain"), vcr_request(b"other"))


# --- Serializer ---------------------------------------------------------------------------------


def cassette_data(response_body: str, request_body: str | None = None) -> dict[str, Any]:
    return {
        "version": 1,
        "interactions": [
            {
                "request": {
                    "method": "POST",
                    "uri": REPLAY_ENDPOINT,
                    "body": request_body if request_body is not None else graphql_body().decode(),
                    "headers": {"Content-Type": ["application/json"]},
                },
                "response": vcr_response(response_body),
            }
        ],
    }


@pytest.mark.parametrize(
    "body",
    [
        '{"data":{"executeWorkflow":{"status":"success","result":{"text":"héllo"}}}}',
        '{"data":{"text":"h\\u00e9llo"}}',
        '{"data": {"n": [1, 2.5, null, true]}}',
        '{"data":{"n":1}}\n',
        "[]",
    ],
)
def test_serializer_restores_exact_body(body: str) -> None:
    serializer = PrettyJSONYAMLSerializer()

    text = serializer.serialize(cassette_data(body))
    restored = serializer.deserialize(text)

    assert restored["interactions"][0]["response"]["body"]["string"] == body
    assert "json: |" in text


def test_serializer_pretty_prints_json_bodies() -> None:
    text = PrettyJSONYAMLSerializer().serialize(cassette_data('{"data":{"answer":"yes"}}'))

    assert '\n          "data": {\n            "answer": "yes"\n          }\n' in text
    assert "json_format: compact" in text


@pytest.mark.parametrize("body", ['{"n":1E5}', '{"a":1,"a":2}', "  {}", "not json", "<html>"])
def test_serializer_keeps_unrestorable_body_raw(body: str) -> None:
    serializer = PrettyJSONYAMLSerializer()

    text = serializer.serialize(cassette_data(body))

    assert serializer.deserialize(text)["interactions"][0]["response"]["body"]["string"] == body
    assert "string:" in text


def test_serializer_restores_request_body() -> None:
    serializer = PrettyJSONYAMLSerializer()
    request_body = graphql_body().decode()

    text = serializer.serialize(cassette_data("{}", request_body))

    assert serializer.deserialize(text)["interactions"][0]["request"]["body"] == request_body


def test_serializer_refuses_credential_shapes() -> None:
    body = json.dumps({"data": {"token": JWT}})

    with pytest.raises(CassetteSecretError, match="JWT") as caught:
        PrettyJSONYAMLSerializer().serialize(cassette_data(body))

    assert JWT not in str(caught.value)


def test_serializer_refuses_configured_secret() -> None:
    body = json.dumps({"data": {"note": SECRET_KEY}})

    with pytest.raises(CassetteSecretError, match="configured secret") as caught:
        PrettyJSONYAMLSerializer([SECRET_KEY]).serialize(cassette_data(body))

    assert SECRET_KEY not in str(caught.value)


def test_serializer_rejects_unknown_format() -> None:
    text = PrettyJSONYAMLSerializer().serialize(cassette_data('{"a":1}'))

    with pytest.raises(ValueError, match="Unknown json_format 'tabbed'"):
        PrettyJSONYAMLSerializer().deserialize(text.replace("compact", "tabbed"))


# --- Recording and replaying through vcrpy, without a socket ------------------------------------


def fake_lamatic(secret_echo: str) -> httpx.MockTransport:
    """An endpoint that returns a success whose body echoes a secret, and sets a cookie."""

    def handle(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200,
            content=json.dumps(
                {"data": {"executeWorkflow": {"status": "success", "result": {"k": secret_echo}}}},
                separators=(",", ":"),
            ).encode(),
            headers={"Content-Type": "application/json", "Set-Cookie": "sid=abc"},
        )

    return httpx.MockTransport(handle)


def recording_client(secret_echo: str = SECRET_KEY) -> LamaticClient:
    return LamaticClient(
        endpoint=f"https://{HOST}/graphql",
        project_id=PROJECT_ID,
        api_key=API_KEY,
        max_retries=0,
        transport=fake_lamatic(secret_echo),
    )


def test_recording_writes_scrubbed_cassette(tmp_path: Path, scrubber: CassetteScrubber) -> None:
    path = tmp_path / "recorded.yaml"

    with use_lamatic_cassette(path, record_mode="rewrite", scrubber=scrubber):
        recording_client().execute_flow("summariser", {"topic": "queues"})

    text = path.read_text()
    for value in (API_KEY, SECRET_KEY, PROJECT_ID, HOST, "sid=abc"):
        assert value not in text
    assert find_credentials(text, [API_KEY, SECRET_KEY, PROJECT_ID]) == []
    assert f"Bearer {API_KEY_PLACEHOLDER}" in text


def test_rewrite_keeps_previous_cassette_on_discard(
    tmp_path: Path, scrubber: CassetteScrubber
) -> None:
    path = tmp_path / "kept.yaml"
    path.write_text("previous\n")

    with use_lamatic_cassette(path, record_mode="rewrite", scrubber=scrubber) as handle:
        recording_client().execute_flow("summariser", {"topic": "queues"})
        handle.discard()

    assert path.read_text() == "previous\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept.yaml"]


def test_rewrite_keeps_previous_cassette_on_error(
    tmp_path: Path, scrubber: CassetteScrubber
) -> None:
    path = tmp_path / "kept.yaml"
    path.write_text("previous\n")

    def record_then_fail() -> None:
        with use_lamatic_cassette(path, record_mode="rewrite", scrubber=scrubber):
            recording_client().execute_flow("summariser", {"topic": "queues"})
            raise RuntimeError("test failed")

    with pytest.raises(RuntimeError, match="test failed"):
        record_then_fail()

    assert path.read_text() == "previous\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept.yaml"]


def test_recording_scrubs_unconfigured_jwt(tmp_path: Path) -> None:
    path = tmp_path / "scrubbed.yaml"
    unconfigured = CassetteScrubber(api_keys=[API_KEY])
    # A JWT echoed in the body is caught by its shape even though no scrubber value names it.
    leaky = LamaticClient(
        endpoint=f"https://{HOST}/graphql",
        project_id=PROJECT_ID,
        api_key=API_KEY,
        max_retries=0,
        transport=fake_lamatic("eyJhbGciOi.eyJzdWIi.sig"),
    )

    with use_lamatic_cassette(path, record_mode="rewrite", scrubber=unconfigured):
        leaky.execute_flow("summariser", {"topic": "queues"})

    text = path.read_text()
    assert "eyJhbGciOi" not in text
    assert JWT_PLACEHOLDER in text


def test_replay_returns_recorded_bytes(tmp_path: Path, scrubber: CassetteScrubber) -> None:
    path = tmp_path / "replayed.yaml"
    with use_lamatic_cassette(path, record_mode="rewrite", scrubber=scrubber):
        recorded = recording_client("plain-value").execute_flow("summariser", {"topic": "q"})

    with use_lamatic_cassette(path, record_mode="none", scrubber=CassetteScrubber()):
        replayed = LamaticClient(
            endpoint=REPLAY_ENDPOINT, project_id="replay-project", api_key="lt-x", max_retries=0
        ).execute_flow("summariser", {"topic": "q"})

    assert replayed == recorded


def test_replay_missing_cassette_names_command(tmp_path: Path) -> None:
    path = tmp_path / "absent.yaml"

    with (
        pytest.raises(MissingCassetteError, match="does not exist") as caught,
        use_lamatic_cassette(path, record_command="make record"),
    ):
        pass

    assert str(path) in str(caught.value)
    assert "Record it with: make record" in str(caught.value)


def test_replay_unmatched_request_fails(tmp_path: Path, scrubber: CassetteScrubber) -> None:
    path = tmp_path / "strict.yaml"
    with use_lamatic_cassette(path, record_mode="rewrite", scrubber=scrubber):
        recording_client().execute_flow("summariser", {"topic": "queues"})
    client = LamaticClient(
        endpoint=REPLAY_ENDPOINT, project_id="replay-project", api_key="lt-x", max_retries=0
    )

    with (
        use_lamatic_cassette(path, scrubber=CassetteScrubber()),
        pytest.raises(CannotOverwriteExistingCassetteException, match=r"\$\.payload\.topic"),
    ):
        client.execute_flow("summariser", {"topic": "caches"})


def test_lamatic_vcr_rejects_unknown_record_mode() -> None:
    with pytest.raises(ValueError, match="'rewrite'"):
        lamatic_vcr(record_mode="all")  # type: ignore[arg-type]


def test_caller_hook_runs_before_scrubber(tmp_path: Path, scrubber: CassetteScrubber) -> None:
    path = tmp_path / "hooked.yaml"

    def add_key_header(request: Request) -> Request:
        request.headers["X-Echo"] = API_KEY
        return request

    with use_lamatic_cassette(
        path, record_mode="rewrite", scrubber=scrubber, before_record_request=add_key_header
    ):
        recording_client().execute_flow("summariser", {"topic": "queues"})

    text = path.read_text()
    assert API_KEY not in text
    request = PrettyJSONYAMLSerializer().deserialize(text)["interactions"][0]["request"]
    assert request["headers"]["X-Echo"] == [API_KEY_PLACEHOLDER]


def test_scrubber_ignores_loopback_hosts() -> None:
    scrubber = CassetteScrubber(hosts=["127.0.0.1", "localhost", HOST])

    assert scrubber.scrub_text(f"127.0.0.1 localhost {HOST}") == (
        f"127.0.0.1 localhost {HOST_PLACEHOLDER}"
    )
