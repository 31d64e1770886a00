"""Per-call and per-user credentials through ``config["configurable"]``, on a local server.

Each concurrency test runs flows that wait at a barrier until both calls have arrived, so the
calls are in flight together: if one call ran after the other, the barrier would break.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from uuid import UUID

import pytest
from langchain.agents import create_agent
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.language_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, BaseMessage, ToolCall
from langchain_core.runnables import Runnable, RunnableConfig
from pydantic import SecretStr

from langchain_lamatic.client import LamaticClient
from langchain_lamatic.errors import LamaticPermissionError
from langchain_lamatic.runnables import LamaticFlow
from langchain_lamatic.testing import LamaticTestServer, RecordedRequest
from langchain_lamatic.tools import LamaticFlowTool

TOKEN_HEADER = "x-lamatic-signature"


class ToolCallingFakeModel(GenericFakeChatModel):
    """GenericFakeChatModel that accepts tools, so an agent can be built around it."""

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> Runnable[Any, BaseMessage]:
        return self


@pytest.fixture
def barrier(server: LamaticTestServer) -> threading.Barrier:
    """Register ``whoami``, a flow that returns its input once two runs have reached it."""
    barrier = threading.Barrier(2, timeout=20)

    def whoami(payload: dict[str, Any]) -> dict[str, Any]:
        barrier.wait()
        return {"user": payload["user"]}

    server.add_flow("whoami", whoami, schema='{"user": "string"}')
    return barrier


@pytest.fixture
def tool(client: LamaticClient) -> LamaticFlowTool:
    return LamaticFlowTool(
        flow_id="whoami", args_schema='{"user": "string"}', output_key="user", client=client
    )


def user_tokens(server: LamaticTestServer) -> dict[str, str]:
    # Different lifetimes give different tokens even when minted in the same second.
    return {
        "alice": server.create_access_token(expires_in=3600),
        "bob": server.create_access_token(expires_in=7200),
    }


def user_config(token: str) -> RunnableConfig:
    return {"configurable": {"lamatic_access_token": SecretStr(token)}}


def token_by_user(requests: list[RecordedRequest]) -> dict[str, str | None]:
    return {
        request.variables["payload"]["user"]: request.headers.get(TOKEN_HEADER)
        for request in requests
        if request.variables is not None
    }


def whoami_call(user: str) -> ToolCall:
    return ToolCall(name="whoami", args={"user": user}, id=f"call-{user}", type="tool_call")


# --- Tools ----------------------------------------------------------------------------------


async def test_concurrent_async_tool_calls_own_tokens(
    server: LamaticTestServer, barrier: threading.Barrier, tool: LamaticFlowTool
) -> None:
    tokens = user_tokens(server)

    messages = await asyncio.gather(
        *(tool.ainvoke(whoami_call(user), user_config(token)) for user, token in tokens.items())
    )

    assert [message.content for message in messages] == ["alice", "bob"]
    assert token_by_user(server.requests) == tokens
    assert server.max_in_flight == 2


def test_concurrent_sync_tool_calls_own_tokens(
    server: LamaticTestServer, barrier: threading.Barrier, tool: LamaticFlowTool
) -> None:
    tokens = user_tokens(server)

    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = [
            pool.submit(tool.invoke, whoami_call(user), user_config(token))
            for user, token in tokens.items()
        ]
        messages = [future.result() for future in futures]

    assert [message.content for message in messages] == ["alice", "bob"]
    assert token_by_user(server.requests) == tokens


async def test_call_without_override_uses_client_key(
    server: LamaticTestServer, barrier: threading.Barrier, tool: LamaticFlowTool
) -> None:
    token = server.create_access_token(expires_in=3600)

    await asyncio.gather(
        tool.ainvoke(whoami_call("alice"), user_config(token)),
        tool.ainvoke(whoami_call("service")),
    )

    by_user = {
        request.variables["payload"]["user"]: request.headers
        for request in server.requests
        if request.variables is not None
    }
    assert by_user["alice"][TOKEN_HEADER] == token
    assert "authorization" not in by_user["alice"]
    assert by_user["service"]["authorization"] == f"Bearer {server.api_key}"
    assert TOKEN_HEADER not in by_user["service"]


def test_per_call_project_id_is_sent(server: LamaticTestServer) -> None:
    server.add_flow("echo", lambda payload: {"text": payload["prompt"]})
    with LamaticClient(
        endpoint=server.endpoint, project_id="stale-project", api_key=server.api_key
    ) as client:
        tool = LamaticFlowTool(flow_id="echo", output_key="text", client=client)

        content = tool.invoke(
            {"prompt": "hi"}, {"configurable": {"lamatic_project_id": server.project_id}}
        )

    assert content == "hi"
    assert server.requests[-1].headers["x-project-id"] == server.project_id


def test_expired_per_call_token_raises(
    server: LamaticTestServer, barrier: threading.Barrier, tool: LamaticFlowTool
) -> None:
    expired = server.create_access_token(expires_in=-60)

    with pytest.raises(LamaticPermissionError) as caught:
        tool.invoke(whoami_call("alice"), user_config(expired))

    assert expired not in str(caught.value)
    assert expired not in repr(caught.value)


def test_per_call_token_stays_out_of_traces(
    server: LamaticTestServer, barrier: threading.Barrier, tool: LamaticFlowTool
) -> None:
    token = server.create_access_token(expires_in=3600)
    recorded: list[str] = []

    class Recorder(BaseCallbackHandler):
        def on_tool_start(self, serialized: Any, input_str: str, **kwargs: Any) -> None:
            recorded.append(repr((serialized, input_str, kwargs)))

        def on_chain_start(self, serialized: Any, inputs: Any, **kwargs: Any) -> None:
            recorded.append(repr((serialized, inputs, kwargs)))

        def on_chain_end(self, outputs: Any, *, run_id: UUID, **kwargs: Any) -> None:
            recorded.append(repr((outputs, kwargs)))

    config = user_config(token)
    config["callbacks"] = [Recorder()]
    barrier_partner = threading.Thread(target=barrier.wait)
    barrier_partner.start()
    tool.invoke(whoami_call("alice"), config)
    barrier_partner.join()

    assert len(recorded) == 3
    assert all(token not in record for record in recorded)


# --- Runnables ------------------------------------------------------------------------------


async def test_concurrent_runnable_calls_own_tokens(
    server: LamaticTestServer, barrier: threading.Barrier, client: LamaticClient
) -> None:
    flow = LamaticFlow(flow_id="whoami", client=client, output_key="user")
    tokens = user_tokens(server)

    results = await asyncio.gather(
        *(flow.ainvoke({"user": user}, user_config(token)) for user, token in tokens.items())
    )

    assert results == ["alice", "bob"]
    assert token_by_user(server.requests) == tokens


def test_runnable_batch_sends_each_token(
    server: LamaticTestServer, barrier: threading.Barrier, client: LamaticClient
) -> None:
    flow = LamaticFlow(flow_id="whoami", client=client, output_key="user")
    tokens = user_tokens(server)

    configs = [user_config(token) for token in tokens.values()]
    for config in configs:
        config["max_concurrency"] = 2

    results = flow.batch([{"user": user} for user in tokens], configs)

    assert results == ["alice", "bob"]
    assert token_by_user(server.requests) == tokens


# --- Agents serving two users at once -------------------------------------------------------


async def test_two_users_agents_send_own_tokens(
    server: LamaticTestServer, barrier: threading.Barrier, tool: LamaticFlowTool
) -> None:
    tokens = user_tokens(server)

    async def run_for(user: str, token: str) -> str:
        model = ToolCallingFakeModel(
            messages=iter(
                [
                    AIMessage(content="", tool_calls=[whoami_call(user)]),
                    AIMessage(content=f"Done for {user}"),
                ]
            )
        )
        agent = create_agent(model, [tool])
        result = await agent.ainvoke(
            {"messages": [{"role": "user", "content": "Who am I?"}]}, user_config(token)
        )
        tool_message = result["messages"][-2]
        assert tool_message.content == user
        return str(result["messages"][-1].content)

    answers = await asyncio.gather(*(run_for(user, token) for user, token in tokens.items()))

    assert answers == ["Done for alice", "Done for bob"]
    assert token_by_user(server.requests) == tokens
