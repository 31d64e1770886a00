"""The GraphQL layer of the test server: schema, request parsing, validation and execution.

Requests go through graphql-core the way an Apollo-style server handles them: the body is
checked, the query parsed (`GRAPHQL_PARSE_FAILED`), validated against the schema
(`GRAPHQL_VALIDATION_FAILED`), the operation chosen (`OPERATION_RESOLUTION_FAILURE`), the
variables coerced (`BAD_USER_INPUT`) and the root fields executed. Each of those request-level
failures is HTTP 400. Root-field resolvers call an `OperationHandler`, which runs the flows,
so this module contains no flow logic.

`checkStatus` returns the `JSON` scalar, and stock validation rejects a selection set on a
scalar. The PyPI SDK sends `checkStatus(...) { status result }`, so the schema validation
replaces `ScalarLeafsRule` with a variant that accepts a selection set on that one field, and
the resolver returns only the selected keys of the status object.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

try:
    from graphql import (
        DocumentNode,
        ExecutionResult,
        FieldNode,
        FragmentDefinitionNode,
        FragmentSpreadNode,
        GraphQLArgument,
        GraphQLBoolean,
        GraphQLError,
        GraphQLField,
        GraphQLFloat,
        GraphQLID,
        GraphQLInt,
        GraphQLNonNull,
        GraphQLObjectType,
        GraphQLResolveInfo,
        GraphQLScalarType,
        GraphQLSchema,
        GraphQLString,
        InlineFragmentNode,
        OperationDefinitionNode,
        SelectionSetNode,
        execute,
        get_operation_ast,
        parse,
        specified_rules,
        validate,
    )
    from graphql.utilities import value_from_ast_untyped
    from graphql.validation import ASTValidationRule, ScalarLeafsRule
except ImportError as error:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        "langchain_lamatic.testing needs graphql-core; install it with "
        "pip install 'langchain-lamatic[testing]'"
    ) from error

__all__ = [
    "SCHEMA",
    "ExecutionOutcome",
    "FieldError",
    "GraphQLRequestError",
    "OperationHandler",
    "OperationSummary",
    "PreparedRequest",
    "dumps",
    "error_body",
    "execute_request",
    "prepare_request",
    "project_selection",
    "summarize_request",
]

OperationType = Literal["query", "mutation", "subscription"]

# Argument that names the flow, agent or request a root field works on, used to target faults.
_TARGET_ARGUMENTS = {
    "executeWorkflow": "workflowId",
    "executeAgent": "agentId",
    "checkStatus": "requestId",
    "submitFeedback": "requestId",
    "executeWorkflowWithStream": "workflowId",
}

# The one field that may carry a selection set although its type is the JSON scalar.
_SELECTABLE_JSON_FIELDS = frozenset({("Query", "checkStatus")})


def error_body(message: str, code: str, **extensions: Any) -> dict[str, Any]:
    """Build a GraphQL error list body `{"errors": [{"message", "extensions": {"code"}}]}`."""
    return {"errors": [{"message": message, "extensions": {"code": code, **extensions}}]}


class GraphQLRequestError(Exception):
    """Raised for a request-level failure: the server sends `body` with HTTP `status`."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(status, body)
        self.status = status
        self.body = body

    @classmethod
    def single(cls, status: int, message: str, code: str, **extensions: Any) -> GraphQLRequestError:
        """Build the error for one message and `extensions.code`."""
        return cls(status, error_body(message, code, **extensions))

    @classmethod
    def from_graphql_errors(
        cls, status: int, errors: Sequence[GraphQLError], code: str
    ) -> GraphQLRequestError:
        """Build the error from graphql-core errors, adding `extensions.code` to each."""
        formatted = []
        for error in errors:
            entry = _formatted(error)
            entry["extensions"] = {**entry.get("extensions", {}), "code": code}
            formatted.append(entry)
        return cls(status, {"errors": formatted})


class FieldError(Exception):
    """Raised by a resolver: the field becomes null and the error joins the `errors` list.

    Args:
        message: The error message sent to the client.
        code: The `extensions.code` value.
        http_status: The HTTP status of the whole response when this error occurs.
        extensions: More `extensions` entries, for example the invalid field's name.
    """

    def __init__(
        self, message: str, code: str, *, http_status: int = 200, **extensions: Any
    ) -> None:
        super().__init__(message)
        self.message = message
        self.http_status = http_status
        # graphql-core copies `extensions` of the original error into the located error.
        self.extensions: dict[str, Any] = {"code": code, **extensions}


