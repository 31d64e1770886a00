"""Record and replay Lamatic traffic with vcrpy, with every credential scrubbed before writing.

`lamatic_vcr()` returns a `vcr.VCR` set up the way this project's own contract suite uses it,
and `use_lamatic_cassette()` wraps one cassette with a clear error when it is missing:

- Requests match on method, URL path and the GraphQL request (the `"graphql"` matcher): the
  query text compared token by token, so whitespace, commas and comments do not count, and the
  variables compared exactly. Scheme, host and port are not compared, so a cassette recorded
  against a live project or a local server on a random port replays against `REPLAY_ENDPOINT`.
- Before a request or response is stored, and before a request is matched, the credential
  headers (`Authorization`, `X-Lamatic-Signature`, `x-project-id`, cookies) are replaced by
  placeholders. JWTs, `lt-` keys, bearer tokens and the configured values (keys, tokens,
  secret keys, project ids, the project's host name) are replaced in the URL, every header and
  the body. The URL's scheme, host and port become `REPLAY_ORIGIN`. Response headers that
  identify the account or its traffic (`DROPPED_RESPONSE_HEADERS`) are dropped.
- Cassettes are YAML with JSON bodies pretty-printed for review. Loading a cassette restores
  the exact bytes that were received; a body that cannot be restored byte for byte is stored
  as it came.
- The serializer raises `CassetteSecretError` instead of writing a cassette that still
  contains a credential-shaped string or a configured secret value.

vcrpy (which brings PyYAML) is a test dependency, not a runtime one: `pip install vcrpy`. This
module imports it only when a function needs it.

Example:
    A test that replays `tests/cassettes/summarise.yaml`, recorded earlier with
    `record_mode="rewrite"` against a real project or a `LamaticTestServer`::

        from langchain_lamatic import LamaticClient
        from langchain_lamatic.testing.vcr import REPLAY_ENDPOINT, use_lamatic_cassette

        def test_summariser_returns_summary():
            with use_lamatic_cassette("tests/cassettes/summarise.yaml", record_mode="none"):
                client = LamaticClient(
                    endpoint=REPLAY_ENDPOINT, project_id="my-project", api_key="lt-replay"
                )
                assert client.execute_flow("summariser", {"url": "https://example.org"}).result
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote, urlsplit, urlunsplit

import httpx
from pydantic import SecretStr

__all__ = [
    "ACCESS_TOKEN_PLACEHOLDER",
    "API_KEY_PLACEHOLDER",
    "CREDENTIAL_PATTERNS",
    "DROPPED_RESPONSE_HEADERS",
    "HOST_PLACEHOLDER",
    "JWT_PLACEHOLDER",
    "MATCH_ON",
    "PROJECT_ID_PLACEHOLDER",
    "REDACTED_PLACEHOLDER",
    "REPLAY_ENDPOINT",
    "REPLAY_ORIGIN",
    "CassetteHandle",
    "CassetteScrubber",
    "CassetteSecretError",
    "CredentialFinding",
    "MissingCassetteError",
    "PrettyJSONYAMLSerializer",
    "RecordMode",
    "find_credentials",
    "find_credentials_in_files",
    "graphql_tokens",
    "lamatic_vcr",
    "match_graphql_request",
    "normalise_graphql_query",
    "use_lamatic_cassette",
]

_VCR_MISSING = (
    "langchain_lamatic.testing.vcr needs vcrpy to record and replay cassettes. "
    "Install it with: pip install vcrpy"
)

REPLAY_ORIGIN = "http://127.0.0.1:9"
"""The scheme, host and port every recorded URL is rewritten to.

Port 9 is the discard service, which is normally closed: a request that somehow escapes the
cassette is refused on the loopback interface instead of reaching a real host.
"""

REPLAY_ENDPOINT = f"{REPLAY_ORIGIN}/graphql"
"""The endpoint to give a client that replays cassettes."""

API_KEY_PLACEHOLDER = "<LAMATIC_API_KEY>"
ACCESS_TOKEN_PLACEHOLDER = "<LAMATIC_ACCESS_TOKEN>"
PROJECT_ID_PLACEHOLDER = "<LAMATIC_PROJECT_ID>"
HOST_PLACEHOLDER = "<LAMATIC_HOST>"
JWT_PLACEHOLDER = "<JWT>"
REDACTED_PLACEHOLDER = "<REDACTED>"

MATCH_ON = ("method", "path", "graphql")
"""The vcrpy matchers `lamatic_vcr()` uses; `"graphql"` is `match_graphql_request`."""

RecordMode = Literal["none", "once", "new_episodes", "rewrite"]
"""Record mode of a cassette.

