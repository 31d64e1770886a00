"""Connection settings: environment fallbacks, credential rules and endpoint normalisation."""

from __future__ import annotations

import difflib
import ipaddress
import os
from dataclasses import dataclass
from typing import Any, Literal

import httpx
from pydantic import BaseModel, SecretStr

ENDPOINT_ENV = "LAMATIC_ENDPOINT"
PROJECT_ID_ENV = "LAMATIC_PROJECT_ID"
API_KEY_ENV = "LAMATIC_API_KEY"
ACCESS_TOKEN_ENV = "LAMATIC_ACCESS_TOKEN"  # noqa: S105

CredentialKind = Literal["api_key", "access_token"]


@dataclass(frozen=True)
class Settings:
    """Resolved connection settings. The credential is kept as ``SecretStr``."""

    endpoint: str
    project_id: str
    credential: SecretStr
    credential_kind: CredentialKind


def header_value_problem(text: str, *, allow_spaces: bool) -> str | None:
    """Describe the first character of ``text`` that an HTTP header cannot carry, or return None.

    httpx raises ``UnicodeEncodeError`` for non-ASCII header values and h11 rejects control
    characters only once the connection is open, with the whole value in its message. The
    description names the position and the kind of character, never the value itself.
    """
    for position, character in enumerate(text, start=1):
        if character == " " and allow_spaces:
            continue
        if "\x21" <= character <= "\x7e":
            continue
        if character > "\x7e":
            return f"a non-ASCII character at position {position}"
        if character == " ":
            return f"a space at position {position}"
        return f"a control character (such as a line break) at position {position}"
    return None


def check_setting_names(model: type[BaseModel], values: Any) -> None:
    """Raise ValueError naming the first keyword that is not a field of ``model``.

    pydantic would drop it, or with ``extra="forbid"`` report it with its value, which may be
    a credential passed under a misspelled name. The message names only the keyword.
    """
    if not isinstance(values, dict):
        return
    known = set(model.model_fields)
    known.update(field.alias for field in model.model_fields.values() if field.alias)
    for name in values:
        if name in known:
            continue
        text = str(name)
        close = difflib.get_close_matches(text, sorted(known), n=1)
        advice = f"did you mean {close[0]!r}?" if close else "check its spelling"
        raise ValueError(f"{model.__name__} has no setting {text!r}; {advice}")


def _secret_value(value: str | SecretStr | None, name: str) -> SecretStr | None:
    """Return ``value`` stripped as a ``SecretStr``, or None when it is missing or blank.

    Raises:
        TypeError: ``value`` is neither a str nor a ``SecretStr``.
        ValueError: ``value`` contains a character an HTTP header cannot carry; the message
            names ``name`` and the position, not the value.
    """
    if value is None:
        return None
    if isinstance(value, SecretStr):
        text = value.get_secret_value()
    elif isinstance(value, str):
        text = value
    else:
        raise TypeError(
            f"credentials must be str or SecretStr, got {type(value).__name__} for {name}; "
            "pass the key or token as text"
        )
    text = text.strip()
    if not text:
        return None
    problem = header_value_problem(text, allow_spaces=False)
    if problem is not None:
        raise ValueError(
            f"Invalid {name}: it contains {problem}, which cannot be sent in an HTTP header. "
            "Copy the credential again from Lamatic Studio."
        )
    return SecretStr(text)


def _env(name: str) -> str | None:
    value = os.environ.get(name, "").strip()
    return value or None


def resolve_credential(
    api_key: str | SecretStr | None, access_token: str | SecretStr | None
) -> tuple[SecretStr, CredentialKind]:
    """Pick the one credential to use: arguments first, then the environment.

    Credentials given as arguments replace both environment variables, so an explicit
    ``access_token`` is not in conflict with a ``LAMATIC_API_KEY`` set in the shell. Leading
    and trailing whitespace is removed, as from a key read from a file.

    Raises:
        ValueError: when no credential is set, both are set at the same level, or the
            credential contains a character that an HTTP header cannot carry.
    """
    key = _secret_value(api_key, "api_key")
    token = _secret_value(access_token, "access_token")
    source = "arguments"
    if key is None and token is None:
        key = _secret_value(_env(API_KEY_ENV), API_KEY_ENV)
        token = _secret_value(_env(ACCESS_TOKEN_ENV), ACCESS_TOKEN_ENV)
        source = "environment"
    if key is not None and token is not None:
        if source == "arguments":
            raise ValueError("Both api_key and access_token were given; pass exactly one of them.")
        raise ValueError(
            f"Both {API_KEY_ENV} and {ACCESS_TOKEN_ENV} are set; unset one of them, or pass "
            "api_key= or access_token= explicitly."
        )
    if token is not None:
        return token, "access_token"
    if key is not None:
        return key, "api_key"
    raise ValueError(
        f"No Lamatic credential: pass api_key= or access_token=, or set {API_KEY_ENV} or "
        f"{ACCESS_TOKEN_ENV}. Find the API key under Settings > API Keys in Lamatic Studio."
    )