class OperationHandler(Protocol):
    """Interface of the object the root-field resolvers call, passed per request as context."""

    def execute_workflow(self, workflow_id: str, payload: Any) -> dict[str, Any]:
        """Run a flow and return the `WorkflowResult` object."""
        ...

    def execute_agent(self, agent_id: str, payload: Any) -> dict[str, Any]:
        """Run an agent and return the `WorkflowResult` object."""
        ...

    def check_status(self, request_id: str) -> dict[str, Any]:
        """Return the status object of an execution."""
        ...

    def submit_feedback(
        self, request_id: str, rating: int | None, comment: str | None, metadata: Any
    ) -> dict[str, Any]:
        """Store feedback and return the `FeedbackResult` object."""
        ...

    def start_stream(
        self, workflow_id: str | None, payload: Any, source: str | None, command: str | None
    ) -> None:
        """Check and prepare a streamed execution; the frames are sent after execution."""
        ...


def _handler(info: GraphQLResolveInfo[Any]) -> OperationHandler:
    handler: OperationHandler = info.context
    return handler


def _resolve_execute_workflow(_root: object, info: GraphQLResolveInfo[Any], **args: Any) -> Any:
    return _handler(info).execute_workflow(args["workflowId"], args.get("payload"))


def _resolve_execute_agent(_root: object, info: GraphQLResolveInfo[Any], **args: Any) -> Any:
    return _handler(info).execute_agent(args["agentId"], args["payload"])


def _resolve_check_status(_root: object, info: GraphQLResolveInfo[Any], **args: Any) -> Any:
    status = _handler(info).check_status(args["requestId"])
    selections = [node.selection_set for node in info.field_nodes if node.selection_set]
    if not selections:
        return status
    return project_selection(status, selections, info.fragments)


def _resolve_submit_feedback(_root: object, info: GraphQLResolveInfo[Any], **args: Any) -> Any:
    return _handler(info).submit_feedback(
        args["requestId"], args.get("rating"), args.get("comment"), args.get("metadata")
    )


def _resolve_stream(_root: object, info: GraphQLResolveInfo[Any], **args: Any) -> Any:
    _handler(info).start_stream(
        args.get("workflowId"), args["payload"], args.get("source"), args.get("command")
    )
    # The field is `JSON!`; the frames themselves are written by the HTTP layer afterwards.
    return {"accepted": True}


def _build_schema() -> GraphQLSchema:
    json_scalar = GraphQLScalarType(
        "JSON",
        description="Any JSON value; object literals may contain variables.",
    )
    workflow_result = GraphQLObjectType(
        "WorkflowResult",
        {
            "status": GraphQLField(GraphQLString),
            "result": GraphQLField(json_scalar),
            "requestId": GraphQLField(GraphQLString),
            "message": GraphQLField(GraphQLString),
        },
    )
    feedback_result = GraphQLObjectType(
        "FeedbackResult",
        {
            "success": GraphQLField(GraphQLNonNull(GraphQLBoolean)),
            "message": GraphQLField(GraphQLString),
            "data": GraphQLField(json_scalar),
            "error": GraphQLField(GraphQLString),
        },
    )
    required_string = GraphQLNonNull(GraphQLString)
    query = GraphQLObjectType(
        "Query",
        {
            "executeWorkflow": GraphQLField(
                workflow_result,
                args={
                    "workflowId": GraphQLArgument(required_string),
                    "payload": GraphQLArgument(json_scalar),
                },
                resolve=_resolve_execute_workflow,
            ),
            "executeAgent": GraphQLField(
                workflow_result,
                args={
                    "agentId": GraphQLArgument(required_string),
                    "payload": GraphQLArgument(GraphQLNonNull(json_scalar)),
                },
                resolve=_resolve_execute_agent,
            ),
            "checkStatus": GraphQLField(
                json_scalar,
                args={"requestId": GraphQLArgument(required_string)},
                resolve=_resolve_check_status,
            ),
        },
    )
    mutation = GraphQLObjectType(
        "Mutation",
        {
            "submitFeedback": GraphQLField(
                feedback_result,
                args={
                    "requestId": GraphQLArgument(required_string),
                    "rating": GraphQLArgument(GraphQLInt),
                    "comment": GraphQLArgument(GraphQLString),
                    "metadata": GraphQLArgument(json_scalar),
                },
                resolve=_resolve_submit_feedback,
            ),
        },
    )
    subscription = GraphQLObjectType(
        "Subscription",
        {
            "executeWorkflowWithStream": GraphQLField(
                GraphQLNonNull(json_scalar),
                args={
                    "workflowId": GraphQLArgument(GraphQLString),
                    "payload": GraphQLArgument(GraphQLNonNull(json_scalar)),
                    "source": GraphQLArgument(GraphQLString),
                    "command": GraphQLArgument(GraphQLString),
                },
                resolve=_resolve_stream,
            ),
        },
    )
    # Every built-in scalar is declared so that typed variables such as `$days: Float` work
    # inside payload literals, as on a server whose schema mentions them somewhere.
    return GraphQLSchema(
        query=query,
        mutation=mutation,
        subscription=subscription,
        types=[GraphQLBoolean, GraphQLFloat, GraphQLID, GraphQLInt, GraphQLString],
    )