`"none"` replays only and fails on a missing cassette or an unmatched request. `"rewrite"`
sends every request to the real endpoint and replaces the cassette with what it recorded.
`"once"` and `"new_episodes"` are vcrpy's modes of the same name.
"""

# Request headers whose whole value is replaced. Authorization keeps its scheme word so a
# reader can still see which credential kind was sent.
_REQUEST_HEADER_PLACEHOLDERS = {
    "x-lamatic-signature": ACCESS_TOKEN_PLACEHOLDER,
    "x-project-id": PROJECT_ID_PLACEHOLDER,
    "cookie": REDACTED_PLACEHOLDER,
    "proxy-authorization": REDACTED_PLACEHOLDER,
    "x-api-key": REDACTED_PLACEHOLDER,
    "api-key": REDACTED_PLACEHOLDER,
}

DROPPED_RESPONSE_HEADERS = frozenset(
    {
        # Cookies can authenticate as the account.
        "set-cookie",
        "set-cookie2",
        # Ids that tie the response to the account's traffic in the provider's and CDN's logs.
        # The library reads no request id from headers; an execution's requestId stays in the
        # body, where the contract needs it.
        "x-request-id",
        "x-correlation-id",
        "x-trace-id",
        "traceparent",
        "tracestate",
        "cf-ray",
        "x-amzn-requestid",
        "x-amzn-trace-id",
        "x-amz-cf-id",
        "x-amz-cf-pop",
        "x-amz-apigw-id",
        "x-vercel-id",
        "x-cloud-trace-context",
        "fly-request-id",
        "x-served-by",
        "x-cache-hits",
        "x-timer",
        # Timing and reporting endpoints, which can name internal hosts and regions.
        "server-timing",
        "report-to",
        "reporting-endpoints",
        "nel",
        "via",
        # Echoes of the caller's identity or site.
        "x-project-id",
        "access-control-allow-origin",
    }
)
"""Response headers that are never written to a cassette (names in lower case)."""

# Patterns replaced in URLs, header values and bodies. Each one is at least as broad as the
# matching entry of CREDENTIAL_PATTERNS, so whatever the scan flags has already been replaced.
_SCRUB_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"), JWT_PLACEHOLDER),
    (re.compile(r"\blt-[A-Za-z0-9_-]{12,}"), API_KEY_PLACEHOLDER),
    # A bearer token of 8 or more characters, but not a challenge such as `Bearer realm="x"`.
    (
        re.compile(r'(?i)\b(bearer\s+)(?!<)(?![A-Za-z0-9_-]+\s*=\s*")[A-Za-z0-9._~+/-]{8,}=*'),
        r"\1" + REDACTED_PLACEHOLDER,
    ),
)

CREDENTIAL_PATTERNS: Mapping[str, re.Pattern[str]] = {
    "bearer token": re.compile(
        r'(?i)\bbearer\s+(?!<)(?![A-Za-z0-9_-]+\s*=\s*")[A-Za-z0-9._~+/-]{8,}'
    ),
    "Lamatic API key": re.compile(r"\blt-[A-Za-z0-9]{16,}"),
    "JWT": re.compile(r"eyJ[A-Za-z0-9_-]+\.eyJ[A-Za-z0-9_-]+\."),
}
"""Credential shapes that must not appear in a cassette or any other file a test writes."""

# A configured value shorter than this would be replaced inside unrelated text.
_MIN_SCRUB_LENGTH = 6


def _import_vcr() -> Any:
    try:
        import vcr  # type: ignore[import-untyped]
    except ImportError as error:
        raise ImportError(_VCR_MISSING) from error
    return vcr


def _import_yaml() -> Any:
    try:
        import yaml  # type: ignore[import-untyped]
    except ImportError as error:
        raise ImportError(_VCR_MISSING) from error
    return yaml


def _plain(value: str | SecretStr | None) -> str | None:
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    if value is None:
        return None
    if not isinstance(value, str):
        raise TypeError(f"values to scrub must be str or SecretStr, got {type(value).__name__}")
    value = value.strip()
    return value or None


def _encoded_forms(value: str) -> set[str]:
    """Return the value as it appears raw, inside a JSON string and inside a URL."""
    return {value, json.dumps(value)[1:-1], quote(value, safe="")}


# --- Finding credentials -----------------------------------------------------------------------


@dataclass(frozen=True)
class CredentialFinding:
    """A credential-shaped string or a configured secret found in a text.

    The matched text itself is never stored, so printing a finding leaks nothing.

    Attributes:
        kind: Which pattern matched, such as `"JWT"`, or `"configured secret"`.
        line: The 1-based line number.
        column: The 1-based column.
        length: The length of the match in characters.
        source: The file the text came from, when known.
    """

    kind: str
    line: int
    column: int
    length: int
    source: str | None = None

    def __str__(self) -> str:
        where = f"{self.source}:" if self.source else "line "
        return f"{where}{self.line}:{self.column}: {self.kind} ({self.length} characters)"


def find_credentials(
    text: str,
    secrets: Iterable[str | SecretStr | None] = (),
    *,
    source: str | None = None,
) -> list[CredentialFinding]:
    """Find credential shapes (`CREDENTIAL_PATTERNS`) and the given secret values in `text`.

    Args:
        text: The text to scan.
        secrets: Exact values that must not appear, such as the API key used while recording.
            Each is also searched in its JSON-escaped and URL-encoded forms. Empty values are
            skipped.
        source: A file name to put in the findings.

    Returns:
        The findings in order of position; an empty list when the text is clean.
    """
    spans: list[tuple[int, int, str]] = []
    for kind, pattern in CREDENTIAL_PATTERNS.items():
        spans.extend((match.start(), match.end(), kind) for match in pattern.finditer(text))
    for secret in secrets:
        value = _plain(secret)
        if value is None:
            continue
        for form in _encoded_forms(value):
            start = text.find(form)
            while start != -1:
                spans.append((start, start + len(form), "configured secret"))
                start = text.find(form, start + 1)

    findings = []
    for start, end, kind in sorted(set(spans)):
        line = text.count("\n", 0, start) + 1
        column = start - (text.rfind("\n", 0, start) + 1) + 1
        findings.append(CredentialFinding(kind, line, column, end - start, source))
    return findings


def find_credentials_in_files(
    paths: Iterable[str | os.PathLike[str]],
    secrets: Iterable[str | SecretStr | None] = (),
) -> list[CredentialFinding]:
    """Scan files, and every file below the given directories, with `find_credentials`.

    Files are read as UTF-8 with undecodable bytes replaced, so binary files are scanned too.
    A path that does not exist is skipped.
    """
    secret_values = [value for value in (_plain(secret) for secret in secrets) if value]
    findings: list[CredentialFinding] = []
    for root in paths:
        root_path = Path(root)
        if root_path.is_dir():
            files = sorted(p for p in root_path.rglob("*") if p.is_file())
        else:
            files = [root_path] if root_path.is_file() else []
        for file in files:
            text = file.read_bytes().decode("utf-8", "replace")
            findings.extend(find_credentials(text, secret_values, source=str(file)))
    return findings


class CassetteSecretError(ValueError):
    """A cassette still contained a credential after scrubbing, so it was not written."""


class MissingCassetteError(FileNotFoundError):
    """A cassette to replay does not exist, and the record mode does not allow recording it."""


# --- Scrubbing ---------------------------------------------------------------------------------


class CassetteScrubber:
    """Replaces credentials in vcrpy requests and responses before they are stored or matched.

    Use `scrub_request` as vcrpy's `before_record_request` and `scrub_response` as its
    `before_record_response`; `lamatic_vcr()` does both. Both are idempotent, because vcrpy
    runs them again on interactions loaded from a cassette.

    Args:
        api_keys: API keys to replace by `API_KEY_PLACEHOLDER` wherever they appear.
        access_tokens: Access tokens to replace by `ACCESS_TOKEN_PLACEHOLDER`.
        project_ids: Project ids to replace by `PROJECT_ID_PLACEHOLDER`.
        secrets: Other secret values, such as the project's secret key, to replace by
            `REDACTED_PLACEHOLDER`.
        hosts: Host names to replace by `HOST_PLACEHOLDER`, such as the live project's
            `<project>.lamatic.dev`. Loopback names are ignored.
        aliases: Values that are not secret but differ between recordings, mapped to the stable
            name the tests use, such as a live flow id mapped to the local flow's id.
        replay_origin: The scheme, host and port recorded URLs are rewritten to.

    Raises:
        ValueError: A value is shorter than 6 characters, so replacing it would corrupt
            unrelated text.
    """

    def __init__(
        self,
        *,
        api_keys: Iterable[str | SecretStr | None] = (),
        access_tokens: Iterable[str | SecretStr | None] = (),
        project_ids: Iterable[str | None] = (),
        secrets: Iterable[str | SecretStr | None] = (),
        hosts: Iterable[str | None] = (),
        aliases: Mapping[str, str] | None = None,
        replay_origin: str = REPLAY_ORIGIN,
    ) -> None:
        origin = urlsplit(replay_origin)
        if not origin.scheme or not origin.netloc:
            raise ValueError(
                f"replay_origin must look like http://host:port, got {replay_origin!r}"
            )
        self._replay_scheme = origin.scheme
        self._replay_netloc = origin.netloc

        replacements: dict[str, str] = {}
        secret_values: list[str] = []
        remote_hosts = [host for host in hosts if host and host.lower() not in _LOOPBACK_HOSTS]
        groups: tuple[tuple[Iterable[tuple[Any, str]], bool], ...] = (
            (((value, API_KEY_PLACEHOLDER) for value in api_keys), True),
            (((value, ACCESS_TOKEN_PLACEHOLDER) for value in access_tokens), True),
            (((value, REDACTED_PLACEHOLDER) for value in secrets), True),
            (((value, PROJECT_ID_PLACEHOLDER) for value in project_ids), True),
            (((host, HOST_PLACEHOLDER) for host in remote_hosts), False),
            ((aliases or {}).items(), False),
        )

        for pairs, is_secret in groups:
            for raw, target in pairs:
                value = _plain(raw)
                if value is None:
                    continue
                if len(value) < _MIN_SCRUB_LENGTH:
                    raise ValueError(
                        f"A value to scrub is {len(value)} characters long; values shorter "
                        f"than {_MIN_SCRUB_LENGTH} would be replaced inside unrelated text. "
                        "Use a longer test value."
                    )
                for form in _encoded_forms(value):
                    replacements.setdefault(form, target)
                if is_secret:
                    secret_values.append(value)

        # Longer values first, so a value that contains another is replaced whole.
        self._replacements = sorted(replacements.items(), key=lambda item: -len(item[0]))
        self._secret_values = tuple(secret_values)

    @classmethod
    def from_environment(
        cls,
        environ: Mapping[str, str] | None = None,
        **extra: Any,
    ) -> CassetteScrubber:
        """Build a scrubber for the values in `LAMATIC_*` environment variables.

        Reads `LAMATIC_API_KEY`, `LAMATIC_ACCESS_TOKEN`, `LAMATIC_SECRET_KEY`,
        `LAMATIC_PROJECT_ID` and the host of `LAMATIC_ENDPOINT`.

        Args:
            environ: The variables to read; `os.environ` when None.
            **extra: More values, with the keyword arguments of `CassetteScrubber`; each list
                is added to the one read from the environment.
        """
        env = os.environ if environ is None else environ
        endpoint = env.get("LAMATIC_ENDPOINT", "").strip()
        host = urlsplit(endpoint if "//" in endpoint else f"//{endpoint}").hostname
        values: dict[str, Any] = {
            "api_keys": [env.get("LAMATIC_API_KEY")],
            "access_tokens": [env.get("LAMATIC_ACCESS_TOKEN")],
            "secrets": [env.get("LAMATIC_SECRET_KEY")],
            "project_ids": [env.get("LAMATIC_PROJECT_ID")],
            "hosts": [host],
        }
        for name, more in extra.items():
            if name in values:
                values[name] = [*values[name], *more]
            else:
                values[name] = more
        return cls(**values)

    @property
    def secret_values(self) -> tuple[str, ...]:
        """The configured secret values (keys, tokens, secret keys, project ids)."""
        return self._secret_values

    def scrub_text(self, text: str) -> str:
        """Replace configured values and credential shapes in `text` with placeholders."""
        for value, placeholder in self._replacements:
            if value in text:
                text = text.replace(value, placeholder)
        for pattern, replacement in _SCRUB_PATTERNS:
            text = pattern.sub(replacement, text)
        return text

    def _scrub_body(self, body: Any) -> Any:
        if isinstance(body, str):
            return self.scrub_text(body)
        if isinstance(body, (bytes, bytearray)):
            try:
                text = bytes(body).decode("utf-8")
            except UnicodeDecodeError:
                # Not text: scrub the ASCII-compatible bytes one for one, which keeps
                # binary content intact outside the replaced credentials.
                return self.scrub_text(bytes(body).decode("latin-1")).encode("latin-1", "replace")
            return self.scrub_text(text).encode("utf-8")
        return body

    def scrub_url(self, url: str) -> str:
        """Rewrite the URL's origin to the replay origin and scrub its path and query."""
        parts = urlsplit(url)
        return urlunsplit(
            (
                self._replay_scheme,
                self._replay_netloc,
                self.scrub_text(parts.path),
                self.scrub_text(parts.query),
                self.scrub_text(parts.fragment),
            )
        )

    def _scrub_request_header(self, name: str, value: str) -> str:
        lower = name.lower()
        if lower == "authorization":
            scheme = value.strip().split(" ", 1)[0]
            if scheme.lower() == "bearer":
                return f"Bearer {API_KEY_PLACEHOLDER}"
            return REDACTED_PLACEHOLDER
        if lower in _REQUEST_HEADER_PLACEHOLDERS:
            return _REQUEST_HEADER_PLACEHOLDERS[lower]
        if lower == "host":
            return self._replay_netloc
        return self.scrub_text(value)

    def scrub_request(self, request: Any) -> Any:
        """Scrub a `vcr.request.Request` in place and return it: URL, headers and body."""
        request.uri = self.scrub_url(request.uri)
        for name in list(request.headers):
            value = request.headers[name]
            if isinstance(value, bytes):
                value = value.decode("latin-1")
            request.headers[name] = self._scrub_request_header(name, str(value))
        body = request.body
        if isinstance(body, (str, bytes, bytearray)):
            scrubbed = self._scrub_body(body)
            if scrubbed != body:
                request.body = scrubbed
                if "content-length" in request.headers:
                    request.headers["content-length"] = str(len(request.body))
        return request

    def scrub_response(self, response: dict[str, Any]) -> dict[str, Any]:
        """Scrub a vcrpy response dictionary in place and return it: headers and body.

        Drops `DROPPED_RESPONSE_HEADERS`, scrubs the other header values and the body, and
        corrects `Content-Length` when the body changed length.
        """
        headers: dict[str, Any] = response.get("headers") or {}
        kept: dict[str, list[str]] = {}
        for name, values in headers.items():
            if name.lower() in DROPPED_RESPONSE_HEADERS:
                continue
            value_list = values if isinstance(values, list) else [values]
            kept[name] = [
                self.scrub_text(v.decode("latin-1") if isinstance(v, bytes) else str(v))
                for v in value_list
            ]
        body = response.get("body")
        if isinstance(body, dict) and isinstance(body.get("string"), (bytes, bytearray)):
            # A compressed body cannot be scrubbed, so it is stored decompressed.
            body["string"] = _decompress(kept, bytes(body["string"]))
        if isinstance(body, dict) and "string" in body:
            scrubbed = self._scrub_body(body["string"])
            if scrubbed != body["string"]:
                body["string"] = scrubbed
                raw = scrubbed.encode("utf-8") if isinstance(scrubbed, str) else scrubbed
                for name in kept:
                    if name.lower() == "content-length":
                        kept[name] = [str(len(raw))]
        response["headers"] = kept
        return response


