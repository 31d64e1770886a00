"""The test server's GraphQL layer: parsing, validation, variables, execution and projection."""

from __future__ import annotations

from typing import Any

import pytest
from graphql import print_schema

from langchain_lamatic.testing._graphql import (
    SCHEMA,
    FieldError,
    GraphQLRequestError,
    execute_request,
    prepare_request,
    summarize_request,
)

EXECUTE_WORKFLOW = """
query ExecuteWorkflow($workflowId: String!, $payload: JSON!) {
  executeWorkflow(workflowId: $workflowId, payload: $payload) { status result }
}
"""


class RecordingHandler:
    """An OperationHandler that records its calls and returns canned values."""

    def __init__(self, status: dict[str, Any] | None = None) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        self.status = status or {"status": "success", "output": {"a": 1}}
        self.error: Exception | None = None

    def _call(self, name: str, *args: Any) -> None:
        self.calls.append((name, args))
        if self.error is not None:
            raise self.error

    def execute_workflow(self, workflow_id: str, payload: Any) -> dict[str, Any]:
        self._call("execute_workflow", workflow_id, payload)
        return {"status": "success", "result": {"echo": payload}, "requestId": "r-1"}

    def execute_agent(self, agent_id: str, payload: Any) -> dict[str, Any]:
        self._call("execute_agent", agent_id, payload)
        return {"status": "success", "result": {"agent": agent_id}, "requestId": "r-2"}

    def check_status(self, request_id: str) -> dict[str, Any]:
        self._call("check_status", request_id)
        return self.status

    def submit_feedback(
        self, request_id: str, rating: int | None, comment: str | None, metadata: Any
    ) -> dict[str, Any]:
        self._call("submit_feedback", request_id, rating, comment, metadata)
        return {"success": True, "message": "Feedback submitted", "data": None, "error": None}

    def start_stream(
        self, workflow_id: str | None, payload: Any, source: str | None, command: str | None
    ) -> None:
        self._call("start_stream", workflow_id, payload, source, command)


def rejection(body: Any) -> GraphQLRequestError:
    with pytest.raises(GraphQLRequestError) as caught:
        prepare_request(body)
    return caught.value


def code_of(error: GraphQLRequestError) -> str:
    code: str = error.body["errors"][0]["extensions"]["code"]
    return code


def run(query: str, variables: dict[str, Any] | None = None, handler: Any = None) -> Any:
    request = prepare_request({"query": query, "variables": variables or {}})
    return execute_request(request, handler or RecordingHandler())


def test_schema_declares_the_lamatic_operations() -> None:
    sdl = print_schema(SCHEMA)
    assert "executeWorkflow(workflowId: String!, payload: JSON): WorkflowResult" in sdl
    assert "executeAgent(agentId: String!, payload: JSON!): WorkflowResult" in sdl
    assert "checkStatus(requestId: String!): JSON" in sdl
    assert (
        "submitFeedback(requestId: String!, rating: Int, comment: String, metadata: JSON): "
        "FeedbackResult" in sdl
    )
    assert (
        "executeWorkflowWithStream(workflowId: String, payload: JSON!, source: String, "
        "command: String): JSON!" in sdl
    )


def test_malformed_query_is_a_parse_failure() -> None:
    error = rejection({"query": "query { executeWorkflow(workflowId: "})
    assert error.status == 400
    assert code_of(error) == "GRAPHQL_PARSE_FAILED"
    assert "locations" in error.body["errors"][0]


def test_unknown_field_is_a_validation_failure() -> None:
    error = rejection({"query": '{ executeFlow(workflowId: "x") { status } }'})
    assert error.status == 400
    assert code_of(error) == "GRAPHQL_VALIDATION_FAILED"
    assert "executeFlow" in error.body["errors"][0]["message"]


def test_execute_workflow_as_mutation_is_rejected() -> None:
    error = rejection(
        {"query": 'mutation { executeWorkflow(workflowId: "x", payload: {}) { status } }'}
    )
    assert code_of(error) == "GRAPHQL_VALIDATION_FAILED"
    assert "Mutation" in error.body["errors"][0]["message"]