SCHEMA = _build_schema()
"""The executable schema; `graphql.print_schema(SCHEMA)` shows it as SDL."""


class _SelectableJSONLeafsRule(ScalarLeafsRule):
    """`ScalarLeafsRule` that also accepts `checkStatus { status result }`.

    Inside that selection set every name is a key of the returned JSON object. Arguments,
    directives, typed inline fragments and fragment spreads there are reported as errors,
    because the projection would ignore them.
    """

    def enter_field(self, node: FieldNode, *args: Any) -> None:
        parent = self.context.get_parent_type()
        if (
            node.selection_set is not None
            and parent is not None
            and (parent.name, node.name.value) in _SELECTABLE_JSON_FIELDS
        ):
            for problem, culprit in _json_selection_problems(node.selection_set):
                self.report_error(
                    GraphQLError(
                        f"The selection on '{node.name.value}' picks keys of a JSON object:"
                        f" {problem}.",
                        culprit,
                    )
                )
            return
        super().enter_field(node, *args)


def _json_selection_problems(
    selection_set: SelectionSetNode,
) -> Iterator[tuple[str, FieldNode | InlineFragmentNode | FragmentSpreadNode]]:
    for selection in selection_set.selections:
        if isinstance(selection, FieldNode):
            if selection.arguments:
                yield f"field '{selection.name.value}' cannot take arguments", selection
            if selection.directives:
                yield f"field '{selection.name.value}' cannot take directives", selection
            if selection.selection_set is not None:
                yield from _json_selection_problems(selection.selection_set)
        elif isinstance(selection, InlineFragmentNode):
            if selection.type_condition is not None or selection.directives:
                yield "inline fragments cannot have a type condition or directives", selection
            yield from _json_selection_problems(selection.selection_set)
        elif isinstance(selection, FragmentSpreadNode):
            yield "fragment spreads are not supported there", selection


_VALIDATION_RULES: tuple[type[ASTValidationRule], ...] = tuple(
    _SelectableJSONLeafsRule if rule is ScalarLeafsRule else rule for rule in specified_rules
)


def project_selection(
    value: Any,
    selection_sets: Sequence[SelectionSetNode],
    fragments: Mapping[str, FragmentDefinitionNode] | None = None,
) -> Any:
    """Keep only the selected keys of a JSON value, recursing into objects and lists.

    A selected key that the object lacks comes back as null, as a nullable GraphQL field
    would. Aliases rename keys. Values that are neither objects nor lists are returned whole.

    Args:
        value: The JSON value.
        selection_sets: The selection sets of every field node with the same response key.
        fragments: Named fragments of the document; spreads inside a JSON selection are ignored
            because validation only lets untyped inline fragments through.

    Returns:
        The projected value.
    """
    if isinstance(value, list):
        return [project_selection(item, selection_sets, fragments) for item in value]
    if not isinstance(value, dict):
        return value
    projected: dict[str, Any] = {}
    for selection_set in selection_sets:
        for response_key, field in _collect_json_fields(selection_set):
            item = value.get(field.name.value)
            if field.selection_set is not None and item is not None:
                item = project_selection(item, [field.selection_set], fragments)
            projected[response_key] = item
    return projected


