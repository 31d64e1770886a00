"""The test server's standard-library HS256 tokens, checked against PyJWT."""

from __future__ import annotations

import base64
import json
import time

import jwt as pyjwt
import pytest

from langchain_lamatic.testing._jwt import (
    ExpiredTokenError,
    ImmatureTokenError,
    InvalidTokenSignatureError,
    MalformedTokenError,
    decode_hs256,
    encode_hs256,
)

SECRET = "test-secret-key-0123456789abcdef"


def segment(value: object) -> str:
    raw = json.dumps(value).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def test_round_trip_keeps_claims() -> None:
    token = encode_hs256({"project_id": "p", "exp": time.time() + 60}, SECRET)
    assert decode_hs256(token, SECRET)["project_id"] == "p"


def test_pyjwt_accepts_our_tokens() -> None:
    token = encode_hs256({"project_id": "p"}, SECRET)
    assert pyjwt.decode(token, SECRET, algorithms=["HS256"]) == {"project_id": "p"}


def test_we_accept_pyjwt_tokens() -> None:
    token = pyjwt.encode({"project_id": "p", "exp": int(time.time()) + 60}, SECRET, "HS256")
    assert decode_hs256(token, SECRET)["project_id"] == "p"


def test_wrong_secret_is_an_invalid_signature() -> None:
    token = encode_hs256({"project_id": "p"}, "other-secret")
    with pytest.raises(InvalidTokenSignatureError):
        decode_hs256(token, SECRET)


def test_tampered_claims_are_an_invalid_signature() -> None:
    header, _claims, signature = encode_hs256({"project_id": "p"}, SECRET).split(".")
    forged = f"{header}.{segment({'project_id': 'other'})}.{signature}"
    with pytest.raises(InvalidTokenSignatureError):
        decode_hs256(forged, SECRET)


def test_expired_token_is_rejected() -> None:
    token = encode_hs256({"project_id": "p", "exp": time.time() - 1}, SECRET)
    with pytest.raises(ExpiredTokenError):
        decode_hs256(token, SECRET)


def test_token_before_nbf_is_rejected() -> None:
    token = encode_hs256({"project_id": "p", "nbf": time.time() + 60}, SECRET)
    with pytest.raises(ImmatureTokenError):
        decode_hs256(token, SECRET)


def test_none_algorithm_is_rejected() -> None:
    token = f"{segment({'alg': 'none', 'typ': 'JWT'})}.{segment({'project_id': 'p'})}."
    with pytest.raises(MalformedTokenError, match="HS256"):
        decode_hs256(token, SECRET)


@pytest.mark.parametrize(
    "token", ["", "abc", "a.b", "a.b.c.d", "!!!.e30.sig", f"{segment([1])}.e30.x"]
)
def test_malformed_tokens_are_rejected(token: str) -> None:
    with pytest.raises(MalformedTokenError):
        decode_hs256(token, SECRET)


def test_non_numeric_exp_is_malformed() -> None:
    token = encode_hs256({"project_id": "p", "exp": "tomorrow"}, SECRET)
    with pytest.raises(MalformedTokenError, match="exp"):
        decode_hs256(token, SECRET)