def test_missing_selection_on_workflow_result_is_rejected() -> None:
    error = rejection({"query": '{ executeWorkflow(workflowId: "x") }'})
    assert code_of(error) == "GRAPHQL_VALIDATION_FAILED"


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ([], "JSON object"),
        ({}, "non-empty `query`"),
        ({"query": ""}, "non-empty `query`"),
        ({"query": 5}, "must be a string"),
        ({"query": '{ checkStatus(requestId: "r") }', "variables": "x"}, "not a string"),
        ({"query": '{ checkStatus(requestId: "r") }', "operationName": 3}, "operationName"),
    ],
)
def test_body_of_wrong_shape_is_a_bad_request(body: Any, fragment: str) -> None:
    error = rejection(body)
    assert error.status == 400
    assert code_of(error) == "BAD_REQUEST"
    assert fragment in error.body["errors"][0]["message"]


def test_several_operations_need_an_operation_name() -> None:
    query = 'query A { checkStatus(requestId: "a") } query B { checkStatus(requestId: "b") }'
    error = rejection({"query": query})
    assert code_of(error) == "OPERATION_RESOLUTION_FAILURE"
    assert prepare_request({"query": query, "operationName": "B"}).operation_name == "B"


def test_unknown_operation_name_is_rejected() -> None:
    error = rejection({"query": 'query A { checkStatus(requestId: "a") }', "operationName": "Z"})
    assert code_of(error) == "OPERATION_RESOLUTION_FAILURE"
    assert "'Z'" in error.body["errors"][0]["message"]


def test_check_status_is_valid_without_selection() -> None:
    outcome = run('{ checkStatus(requestId: "r") }')
    assert outcome.body == {"data": {"checkStatus": {"status": "success", "output": {"a": 1}}}}


def test_check_status_returns_only_selected_keys() -> None:
    outcome = run('{ checkStatus(requestId: "r") { status result } }')
    assert outcome.body == {"data": {"checkStatus": {"status": "success", "result": None}}}


def test_check_status_selection_supports_aliases_and_nesting() -> None:
    handler = RecordingHandler({"status": "success", "output": {"a": 1, "b": 2}})
    outcome = run('{ checkStatus(requestId: "r") { state: status output { b } } }', None, handler)
    assert outcome.body["data"]["checkStatus"] == {"state": "success", "output": {"b": 2}}


def test_check_status_selection_rejects_arguments() -> None:
    error = rejection({"query": '{ checkStatus(requestId: "r") { status(x: 1) } }'})
    assert code_of(error) == "GRAPHQL_VALIDATION_FAILED"
    assert "cannot take arguments" in error.body["errors"][0]["message"]


def test_selection_on_other_json_fields_stays_invalid() -> None:
    query = '{ executeWorkflow(workflowId: "x") { status result { summary } } }'
    error = rejection({"query": query})
    assert code_of(error) == "GRAPHQL_VALIDATION_FAILED"


def test_wrong_variable_type_is_bad_user_input() -> None:
    handler = RecordingHandler()
    with pytest.raises(GraphQLRequestError) as caught:
        run(EXECUTE_WORKFLOW, {"workflowId": 42, "payload": {}}, handler)
    assert caught.value.status == 400
    assert code_of(caught.value) == "BAD_USER_INPUT"
    assert handler.calls == []


def test_missing_required_variable_is_bad_user_input() -> None:
    with pytest.raises(GraphQLRequestError) as caught:
        run(EXECUTE_WORKFLOW, {"workflowId": "x"})
    assert code_of(caught.value) == "BAD_USER_INPUT"
    assert "$payload" in caught.value.body["errors"][0]["message"]


def test_payload_literal_may_contain_variables() -> None:
    handler = RecordingHandler()
    query = """
    query Run($topic: String!, $days: Int, $ratio: Float, $tags: [String]) {
      executeWorkflow(
        workflowId: "plan"
        payload: {topic: $topic, days: $days, nested: {ratio: $ratio, tags: $tags}}
      ) { status result }
    }
    """
    outcome = run(query, {"topic": "queues", "days": 3, "ratio": 0.5, "tags": ["a"]}, handler)
    expected = {"topic": "queues", "days": 3, "nested": {"ratio": 0.5, "tags": ["a"]}}
    assert handler.calls == [("execute_workflow", ("plan", expected))]
    assert outcome.body["data"]["executeWorkflow"]["result"] == {"echo": expected}