def _collect_json_fields(selection_set: SelectionSetNode) -> Iterator[tuple[str, FieldNode]]:
    for selection in selection_set.selections:
        if isinstance(selection, FieldNode):
            key = selection.alias.value if selection.alias else selection.name.value
            yield key, selection
        elif isinstance(selection, InlineFragmentNode):
            yield from _collect_json_fields(selection.selection_set)


@dataclass(frozen=True)
class OperationSummary:
    """The operation a request names, read without validation, for request records and faults."""

    operation_type: OperationType | None
    root_field: str | None
    variables: dict[str, Any] | None
    target_id: str | None


def summarize_request(body: Any) -> OperationSummary:
    """Read the operation type, first root field and target id of a parsed JSON body.

    Anything unreadable gives None for that part instead of an exception, because this also
    runs for requests the server then rejects.
    """
    if not isinstance(body, dict):
        return OperationSummary(None, None, None, None)
    raw_variables = body.get("variables")
    variables = raw_variables if isinstance(raw_variables, dict) else None
    query = body.get("query")
    operation_name = body.get("operationName")
    if not isinstance(query, str) or not isinstance(operation_name, (str, type(None))):
        return OperationSummary(None, None, variables, None)
    try:
        document = parse(query)
    except GraphQLError:
        return OperationSummary(None, None, variables, None)
    operation = get_operation_ast(document, operation_name)
    if operation is None:
        return OperationSummary(None, None, variables, None)
    operation_type: OperationType = operation.operation.value
    fields = list(_root_fields(operation.selection_set, _fragments_of(document)))
    if not fields:
        return OperationSummary(operation_type, None, variables, None)
    root = fields[0]
    return OperationSummary(operation_type, root.name.value, variables, _target_id(root, variables))


def _fragments_of(document: DocumentNode) -> dict[str, FragmentDefinitionNode]:
    return {
        definition.name.value: definition
        for definition in document.definitions
        if isinstance(definition, FragmentDefinitionNode)
    }


def _root_fields(
    selection_set: SelectionSetNode,
    fragments: Mapping[str, FragmentDefinitionNode],
    seen: frozenset[str] = frozenset(),
) -> Iterator[FieldNode]:
    for selection in selection_set.selections:
        if isinstance(selection, FieldNode):
            if selection.name.value != "__typename":
                yield selection
        elif isinstance(selection, InlineFragmentNode):
            yield from _root_fields(selection.selection_set, fragments, seen)
        elif isinstance(selection, FragmentSpreadNode):
            name = selection.name.value
            fragment = fragments.get(name)
            if fragment is not None and name not in seen:
                yield from _root_fields(fragment.selection_set, fragments, seen | {name})


def _target_id(field: FieldNode, variables: dict[str, Any] | None) -> str | None:
    argument_name = _TARGET_ARGUMENTS.get(field.name.value)
    for argument in field.arguments or ():
        if argument.name.value == argument_name:
            try:
                value = value_from_ast_untyped(argument.value, variables)
            except (TypeError, ValueError, KeyError):
                return None
            return value if isinstance(value, str) else None
    return None


@dataclass(frozen=True)
class PreparedRequest:
    """A parsed and validated GraphQL request, ready to execute."""

    document: DocumentNode
    operation: OperationDefinitionNode
    operation_name: str | None
    variables: dict[str, Any]

    @property
    def operation_type(self) -> OperationType:
        """The operation kind: query, mutation or subscription."""
        kind: OperationType = self.operation.operation.value
        return kind