def _decodable_encodings() -> frozenset[str]:
    encodings = {"identity", "gzip", "deflate"}
    for module, encoding in (("zstandard", "zstd"), ("brotli", "br"), ("brotlicffi", "br")):
        with contextlib.suppress(ImportError):
            __import__(module)
            encodings.add(encoding)
    return frozenset(encodings)


def _decompress(headers: dict[str, list[str]], body: bytes) -> bytes:
    """Decode `body` by its `Content-Encoding`, drop that header and fix `Content-Length`.

    Decoding uses httpx, so every encoding httpx advertises in `Accept-Encoding` is covered.

    Raises:
        CassetteSecretError: The encoding is unknown or the body does not decode, so it could
            not be scrubbed.
    """
    names = [name for name in headers if name.lower() == "content-encoding"]
    if not names:
        return body
    encodings = [
        part.strip().lower()
        for name in names
        for value in headers[name]
        for part in value.split(",")
    ]
    unknown = sorted(set(encodings) - _decodable_encodings() - {""})
    if unknown:
        raise CassetteSecretError(
            f"Cannot scrub a response body with Content-Encoding {', '.join(unknown)}; install "
            "the package that decodes it (zstandard for zstd, brotli for br)"
        )
    try:
        decoded = httpx.Response(
            200, headers=[("content-encoding", ", ".join(encodings))], content=body
        ).content
    except httpx.DecodingError as error:
        raise CassetteSecretError(
            f"Cannot scrub a response body that does not decode as {', '.join(encodings)}: {error}"
        ) from None
    for name in names:
        del headers[name]
    for name in headers:
        if name.lower() == "content-length":
            headers[name] = [str(len(decoded))]
    return decoded


_LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", "[::1]", "0.0.0.0"})  # noqa: S104


# --- Matching ----------------------------------------------------------------------------------

# GraphQL's lexical grammar: whitespace, line terminators, commas, comments and the byte order
# mark are ignored tokens; strings keep their inner whitespace.
_GRAPHQL_LEXER = re.compile(
    r'''
      (?P<ignored>[\s,\ufeff]+|\#[^\n\r]*)
    | (?P<block_string>"""(?:\\"""|(?!""")[\s\S])*""")
    | (?P<string>"(?:\\.|[^"\\\n\r])*")
    | (?P<number>-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)
    | (?P<name>[_A-Za-z][_0-9A-Za-z]*)
    | (?P<spread>\.\.\.)
    | (?P<other>.)
    ''',
    re.VERBOSE,
)


def graphql_tokens(query: str) -> tuple[str, ...]:
    """Split a GraphQL document into its significant tokens.

    Whitespace, commas and comments are dropped; string literals are kept as written, so
    whitespace inside a string still counts.
    """
    tokens = []
    for match in _GRAPHQL_LEXER.finditer(query):
        if match.lastgroup != "ignored":
            tokens.append(match.group())
    return tuple(tokens)


def _is_word(token: str) -> bool:
    return bool(token) and (token[0].isalnum() or token[0] in "_-")


