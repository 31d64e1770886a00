"""Minting Lamatic access tokens: HS256 JWTs signed with the project's secret key.

Servers mint short-lived access tokens for browsers and other callers that must not hold the
project's API key. This is the Python counterpart of the ``jsonwebtoken`` snippet in Lamatic's
SDK docs. It needs PyJWT: ``pip install 'langchain-lamatic[jwt]'``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from pydantic import SecretStr

__all__ = ["access_token_provider", "create_access_token"]


def create_access_token(
    secret_key: str | SecretStr,
    project_id: str,
    expires_in: float | None = None,
) -> str:
    """Mint an HS256 access token for ``project_id``, for the ``X-Lamatic-Signature`` header.

    The claims are ``project_id``, plus ``iat`` and ``exp`` when ``expires_in`` is given.

    Args:
        secret_key: the project's secret key from Lamatic Studio. Never send it to a client.
        project_id: the project the token grants access to.
        expires_in: lifetime in seconds; ``None`` mints a token without expiry.

    Returns:
        The encoded JWT.

    Raises:
        ImportError: PyJWT is not installed; install the ``jwt`` extra.
        ValueError: an empty secret key or project id, or a lifetime that is not positive.
    """
    try:
        import jwt
    except ImportError:
        raise ImportError(
            "create_access_token() needs PyJWT. Install it with: "
            "pip install 'langchain-lamatic[jwt]'"
        ) from None

    key = secret_key.get_secret_value() if isinstance(secret_key, SecretStr) else secret_key
    if not isinstance(key, str) or not key:
        raise ValueError(
            "secret_key must be the project's non-empty secret key; copy it from Lamatic Studio"
        )
    if not isinstance(project_id, str) or not project_id.strip():
        raise ValueError("project_id must be a non-empty str: the id of the token's project")
    # LamaticClient strips the project id it sends as x-project-id, so the claim must match.
    claims: dict[str, object] = {"project_id": project_id.strip()}
    if expires_in is not None:
        if isinstance(expires_in, bool) or not isinstance(expires_in, (int, float)):
            raise ValueError(f"expires_in must be a number of seconds, got {expires_in!r}")
        if not math.isfinite(expires_in) or expires_in <= 0:
            raise ValueError(f"expires_in must be a positive number of seconds, got {expires_in!r}")
        now = int(time.time())
        claims["iat"] = now
        claims["exp"] = now + math.ceil(expires_in)
    return jwt.encode(claims, key, algorithm="HS256")


def access_token_provider(
    secret_key: str | SecretStr,
    project_id: str,
    expires_in: float = 3600,
) -> Callable[[], str]:
    """Return a callable that mints a fresh token each call, for ``access_token_provider=``.

    A long-running server can pass it to ``LamaticClient`` so an expired token is replaced
    the first time Lamatic rejects it.
    """
    secret = secret_key if isinstance(secret_key, SecretStr) else SecretStr(secret_key)
    create_access_token(secret, project_id, expires_in)  # fail now on bad input, not at refresh

    def provide() -> str:
        return create_access_token(secret, project_id, expires_in)

    return provide
