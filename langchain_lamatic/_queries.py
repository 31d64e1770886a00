"""GraphQL documents sent to Lamatic. Values always travel as variables, never spliced in."""

EXECUTE_WORKFLOW = """query ExecuteWorkflow($workflowId: String!, $payload: JSON!) {
  executeWorkflow(workflowId: $workflowId, payload: $payload) {
    status
    result
    requestId
  }
}"""

EXECUTE_AGENT = """query ExecuteAgent($agentId: String!, $payload: JSON!) {
  executeAgent(agentId: $agentId, payload: $payload) {
    status
    result
    requestId
  }
}"""

# checkStatus returns a JSON scalar, so it takes no selection set (as the JS and Go SDKs send it).
CHECK_STATUS = """query CheckStatus($requestId: String!) {
  checkStatus(requestId: $requestId)
}"""

SUBMIT_FEEDBACK = """mutation SubmitFeedback(
  $requestId: String!, $rating: Int, $comment: String, $metadata: JSON
) {
  submitFeedback(requestId: $requestId, rating: $rating, comment: $comment, metadata: $metadata) {
    success
    message
    data
    error
  }
}"""

EXECUTE_WORKFLOW_WITH_STREAM = """subscription ExecuteWorkflowWithStream(
  $workflowId: String, $payload: JSON!
) {
  executeWorkflowWithStream(workflowId: $workflowId, payload: $payload)
}"""