def normalise_graphql_query(query: str) -> str:
    """Return a GraphQL document on one line, with only the spaces that separate two names.

    Two documents that differ only in whitespace, commas or comments give the same text.
    """
    parts: list[str] = []
    previous = ""
    for token in graphql_tokens(query):
        if parts and _is_word(previous) and _is_word(token):
            parts.append(" ")
        parts.append(token)
        previous = token
    return "".join(parts)


def _body_text(body: Any) -> str | None:
    if body is None:
        return None
    if isinstance(body, (bytes, bytearray)):
        try:
            return bytes(body).decode("utf-8")
        except UnicodeDecodeError:
            return None
    if isinstance(body, str):
        return body
    return None


def _graphql_document(body: Any) -> dict[str, Any] | None:
    text = _body_text(body)
    if not text:
        return None
    try:
        document = json.loads(text)
    except ValueError:
        return None
    if not isinstance(document, dict) or not isinstance(document.get("query"), str):
        return None
    return document


def _short(value: Any, limit: int = 120) -> str:
    if isinstance(value, str):
        text = repr(value)
    else:
        text = json.dumps(value, ensure_ascii=False, sort_keys=True)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _first_difference(sent: Any, recorded: Any, path: str) -> str | None:
    """Describe the first place where two JSON values differ, or return None when equal.

    Booleans and numbers never compare equal, unlike in Python, where `True == 1`.
    """
    if _json_type(sent) != _json_type(recorded):
        return (
            f"at {path}: sent {_json_type(sent)} {_short(sent)}, "
            f"recorded {_json_type(recorded)} {_short(recorded)}"
        )
    if isinstance(sent, dict):
        for key in sorted(set(sent) | set(recorded)):
            if key not in recorded:
                return f"at {path}: key {key!r} was sent but not recorded"
            if key not in sent:
                return f"at {path}: key {key!r} was recorded but not sent"
            difference = _first_difference(sent[key], recorded[key], f"{path}.{key}")
            if difference:
                return difference
        return None
    if isinstance(sent, list):
        if len(sent) != len(recorded):
            return f"at {path}: sent {len(sent)} items, recorded {len(recorded)}"
        for index, (left, right) in enumerate(zip(sent, recorded, strict=True)):
            difference = _first_difference(left, right, f"{path}[{index}]")
            if difference:
                return difference
        return None
    if sent != recorded:
        return f"at {path}: sent {_short(sent)}, recorded {_short(recorded)}"
    return None


