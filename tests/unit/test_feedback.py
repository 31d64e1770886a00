"""LamaticClient.submit_feedback on a MockTransport: request, success, typed failures."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from langchain_lamatic import (
    LamaticAuthenticationError,
    LamaticBadRequestError,
    LamaticNotFoundError,
    LamaticResponseError,
    LamaticServerError,
)

if TYPE_CHECKING:
    from tests.unit.conftest import MockLamatic, SleepRecorder

REQUEST_ID = "req-7"


def feedback_reply(
    success: Any,
    *,
    message: str | None = "Feedback submitted",
    error: str | None = None,
    data: Any = None,
) -> Any:
    body = {"success": success, "message": message, "data": data, "error": error}

    def build(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"data": {"submitFeedback": body}}, request=request)

    return build


def test_feedback_is_a_mutation_with_all_variables(lamatic: MockLamatic) -> None:
    lamatic.respond(feedback_reply(True))

    lamatic.client().submit_feedback(REQUEST_ID, 5, "spot on", {"user": "u-1"})

    body = lamatic.bodies()[0]
    assert body["query"].startswith("mutation SubmitFeedback")
    assert body["variables"] == {
        "requestId": REQUEST_ID,
        "rating": 5,
        "comment": "spot on",
        "metadata": {"user": "u-1"},
    }


def test_optional_feedback_fields_are_sent_as_null(lamatic: MockLamatic) -> None:
    lamatic.respond(feedback_reply(True))

    lamatic.client().submit_feedback(REQUEST_ID, -1)

    variables = lamatic.bodies()[0]["variables"]
    assert variables["comment"] is None
    assert variables["metadata"] is None


def test_accepted_feedback_returns_success_response(lamatic: MockLamatic) -> None:
    lamatic.respond(feedback_reply(True, data={"id": "fb-1"}))

    response = lamatic.client().submit_feedback(REQUEST_ID, 4)

    assert response.status == "success"
    assert response.message == "Feedback submitted"
    assert response.result == {"id": "fb-1"}
    assert response.request_id == REQUEST_ID


def test_unknown_request_id_raises_not_found(lamatic: MockLamatic) -> None:
    lamatic.respond(
        feedback_reply(
            False, message="Feedback not submitted", error=f"Invalid request id: '{REQUEST_ID}'"
        )
    )

    with pytest.raises(LamaticNotFoundError) as caught:
        lamatic.client().submit_feedback(REQUEST_ID, 3)

    assert caught.value.request_id == REQUEST_ID
    assert "Invalid request id" in str(caught.value)


def test_other_rejection_raises_bad_request(lamatic: MockLamatic) -> None:
    lamatic.respond(feedback_reply(False, message="Rating must be between 1 and 5"))

    with pytest.raises(LamaticBadRequestError, match="Rating must be between 1 and 5"):
        lamatic.client().submit_feedback(REQUEST_ID, 9)


def test_rejection_without_text_says_so(lamatic: MockLamatic) -> None:
    lamatic.respond(feedback_reply(False, message=None))

    with pytest.raises(LamaticBadRequestError, match="no error message was returned"):
        lamatic.client().submit_feedback(REQUEST_ID, 2)


def test_answer_without_success_flag_raises_response_error(lamatic: MockLamatic) -> None:
    lamatic.respond(feedback_reply("yes"))

    with pytest.raises(LamaticResponseError, match="success"):
        lamatic.client().submit_feedback(REQUEST_ID, 2)


def test_graphql_error_is_classified(lamatic: MockLamatic) -> None:
    lamatic.respond(lamatic.graphql_errors("Invalid API key", code="UNAUTHENTICATED"))

    with pytest.raises(LamaticAuthenticationError):
        lamatic.client().submit_feedback(REQUEST_ID, 5)


def test_feedback_is_not_retried_after_http_500(
    lamatic: MockLamatic, no_sleep: SleepRecorder
) -> None:
    lamatic.default = lamatic.reply(500, json_body={"errors": [{"message": "boom"}]})

    with pytest.raises(LamaticServerError):
        lamatic.client().submit_feedback(REQUEST_ID, 5)

    assert len(lamatic.requests) == 1


@pytest.mark.parametrize("rating", [True, 4.5, "5", None])
def test_non_int_rating_is_rejected(lamatic: MockLamatic, rating: Any) -> None:
    with pytest.raises(TypeError, match="rating must be an int"):
        lamatic.client().submit_feedback(REQUEST_ID, rating)

    assert lamatic.requests == []


def test_rating_outside_graphql_int_is_rejected(lamatic: MockLamatic) -> None:
    with pytest.raises(ValueError, match="GraphQL Int"):
        lamatic.client().submit_feedback(REQUEST_ID, 2**31)

    assert lamatic.requests == []


def test_comment_of_wrong_type_is_rejected(lamatic: MockLamatic) -> None:
    with pytest.raises(TypeError, match="comment"):
        lamatic.client().submit_feedback(REQUEST_ID, 5, comment=42)  # type: ignore[arg-type]

    assert lamatic.requests == []


def test_metadata_that_is_not_a_mapping_is_rejected(lamatic: MockLamatic) -> None:
    with pytest.raises(TypeError, match="metadata"):
        lamatic.client().submit_feedback(REQUEST_ID, 5, metadata=["a"])  # type: ignore[arg-type]

    assert lamatic.requests == []


def test_empty_request_id_is_rejected(lamatic: MockLamatic) -> None:
    with pytest.raises(ValueError, match="request_id"):
        lamatic.client().submit_feedback("", 5)

    assert lamatic.requests == []


async def test_asubmit_feedback_sends_and_reads_answer(lamatic: MockLamatic) -> None:
    lamatic.respond(feedback_reply(True))

    response = await lamatic.client().asubmit_feedback(REQUEST_ID, 1, "wrong answer")

    assert response.status == "success"
    assert json.loads(lamatic.requests[0].content)["variables"]["comment"] == "wrong answer"


async def test_asubmit_feedback_raises_not_found(lamatic: MockLamatic) -> None:
    lamatic.respond(feedback_reply(False, error="Invalid request id: 'nope'"))

    with pytest.raises(LamaticNotFoundError):
        await lamatic.client().asubmit_feedback("nope", 1)
