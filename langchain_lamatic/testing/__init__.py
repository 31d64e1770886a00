"""A local stand-in for a Lamatic project, for testing chains without the network.

`LamaticTestServer` is a real HTTP server on 127.0.0.1 that implements Lamatic's GraphQL execution
API: `executeWorkflow`, `executeAgent`, `checkStatus`, `submitFeedback` and the
`executeWorkflowWithStream` subscription as Server-Sent Events. Register flows backed by Python
handlers, point a client at `server.endpoint`, and inspect `server.requests` afterwards.
`Fault` scripts rate limits, server errors, broken bodies and dropped connections.

Needs the `testing` extra (`pip install 'langchain-lamatic[testing]'`) for graphql-core.

Example:
    >>> from langchain_lamatic.testing import LamaticTestServer, add_demo_flows
    >>> with LamaticTestServer() as server:
    ...     samples = add_demo_flows(server)
    ...     server.endpoint.startswith("http://127.0.0.1:")
    True
"""

from langchain_lamatic.testing._engine import FlowExecutionFailed, FlowHandler
from langchain_lamatic.testing._faults import (
    DelayFault,
    DropConnectionFault,
    EmptyBodyFault,
    Fault,
    GraphQLErrorFault,
    HtmlFault,
    HttpStatusFault,
    InvalidJsonFault,
    NullDataFault,
    ResetMidBodyFault,
    StallFault,
    TruncatedJsonFault,
)
from langchain_lamatic.testing._flows import add_demo_flows
from langchain_lamatic.testing._records import Feedback, Headers, RecordedRequest
from langchain_lamatic.testing._server import LamaticTestServer
from langchain_lamatic.testing._streaming import StreamOptions

__all__ = [
    "DelayFault",
    "DropConnectionFault",
    "EmptyBodyFault",
    "Fault",
    "Feedback",
    "FlowExecutionFailed",
    "FlowHandler",
    "GraphQLErrorFault",
    "Headers",
    "HtmlFault",
    "HttpStatusFault",
    "InvalidJsonFault",
    "LamaticTestServer",
    "NullDataFault",
    "RecordedRequest",
    "ResetMidBodyFault",
    "StallFault",
    "StreamOptions",
    "TruncatedJsonFault",
    "add_demo_flows",
]