def _query_difference(sent: str, recorded: str) -> str:
    left, right = normalise_graphql_query(sent), normalise_graphql_query(recorded)
    position = next(
        (i for i, (a, b) in enumerate(zip(left, right, strict=False)) if a != b),
        min(len(left), len(right)),
    )
    start = max(0, position - 30)
    return (
        f"GraphQL query differs (after normalising whitespace) at character {position}: "
        f"sent ...{left[start : position + 40]!r}, recorded ...{right[start : position + 40]!r}"
    )


def match_graphql_request(sent: Any, recorded: Any) -> None:
    """Match two vcrpy requests on GraphQL query (ignoring whitespace), variables and extras.

    vcrpy passes the request being sent first and the recorded one second. Bodies that are not
    GraphQL JSON are compared byte for byte. A missing or null `variables` equals `{}`.

    Raises:
        AssertionError: The requests differ. The message names the first difference.
    """
    sent_document = _graphql_document(sent.body)
    recorded_document = _graphql_document(recorded.body)
    if sent_document is None or recorded_document is None:
        if sent_document is not None or recorded_document is not None:
            which = "sent" if sent_document is None else "recorded"
            raise AssertionError(f"the {which} body is not a GraphQL JSON request")
        if _body_text(sent.body) != _body_text(recorded.body) or sent.body != recorded.body:
            raise AssertionError("the bodies differ and are not GraphQL JSON requests")
        return

    if graphql_tokens(sent_document["query"]) != graphql_tokens(recorded_document["query"]):
        raise AssertionError(_query_difference(sent_document["query"], recorded_document["query"]))
    difference = _first_difference(
        sent_document.get("variables") or {}, recorded_document.get("variables") or {}, "$"
    )
    if difference:
        raise AssertionError(f"GraphQL variables differ {difference}")
    extras = ({"query", "variables"} | set(sent_document) | set(recorded_document)) - {
        "query",
        "variables",
    }
    for key in sorted(extras):
        difference = _first_difference(sent_document.get(key), recorded_document.get(key), key)
        if difference:
            raise AssertionError(f"GraphQL request field differs {difference}")


# --- Serialising -------------------------------------------------------------------------------

# json.dumps settings that can reproduce a body byte for byte, tried in this order. Compact
# UTF-8 is what Node's JSON.stringify and the local test server send.
_JSON_FORMATS: dict[str, dict[str, Any]] = {
    "compact": {"separators": (",", ":"), "ensure_ascii": False},
    "compact-ascii": {"separators": (",", ":"), "ensure_ascii": True},
    "spaced": {"separators": (", ", ": "), "ensure_ascii": False},
    "spaced-ascii": {"separators": (", ", ": "), "ensure_ascii": True},
}
_NEWLINE_SUFFIX = "+newline"


def _encode_json(value: Any, json_format: str) -> str:
    base = json_format.removesuffix(_NEWLINE_SUFFIX)
    try:
        options = _JSON_FORMATS[base]
    except KeyError:
        known = ", ".join(_JSON_FORMATS)
        raise ValueError(
            f"Unknown json_format {json_format!r} in the cassette; expected one of {known}, "
            f"optionally followed by {_NEWLINE_SUFFIX!r}"
        ) from None
    text = json.dumps(value, **options)
    return text + "\n" if json_format.endswith(_NEWLINE_SUFFIX) else text


def _pretty_json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False)


def _pack_body(text: Any) -> dict[str, str] | None:
    """Return `{"json": <pretty JSON>, "json_format": <name>}` when that restores `text` exactly."""
    if not isinstance(text, str) or not text.lstrip().startswith(("{", "[")):
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    for base in _JSON_FORMATS:
        for suffix in ("", _NEWLINE_SUFFIX):
            json_format = base + suffix
            if _encode_json(value, json_format) != text:
                continue
            pretty = _pretty_json(value)
            if _encode_json(json.loads(pretty), json_format) == text:
                return {"json": pretty, "json_format": json_format}
    return None


