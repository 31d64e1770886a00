"""Minting access tokens with ``create_access_token`` and ``access_token_provider``."""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Any

import jwt
import pytest
from pydantic import SecretStr

from langchain_lamatic import access_token_provider, create_access_token

if TYPE_CHECKING:
    from tests.unit.conftest import MockLamatic

SECRET = "project-secret-key-for-unit-tests-0123456789"
PROJECT = "project-123"


def _decode(token: str, **options: Any) -> dict[str, Any]:
    claims: dict[str, Any] = jwt.decode(token, SECRET, algorithms=["HS256"], **options)
    return claims


def test_token_without_expiry_holds_only_project_id() -> None:
    claims = _decode(create_access_token(SECRET, PROJECT))
    assert claims == {"project_id": PROJECT}


def test_token_with_expiry_holds_iat_and_exp() -> None:
    before = int(time.time())
    claims = _decode(create_access_token(SECRET, PROJECT, expires_in=600))
    after = int(time.time())
    assert claims["project_id"] == PROJECT
    assert before <= claims["iat"] <= after
    assert claims["exp"] == claims["iat"] + 600


def test_fractional_expiry_rounds_up() -> None:
    claims = _decode(create_access_token(SECRET, PROJECT, expires_in=0.2))
    assert claims["exp"] == claims["iat"] + 1


def test_token_header_is_hs256_jwt() -> None:
    header = jwt.get_unverified_header(create_access_token(SECRET, PROJECT))
    assert header["alg"] == "HS256"
    assert header["typ"] == "JWT"


def test_token_signed_with_other_key_fails_verification() -> None:
    token = create_access_token("another-secret-key-of-enough-length-000", PROJECT)
    with pytest.raises(jwt.InvalidSignatureError):
        _decode(token)


def test_secretstr_secret_key_is_accepted() -> None:
    claims = _decode(create_access_token(SecretStr(SECRET), PROJECT, expires_in=60))
    assert claims["project_id"] == PROJECT


def test_expired_token_is_rejected_by_pyjwt(monkeypatch: pytest.MonkeyPatch) -> None:
    issued = time.time() - 120
    monkeypatch.setattr(time, "time", lambda: issued)
    token = create_access_token(SECRET, PROJECT, expires_in=60)
    monkeypatch.undo()
    with pytest.raises(jwt.ExpiredSignatureError):
        _decode(token)


def test_missing_pyjwt_raises_import_error_naming_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "jwt", None)
    with pytest.raises(ImportError, match=r"langchain-lamatic\[jwt\]"):
        create_access_token(SECRET, PROJECT)


def test_missing_pyjwt_fails_provider_creation(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "jwt", None)
    with pytest.raises(ImportError, match="PyJWT"):
        access_token_provider(SECRET, PROJECT)


@pytest.mark.parametrize(
    ("secret_key", "project_id", "expires_in", "message"),
    [
        ("", PROJECT, None, "secret_key"),
        (SecretStr(""), PROJECT, None, "secret_key"),
        (None, PROJECT, None, "secret_key"),
        (SECRET, "", None, "project_id"),
        (SECRET, "   ", None, "project_id"),
        (SECRET, 42, None, "project_id"),
        (SECRET, PROJECT, 0, "positive"),
        (SECRET, PROJECT, -5, "positive"),
        (SECRET, PROJECT, float("inf"), "positive"),
        (SECRET, PROJECT, float("nan"), "positive"),
        (SECRET, PROJECT, "3600", "number of seconds"),
        (SECRET, PROJECT, True, "number of seconds"),
    ],
)
def test_invalid_input_is_rejected(
    secret_key: Any, project_id: Any, expires_in: Any, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        create_access_token(secret_key, project_id, expires_in)


def test_error_does_not_echo_the_secret_key() -> None:
    with pytest.raises(ValueError, match="positive") as caught:
        create_access_token(SECRET, PROJECT, expires_in=-1)
    assert SECRET not in str(caught.value)


def test_provider_mints_a_fresh_token_each_call(monkeypatch: pytest.MonkeyPatch) -> None:
    provide = access_token_provider(SECRET, PROJECT, expires_in=300)
    first = _decode(provide())
    monkeypatch.setattr(time, "time", lambda: first["iat"] + 100.0)
    second = _decode(provide(), options={"verify_iat": False, "verify_exp": False})
    assert second["iat"] == first["iat"] + 100
    assert second["exp"] == second["iat"] + 300


def test_provider_validates_input_at_creation() -> None:
    with pytest.raises(ValueError, match="project_id"):
        access_token_provider(SECRET, "")


def test_provider_feeds_the_client_on_403(lamatic: MockLamatic) -> None:
    expired = create_access_token(SECRET, PROJECT, expires_in=1)
    lamatic.respond(
        lamatic.reply(403, json_body={"errors": [{"message": "Token expired"}]}),
        lamatic.success({"ok": True}),
    )
    client = lamatic.client(
        access_token=expired,
        access_token_provider=access_token_provider(SECRET, PROJECT, expires_in=600),
    )
    assert client.execute_flow("flow-1", {}).result == {"ok": True}
    fresh = lamatic.requests[1].headers["x-lamatic-signature"]
    assert fresh != expired
    assert _decode(fresh)["project_id"] == PROJECT