def test_request_id_is_returned_only_when_selected() -> None:
    without = run(EXECUTE_WORKFLOW, {"workflowId": "x", "payload": {}})
    query = '{ executeWorkflow(workflowId: "x", payload: {}) { status requestId } }'
    with_id = run(query)
    assert "requestId" not in without.body["data"]["executeWorkflow"]
    assert with_id.body["data"]["executeWorkflow"] == {"status": "success", "requestId": "r-1"}


def test_field_error_sets_status_code_and_extensions() -> None:
    handler = RecordingHandler()
    handler.error = FieldError("Invalid payload", "BAD_USER_INPUT", http_status=422, field="days")
    outcome = run(EXECUTE_WORKFLOW, {"workflowId": "x", "payload": {}}, handler)
    error = outcome.body["errors"][0]
    assert outcome.status == 422
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": "days"}
    assert error["path"] == ["executeWorkflow"]
    assert outcome.body["data"] == {"executeWorkflow": None}


def test_field_error_with_status_200_keeps_status_200() -> None:
    handler = RecordingHandler()
    handler.error = FieldError("Flow not found", "NOT_FOUND")
    outcome = run(EXECUTE_WORKFLOW, {"workflowId": "x", "payload": {}}, handler)
    assert outcome.status == 200
    assert outcome.body["errors"][0]["message"] == "Flow not found"


def test_unexpected_resolver_error_is_labelled_internal() -> None:
    handler = RecordingHandler()
    handler.error = RuntimeError("boom")
    outcome = run(EXECUTE_WORKFLOW, {"workflowId": "x", "payload": {}}, handler)
    assert outcome.body["errors"][0]["extensions"]["code"] == "INTERNAL_SERVER_ERROR"


def test_agent_and_feedback_reach_the_handler() -> None:
    handler = RecordingHandler()
    run('{ executeAgent(agentId: "a", payload: {q: "x"}) { status result } }', None, handler)
    mutation = (
        'mutation { submitFeedback(requestId: "r", rating: 5, comment: "good", '
        'metadata: {source: "test"}) { success message data error } }'
    )
    outcome = run(mutation, None, handler)
    assert handler.calls == [
        ("execute_agent", ("a", {"q": "x"})),
        ("submit_feedback", ("r", 5, "good", {"source": "test"})),
    ]
    assert outcome.body["data"]["submitFeedback"]["success"] is True


def test_subscription_passes_its_arguments_to_start_stream() -> None:
    handler = RecordingHandler()
    query = (
        "subscription S($id: String, $payload: JSON!) { executeWorkflowWithStream("
        'workflowId: $id, payload: $payload, source: "sdk") }'
    )
    run(query, {"id": "flow", "payload": {"a": 1}}, handler)
    assert handler.calls == [("start_stream", ("flow", {"a": 1}, "sdk", None))]


def test_subscription_with_two_root_fields_is_rejected() -> None:
    query = (
        "subscription { a: executeWorkflowWithStream(payload: {}) "
        "b: executeWorkflowWithStream(payload: {}) }"
    )
    assert code_of(rejection({"query": query})) == "GRAPHQL_VALIDATION_FAILED"


def test_summary_reads_operation_and_target_from_variables() -> None:
    summary = summarize_request(
        {"query": EXECUTE_WORKFLOW, "variables": {"workflowId": "flow-a", "payload": {}}}
    )
    assert summary.operation_type == "query"
    assert summary.root_field == "executeWorkflow"
    assert summary.target_id == "flow-a"


def test_summary_reads_target_from_literals_and_fragments() -> None:
    query = 'query { ...F } fragment F on Query { checkStatus(requestId: "req-9") }'
    summary = summarize_request({"query": query})
    assert summary.root_field == "checkStatus"
    assert summary.target_id == "req-9"


@pytest.mark.parametrize(
    "body", [None, "text", {"query": "{ broken"}, {"query": 1}, {"variables": {"a": 1}}]
)
def test_summary_of_unreadable_body_has_no_operation(body: Any) -> None:
    summary = summarize_request(body)
    assert summary.root_field is None
    assert summary.target_id is None


def test_non_null_field_error_keeps_status() -> None:
    handler = RecordingHandler()
    handler.error = FieldError("Invalid payload", "BAD_USER_INPUT", http_status=422, field="a")
    query = 'subscription { executeWorkflowWithStream(workflowId: "f", payload: {a: 1}) }'
    outcome = run(query, None, handler)
    assert outcome.status == 422
    assert outcome.body["data"] is None
    assert outcome.body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