def _unpack_body(packed: Mapping[str, Any]) -> str:
    return _encode_json(json.loads(packed["json"]), str(packed.get("json_format", "compact")))


class PrettyJSONYAMLSerializer:
    """vcrpy serializer: YAML with JSON bodies pretty-printed, restored byte for byte on load.

    A JSON body is stored as `json:` (pretty-printed, as a YAML block) and `json_format:` (how
    to encode it again: `compact`, `compact-ascii`, `spaced` or `spaced-ascii`, with
    `+newline` when the body ended in a newline). Other bodies keep vcrpy's `string:`. Before
    returning the YAML text, `serialize` scans it with `find_credentials`.

    Args:
        secrets: Exact values that must not appear in a written cassette.
    """

    def __init__(self, secrets: Iterable[str | SecretStr | None] = ()) -> None:
        self._secrets = tuple(value for value in (_plain(secret) for secret in secrets) if value)

    def serialize(self, cassette_dict: dict[str, Any]) -> str:
        """Return the YAML text of a cassette.

        Raises:
            CassetteSecretError: The text contains a credential shape or a secret value; the
                message gives the kind and line of each finding, never the value.
        """
        yaml = _import_yaml()
        interactions = [
            {
                "request": self._pack_request(interaction["request"]),
                "response": self._pack_response(interaction["response"]),
            }
            for interaction in cassette_dict.get("interactions", [])
        ]
        data = {"version": cassette_dict.get("version", 1), "interactions": interactions}
        text: str = yaml.dump(
            data,
            Dumper=_block_dumper(yaml),
            sort_keys=False,
            allow_unicode=True,
            width=4096,
            default_flow_style=False,
        )
        findings = find_credentials(text, self._secrets)
        if findings:
            listed = "; ".join(str(finding) for finding in findings[:10])
            raise CassetteSecretError(
                f"Cassette not written: {len(findings)} credential(s) remained after scrubbing "
                f"({listed}). Pass the value to CassetteScrubber so it is replaced."
            )
        return text

    def deserialize(self, cassette_string: str) -> dict[str, Any]:
        """Parse YAML text written by `serialize` (or by vcrpy's own YAML serializer)."""
        yaml = _import_yaml()
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        data: Any = yaml.load(cassette_string, Loader=loader)
        if not isinstance(data, dict) or not isinstance(data.get("interactions"), list):
            raise ValueError("The cassette is not a vcrpy cassette: it has no 'interactions' list")
        for interaction in data["interactions"]:
            request = interaction["request"]
            if isinstance(request.get("body"), dict) and "json" in request["body"]:
                request["body"] = _unpack_body(request["body"])
            response = interaction["response"]
            body = response.get("body")
            if isinstance(body, dict) and "json" in body:
                response["body"] = {"string": _unpack_body(body)}
        return data

    @staticmethod
    def _pack_request(request: Mapping[str, Any]) -> dict[str, Any]:
        body = request.get("body")
        packed = _pack_body(body)
        return {
            "method": request.get("method"),
            "uri": request.get("uri"),
            "headers": request.get("headers"),
            "body": packed if packed is not None else body,
        }

    @staticmethod
    def _pack_response(response: Mapping[str, Any]) -> dict[str, Any]:
        result = {key: value for key, value in response.items() if key != "body"}
        body = response.get("body")
        if isinstance(body, Mapping):
            packed = _pack_body(body.get("string"))
            result["body"] = packed if packed is not None else dict(body)
        else:
            result["body"] = body
        return result


def _block_dumper(yaml: Any) -> Any:
    """Return a safe YAML dumper that writes multi-line strings as literal blocks."""
    base = getattr(yaml, "CSafeDumper", yaml.SafeDumper)

    def represent_str(dumper: Any, value: str) -> Any:
        style = "|" if "\n" in value else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)

    dumper: Any = type("_LamaticCassetteDumper", (base,), {})
    dumper.add_representer(str, represent_str)
    return dumper


# --- Configuring vcrpy -------------------------------------------------------------------------


def _check_record_mode(record_mode: str) -> str:
    if record_mode not in ("none", "once", "new_episodes", "rewrite"):
        raise ValueError(
            f"record_mode must be 'none', 'once', 'new_episodes' or 'rewrite', got {record_mode!r}"
        )
    return "all" if record_mode == "rewrite" else record_mode


def _as_hooks(hooks: Any) -> list[Any]:
    if hooks is None:
        return []
    if callable(hooks):
        return [hooks]
    return list(hooks)


