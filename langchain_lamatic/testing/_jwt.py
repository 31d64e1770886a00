"""HS256 JSON Web Tokens with the standard library only.

The test server mints and verifies Lamatic access tokens (RFC 7519, HS256) without PyJWT, so
`langchain-lamatic[testing]` needs no JWT library. Only the compact serialisation with the
`HS256` algorithm is supported, because that is the only form Lamatic issues.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from typing import Any

__all__ = [
    "ExpiredTokenError",
    "ImmatureTokenError",
    "InvalidTokenError",
    "InvalidTokenSignatureError",
    "MalformedTokenError",
    "decode_hs256",
    "encode_hs256",
]


class InvalidTokenError(ValueError):
    """Base class for a token the server rejects."""


class MalformedTokenError(InvalidTokenError):
    """Raised when a token is not a compact HS256 JWT with a JSON object as claims."""


class InvalidTokenSignatureError(InvalidTokenError):
    """Raised when a token's signature does not match the secret key."""


class ExpiredTokenError(InvalidTokenError):
    """Raised when a correctly signed token is past its `exp` claim."""


class ImmatureTokenError(InvalidTokenError):
    """Raised when a correctly signed token is used before its `nbf` claim."""


def _b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_decode(segment: str) -> bytes:
    padding = "=" * (-len(segment) % 4)
    try:
        return base64.urlsafe_b64decode(segment + padding)
    except (binascii.Error, ValueError) as error:
        raise MalformedTokenError("token segment is not valid base64url") from error


def _sign(signing_input: bytes, secret: str) -> bytes:
    return hmac.new(secret.encode("utf-8"), signing_input, hashlib.sha256).digest()


def encode_hs256(claims: Mapping[str, Any], secret: str) -> str:
    """Sign `claims` with HMAC-SHA256 and return the compact JWT.

    Args:
        claims: JSON-serialisable claims, for example `{"project_id": ..., "exp": ...}`.
        secret: The shared secret key, used as UTF-8 bytes.

    Returns:
        The token as `header.payload.signature`, each part base64url without padding.
    """
    header = {"alg": "HS256", "typ": "JWT"}
    header_segment = _b64url_encode(json.dumps(header, separators=(",", ":")).encode("utf-8"))
    claims_segment = _b64url_encode(json.dumps(dict(claims), separators=(",", ":")).encode("utf-8"))
    signing_input = f"{header_segment}.{claims_segment}".encode("ascii")
    return f"{header_segment}.{claims_segment}.{_b64url_encode(_sign(signing_input, secret))}"


def _decode_json_segment(segment: str, part: str) -> dict[str, Any]:
    try:
        value = json.loads(_b64url_decode(segment))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise MalformedTokenError(f"token {part} is not valid JSON") from error
    if not isinstance(value, dict):
        raise MalformedTokenError(f"token {part} is not a JSON object")
    return value


def _check_time_claim(claims: Mapping[str, Any], name: str) -> float | None:
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise MalformedTokenError(
            f"token claim {name!r} must be a number of seconds since the epoch"
        )
    return float(value)


def decode_hs256(token: str, secret: str, *, now: float | None = None) -> dict[str, Any]:
    """Verify an HS256 token and return its claims.

    The signature is checked before the claims are read, so a forged token never reaches the
    time checks. `exp` and `nbf` are optional and have no leeway.

    Args:
        token: The compact JWT.
        secret: The shared secret key, used as UTF-8 bytes.
        now: The current time in seconds since the epoch; `time.time()` when None.

    Returns:
        The claims object.

    Raises:
        MalformedTokenError: The token is not three base64url segments of JSON objects, the
            header names another algorithm than HS256, or a time claim is not a number.
        InvalidTokenSignatureError: The signature does not match `secret`.
        ExpiredTokenError: `exp` is not in the future.
        ImmatureTokenError: `nbf` is in the future.
    """
    parts = token.split(".")
    if len(parts) != 3 or not all(parts[:2]):
        raise MalformedTokenError("token must have three dot-separated segments")
    header_segment, claims_segment, signature_segment = parts
    header = _decode_json_segment(header_segment, "header")
    if header.get("alg") != "HS256":
        raise MalformedTokenError(f"token algorithm must be HS256, got {header.get('alg')!r}")

    signing_input = f"{header_segment}.{claims_segment}".encode("ascii", errors="replace")
    signature = _b64url_decode(signature_segment)
    if not hmac.compare_digest(signature, _sign(signing_input, secret)):
        raise InvalidTokenSignatureError("token signature does not match the project's secret key")

    claims = _decode_json_segment(claims_segment, "claims")
    current = time.time() if now is None else now
    expires_at = _check_time_claim(claims, "exp")
    if expires_at is not None and current >= expires_at:
        raise ExpiredTokenError("token has expired")
    not_before = _check_time_claim(claims, "nbf")
    if not_before is not None and current < not_before:
        raise ImmatureTokenError("token is not valid yet because its nbf claim is in the future")
    return claims