def resolve_text(value: str | None, *, argument: str, env: str, example: str) -> str:
    """Return ``value`` or the environment variable ``env``, or raise naming both.

    The project id is sent as the ``x-project-id`` header, so it must be printable ASCII.
    """
    if value is not None and not isinstance(value, str):
        raise TypeError(f"{argument} must be a str, got {type(value).__name__}")
    resolved = (value or "").strip() or _env(env)
    if not resolved:
        raise ValueError(
            f"Missing {argument}: pass {argument}= or set {env} (for example {example})."
        )
    if env == PROJECT_ID_ENV:
        problem = header_value_problem(resolved, allow_spaces=True)
        if problem is not None:
            raise ValueError(
                f"Invalid {argument} (from {argument}= or {env}): it contains "
                f"{problem}, which cannot be sent in the x-project-id header. Copy the id "
                "again from Lamatic Studio."
            )
    return resolved


def is_loopback_host(host: str) -> bool:
    """Return whether ``host`` names this machine: ``localhost`` or a loopback IP address."""
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _describe_url_error(error: Exception) -> str:
    """Return httpx's reason for rejecting a URL, without any quoted part of the URL."""
    text = str(error)
    return text.split(":", 1)[0] if ":" in text else text


def normalise_endpoint(endpoint: str, *, allow_insecure_http: bool = False) -> str:
    """Return the GraphQL URL for ``endpoint``, appending ``/graphql`` to a bare base URL.

    ``https://x.lamatic.dev``, ``https://x.lamatic.dev/`` and ``https://x.lamatic.dev/graphql/``
    all give ``https://x.lamatic.dev/graphql``. Any other path is kept as given, less one trailing
    slash.

    Raises:
        ValueError: for a URL that is not http(s), has no host, carries credentials, a query or
            a fragment, or uses plain ``http://`` for a host that is not loopback while
            ``allow_insecure_http`` is false.
    """
    raw = endpoint.strip()
    try:
        url = httpx.URL(raw)
    except (httpx.InvalidURL, TypeError) as error:
        # httpx's message names the problem; the text itself is not shown, because a
        # credential pasted into the wrong argument would be echoed.
        raise ValueError(
            f"Invalid endpoint ({len(raw)} characters): {_describe_url_error(error)}; expected "
            "an http(s) URL such as https://<project>.lamatic.dev/graphql"
        ) from None
    if url.scheme not in ("http", "https") or not url.host:
        scheme = f" with scheme {url.scheme!r}" if url.scheme.isalnum() and url.host else ""
        raise ValueError(
            f"Invalid endpoint ({len(raw)} characters){scheme}: expected an http(s) URL such as "
            "https://<project>.lamatic.dev/graphql."
        )
    if url.userinfo:
        raise ValueError(
            "Invalid endpoint: it contains a user name or password; pass credentials as "
            "api_key= or access_token= instead."
        )
    if url.query or url.fragment:
        # A query string may carry a key, so only the part before it is shown.
        without_query = str(url.copy_with(query=None, fragment=None))
        raise ValueError(
            f"Invalid endpoint {without_query!r} with a query string or fragment: remove "
            "them, and pass credentials as api_key= or access_token="
        )
    if url.scheme == "http" and not allow_insecure_http and not is_loopback_host(url.host):
        raise ValueError(
            f"Rejected plain http:// endpoint for {url.host!r}: the credential would travel "
            "unencrypted. Use https://, or pass allow_insecure_http=True if the network is "
            "trusted."
        )

    path = url.path.rstrip("/")
    if path == "":
        path = "/graphql"
    return str(url.copy_with(path=path))