def lamatic_vcr(
    *,
    cassette_dir: str | os.PathLike[str] | None = None,
    record_mode: RecordMode = "none",
    scrubber: CassetteScrubber | None = None,
    **vcr_options: Any,
) -> Any:
    """Return a `vcr.VCR` that scrubs credentials, matches GraphQL requests and pretty-prints.

    Args:
        cassette_dir: The folder relative cassette paths are resolved in.
        record_mode: See `RecordMode`. `"rewrite"` is vcrpy's `"all"` with unused recorded
            interactions dropped, so the cassette contains exactly the requests of this run.
        scrubber: What to scrub; `CassetteScrubber.from_environment()` when None.
        **vcr_options: More `vcr.VCR` options; they replace the ones set here, except
            `before_record_request` and `before_record_response`, which run before the
            scrubber. Another `serializer` skips the credential scan before writing.

    Returns:
        The configured `vcr.VCR`, with the `"graphql"` matcher and the `"lamatic-yaml"`
        serializer registered.

    Raises:
        ImportError: vcrpy is not installed.
        ValueError: An unknown record mode.
    """
    vcr = _import_vcr()
    vcr_mode = _check_record_mode(record_mode)
    scrubber = scrubber if scrubber is not None else CassetteScrubber.from_environment()
    # The scrubber runs after any hook of the caller's, so a hook cannot bring a secret back.
    request_hooks = [*_as_hooks(vcr_options.pop("before_record_request", None))]
    response_hooks = [*_as_hooks(vcr_options.pop("before_record_response", None))]
    options: dict[str, Any] = {
        "serializer": "lamatic-yaml",
        "record_mode": vcr_mode,
        "match_on": MATCH_ON,
        "before_record_request": [*request_hooks, scrubber.scrub_request],
        "before_record_response": [*response_hooks, scrubber.scrub_response],
        "decode_compressed_response": True,
        "drop_unused_requests": record_mode == "rewrite",
    }
    if cassette_dir is not None:
        options["cassette_library_dir"] = os.fspath(cassette_dir)
    options.update(vcr_options)
    configured = vcr.VCR(**options)
    configured.register_serializer("lamatic-yaml", PrettyJSONYAMLSerializer(scrubber.secret_values))
    configured.register_matcher("graphql", match_graphql_request)
    return configured


class CassetteHandle:
    """The cassette in use inside `use_lamatic_cassette`.

    Attributes:
        path: The cassette file.
        record_mode: The record mode in use.
        cassette: vcrpy's `Cassette` object, with `play_count`, `all_played` and `requests`.
    """

    def __init__(self, path: Path, record_mode: RecordMode, cassette: Any) -> None:
        self.path = path
        self.record_mode = record_mode
        self.cassette = cassette
        self.discarded = False

    def discard(self) -> None:
        """Keep the previous cassette file and throw away what this block recorded.

        It has an effect only in `"rewrite"` mode. Call it when the test using the cassette
        failed, so a broken recording does not replace a good one.
        """
        self.discarded = True


@contextlib.contextmanager
def use_lamatic_cassette(
    path: str | os.PathLike[str],
    *,
    record_mode: RecordMode = "none",
    scrubber: CassetteScrubber | None = None,
    record_command: str | None = None,
    **vcr_options: Any,
) -> Iterator[CassetteHandle]:
    """Replay or record one cassette file, configured by `lamatic_vcr()`.

    In `"rewrite"` mode the recording goes to a temporary file next to `path`, which replaces
    `path` only when the block ends without an exception and without `handle.discard()`. A
    block that sends no request writes a cassette with no interactions.

    Args:
        path: The cassette file, usually ending in `.yaml`.
        record_mode: See `RecordMode`.
        scrubber: What to scrub; `CassetteScrubber.from_environment()` when None.
        record_command: The command that records this cassette, quoted in the error raised
            when it is missing.
        **vcr_options: More `vcr.VCR` options.

    Yields:
        A `CassetteHandle`.

    Raises:
        MissingCassetteError: `record_mode` is `"none"` and `path` does not exist.
        ImportError: vcrpy is not installed.
    """
    cassette_path = Path(path)
    scrubber = scrubber if scrubber is not None else CassetteScrubber.from_environment()
    configured = lamatic_vcr(record_mode=record_mode, scrubber=scrubber, **vcr_options)
    if record_mode == "none" and not cassette_path.is_file():
        how = (
            f" Record it with: {record_command}"
            if record_command
            else (" Record it by running the test once with record_mode='rewrite'.")
        )
        raise MissingCassetteError(
            f"Cassette {cassette_path} does not exist, and record mode 'none' only replays, "
            f"so the test cannot run offline.{how}"
        )

    if record_mode != "rewrite":
        with configured.use_cassette(str(cassette_path)) as cassette:
            yield CassetteHandle(cassette_path, record_mode, cassette)
        return

    cassette_path.parent.mkdir(parents=True, exist_ok=True)
    temporary = cassette_path.with_name(f".{cassette_path.name}.{uuid.uuid4().hex}.recording")
    handle: CassetteHandle | None = None
    try:
        with configured.use_cassette(str(temporary)) as cassette:
            handle = CassetteHandle(cassette_path, record_mode, cassette)
            yield handle
        if handle.discarded:
            return
        if not temporary.exists():
            serializer = PrettyJSONYAMLSerializer(scrubber.secret_values)
            temporary.write_text(serializer.serialize({"version": 1, "interactions": []}))
        os.replace(temporary, cassette_path)
    finally:
        temporary.unlink(missing_ok=True)