def prepare_request(body: Any) -> PreparedRequest:
    """Check the body shape, parse and validate the query and choose the operation.

    Args:
        body: The decoded JSON body of a POST request.

    Returns:
        The request ready for `execute_request`.

    Raises:
        GraphQLRequestError: With HTTP 400 and code `BAD_REQUEST` for a body of the wrong shape,
            `GRAPHQL_PARSE_FAILED`, `GRAPHQL_VALIDATION_FAILED`, or
            `OPERATION_RESOLUTION_FAILURE` when `operationName` names no operation or is
            missing while the document contains several.
    """
    if not isinstance(body, dict):
        raise GraphQLRequestError.single(
            400, "The POST body must be a JSON object with a `query` string.", "BAD_REQUEST"
        )
    query = body.get("query")
    if query is None or query == "":
        raise GraphQLRequestError.single(
            400, "GraphQL operations must contain a non-empty `query`.", "BAD_REQUEST"
        )
    if not isinstance(query, str):
        raise GraphQLRequestError.single(
            400, "`query` in a POST body must be a string.", "BAD_REQUEST"
        )
    variables = body.get("variables")
    if variables is not None and not isinstance(variables, dict):
        raise GraphQLRequestError.single(
            400,
            f"`variables` in a POST body must be an object, not {_json_type_name(variables)}.",
            "BAD_REQUEST",
        )
    operation_name = body.get("operationName")
    if operation_name is not None and not isinstance(operation_name, str):
        raise GraphQLRequestError.single(
            400, "`operationName` in a POST body must be a string.", "BAD_REQUEST"
        )

    try:
        document = parse(query)
    except GraphQLError as error:
        raise GraphQLRequestError.from_graphql_errors(
            400, [error], "GRAPHQL_PARSE_FAILED"
        ) from error

    validation_errors = validate(SCHEMA, document, _VALIDATION_RULES)
    if validation_errors:
        raise GraphQLRequestError.from_graphql_errors(
            400, validation_errors, "GRAPHQL_VALIDATION_FAILED"
        )

    operation = get_operation_ast(document, operation_name)
    if operation is None:
        message = (
            f"Unknown operation named '{operation_name}'."
            if operation_name
            else "Must provide operation name if query contains multiple operations."
        )
        raise GraphQLRequestError.single(400, message, "OPERATION_RESOLUTION_FAILURE")
    return PreparedRequest(document, operation, operation_name, variables or {})


def _json_type_name(value: Any) -> str:
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    return "a JSON value of another type"


@dataclass(frozen=True)
class ExecutionOutcome:
    """The JSON body and HTTP status of an executed request."""

    body: dict[str, Any]
    status: int


def execute_request(request: PreparedRequest, handler: OperationHandler) -> ExecutionOutcome:
    """Coerce the variables and run the operation's root fields against `handler`.

    The HTTP status is 200 unless a resolver raised a `FieldError` with another
    `http_status`; the first such error decides.

    Raises:
        GraphQLRequestError: HTTP 400 with code `BAD_USER_INPUT` when a variable does not match
            its declared type. No resolver runs in that case.
    """
    result = execute(
        SCHEMA,
        request.document,
        context_value=handler,
        variable_values=request.variables,
        operation_name=request.operation_name,
    )
    if not isinstance(result, ExecutionResult):  # pragma: no cover - every resolver is sync
        raise TypeError("the test server's resolvers must be synchronous")
    if result.data is None and result.errors and all(e.path is None for e in result.errors):
        # Errors without a path come from before any field ran. The operation was resolved
        # already, so the variables did not coerce. (A failed non-null field also leaves no
        # data, but its error has a path.)
        raise GraphQLRequestError.from_graphql_errors(400, result.errors, "BAD_USER_INPUT")

    status = 200
    body: dict[str, Any] = {}
    if result.errors:
        body["errors"] = [_format_field_error(error) for error in result.errors]
        for error in result.errors:
            original = error.original_error
            if isinstance(original, FieldError) and original.http_status != 200:
                status = original.http_status
                break
    body["data"] = result.data
    return ExecutionOutcome(body, status)


def _formatted(error: GraphQLError) -> dict[str, Any]:
    entry: dict[str, Any] = {**error.formatted}
    return entry


def _format_field_error(error: GraphQLError) -> dict[str, Any]:
    entry = _formatted(error)
    extensions = dict(entry.get("extensions", {}))
    # A resolver that failed with something other than FieldError is a bug in the server.
    # Apollo Server 4 gives such errors the code INTERNAL_SERVER_ERROR.
    extensions.setdefault("code", "INTERNAL_SERVER_ERROR")
    entry["extensions"] = extensions
    return entry


def dumps(value: Any) -> bytes:
    """Encode a response body as compact UTF-8 JSON."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
