"""Benchmarks of langchain-lamatic against a loopback server with a fixed response.

Run from the repository root::

    .venv/bin/python benchmarks/run.py

It prints one table per measurement and the ratio of each figure to its target, and exits
with status 1 when a target is missed. ``--quick`` runs fewer calls, for a smoke test.

All contenders run in this one process, interleaved round by round, against one loopback
server. The server runs in a child process (a minimal asyncio HTTP/1.1 server with keep-alive)
so that it does not compete with the measured client for this interpreter's GIL. It responds
to every request with the same fixed ``executeWorkflow`` body, after 50 ms on its ``/slow/``
paths, and it counts the connections that are open at the same time.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

FLOW_ID = "article-summariser"
PROJECT_ID = "bench-project"
API_KEY = "lt-benchmark-key-0000000000"
PAYLOAD = {"url": "https://example.org/posts/42", "language": "en"}
RESULT = {
    "summary": (
        "The article explains how connection pooling, keep-alive and careful error "
        "classification keep a remote flow call close to the cost of the HTTP round trip."
    ),
    "keywords": ["pooling", "keep-alive", "errors"],
}
FIXED_BODY = json.dumps(
    {
        "data": {
            "executeWorkflow": {
                "status": "success",
                "result": RESULT,
                "requestId": "req-0001",
            }
        }
    }
).encode()
SLOW_DELAY = 0.05
GATHERED_CALLS = 1_000


# --- The loopback server (child process) -----------------------------------------------------


class _ServerState:
    def __init__(self) -> None:
        self.open = 0
        self.max_open = 0
        self.requests = 0


def _response(body: bytes, status: str = "200 OK") -> bytes:
    head = (
        f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


class _HttpProtocol(asyncio.Protocol):
    """HTTP/1.1 with keep-alive: reads Content-Length bodies and responds in request order."""

    def __init__(self, state: _ServerState) -> None:
        self.state = state
        self.buffer = bytearray()
        self.counted = False
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        if self.counted:
            self.state.open -= 1

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buffer[:end])
            lines = head.split(b"\r\n")
            length = 0
            for line in lines[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            total = end + 4 + length
            if len(self.buffer) < total:
                return
            del self.buffer[:total]
            method, path, _ = lines[0].split(b" ", 2)
            self._handle(method, path)

    def _handle(self, method: bytes, path: bytes) -> None:
        assert self.transport is not None
        state = self.state
        if path == b"/stats":
            stats = {"open": state.open, "max_open": state.max_open, "requests": state.requests}
            self.transport.write(_response(json.dumps(stats).encode()))
            return
        if path == b"/reset":
            state.max_open = state.open
            state.requests = 0
            self.transport.write(_response(b"{}"))
            return
        # Only connections that carry real requests count, so the stats requests do not.
        if not self.counted:
            self.counted = True
            state.open += 1
            state.max_open = max(state.max_open, state.open)
        state.requests += 1
        if path.startswith(b"/slow/"):
            transport = self.transport
            asyncio.get_running_loop().call_later(
                SLOW_DELAY, lambda: transport.is_closing() or transport.write(_response(FIXED_BODY))
            )
        else:
            self.transport.write(_response(FIXED_BODY))


async def _serve() -> None:
    state = _ServerState()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _HttpProtocol(state), "127.0.0.1", 0, backlog=2048)
    port = server.sockets[0].getsockname()[1]
    print(f"PORT {port}", flush=True)
    # The parent closes stdin to stop the server.
    await loop.run_in_executor(None, sys.stdin.read)
    server.close()


@contextmanager
def loopback_server() -> Iterator[str]:
    """Start the server in a child process and yield its base URL."""
    process = subprocess.Popen(  # noqa: S603 - runs this script with this interpreter
        [sys.executable, __file__, "--serve"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line.startswith("PORT "):
            raise RuntimeError(f"The benchmark server did not start: {line!r}")
        yield f"http://127.0.0.1:{int(line.split()[1])}"
    finally:
        assert process.stdin is not None
        process.stdin.close()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def server_stats(base: str, reset: bool = False) -> dict[str, int]:
    with urllib.request.urlopen(f"{base}/{'reset' if reset else 'stats'}") as response:  # noqa: S310
        return dict(json.load(response))


# --- Reporting -------------------------------------------------------------------------------


@dataclass
class Check:
    name: str
    measured: float
    target: float
    unit: str
    higher_is_better: bool = False

    @property
    def met(self) -> bool:
        if self.higher_is_better:
            return self.measured >= self.target
        return self.measured <= self.target

    def row(self) -> str:
        sign = ">=" if self.higher_is_better else "<="
        verdict = "met" if self.met else "MISSED"
        return (
            f"| {self.name} | {self.measured:.3g} {self.unit} | {sign} {self.target:g} {self.unit} "
            f"| {verdict} |"
        )


def print_table(title: str, header: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    print(f"\n### {title}\n")
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" for _ in header) + "|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


# --- Sequential invoke -----------------------------------------------------------------------


def sequential(base: str, rounds: int, calls: int, sdk_calls: int) -> dict[str, list[float]]:
    """Return the seconds per call of each contender in each round; rounds interleave them."""
    import httpx
    from lamatic import Lamatic
    from langchain_core.runnables import RunnableLambda

    from langchain_lamatic import LamaticFlow
    from langchain_lamatic._queries import EXECUTE_WORKFLOW
    from langchain_lamatic.client import USER_AGENT

    url = f"{base}/graphql"
    headers = {
        "Content-Type": "application/json",
        "Accept": "application/json",
        "User-Agent": USER_AGENT,
        "x-project-id": PROJECT_ID,
        "Authorization": f"Bearer {API_KEY}",
    }
    http = httpx.Client()

    def bare_post(payload: dict[str, Any]) -> Any:
        body = json.dumps(
            {"query": EXECUTE_WORKFLOW, "variables": {"workflowId": FLOW_ID, "payload": payload}}
        ).encode()
        response = http.post(url, content=body, headers=headers)
        response.raise_for_status()
        return response.json()["data"]["executeWorkflow"]["result"]

    bare_lambda = RunnableLambda(bare_post)
    flow = LamaticFlow(flow_id=FLOW_ID, endpoint=url, project_id=PROJECT_ID, api_key=API_KEY)
    sdk = Lamatic(endpoint=url, project_id=PROJECT_ID, api_key=API_KEY)

    def sdk_call(payload: dict[str, Any]) -> Any:
        return sdk.execute_flow(FLOW_ID, payload).result

    contenders: dict[str, tuple[Callable[[dict[str, Any]], Any], int]] = {
        "bare httpx.Client POST": (bare_post, calls),
        "RunnableLambda(bare POST)": (bare_lambda.invoke, calls),
        "LamaticFlow.invoke": (flow.invoke, calls),
        "lamatic SDK execute_flow": (sdk_call, sdk_calls),
    }
    for function, _ in contenders.values():
        assert function(PAYLOAD) == RESULT, "a contender returned the wrong result"

    samples: dict[str, list[float]] = {name: [] for name in contenders}
    order = list(contenders)
    for _ in range(rounds):
        random.shuffle(order)
        for name in order:
            function, count = contenders[name]
            started = time.perf_counter()
            for _ in range(count):
                function(PAYLOAD)
            samples[name].append((time.perf_counter() - started) / count)
    http.close()
    flow.lamatic_client.close()
    return samples


def paired_ratio(samples: dict[str, list[float]], numerator: str, denominator: str) -> float:
    """Return the median over rounds of one contender's time over another's in the same round.

    Pairing by round cancels slow drifts of the machine, such as other processes starting.
    """
    return statistics.median(
        top / bottom for top, bottom in zip(samples[numerator], samples[denominator], strict=True)
    )


# --- Concurrency -----------------------------------------------------------------------------


@dataclass
class ConcurrencyResult:
    label: str
    seconds: float
    max_open: int
    pool_limit: int
    requests: int
    calls: int
    max_concurrency: int

    @property
    def ideal(self) -> float:
        """Return the time of back-to-back rounds of the server's delay, with no overhead."""
        width = min(self.max_concurrency, self.pool_limit)
        return -(-self.calls // width) * SLOW_DELAY


def concurrency(
    base: str, total: int, max_concurrency: int, repeats: int
) -> list[ConcurrencyResult]:
    """Time ``total`` calls at ``max_concurrency`` against the slow path, with the floors."""
    import httpx
    from langchain_core.runnables import RunnableLambda

    from langchain_lamatic import LamaticClient, LamaticFlow
    from langchain_lamatic._queries import EXECUTE_WORKFLOW
    from langchain_lamatic.client import USER_AGENT

    url = f"{base}/slow/graphql"
    connection = {"endpoint": url, "project_id": PROJECT_ID, "api_key": API_KEY}
    headers = {
        "Content-Type": "application/json",
        "Accept": "application/json",
        "User-Agent": USER_AGENT,
        "x-project-id": PROJECT_ID,
        "Authorization": f"Bearer {API_KEY}",
    }
    inputs = [PAYLOAD] * total
    results: list[ConcurrencyResult] = []

    async def gather_limited(function: Callable[[dict[str, Any]], Any]) -> list[Any]:
        semaphore = asyncio.Semaphore(max_concurrency)

        async def one(value: dict[str, Any]) -> Any:
            async with semaphore:
                return await function(value)

        return await asyncio.gather(*(one(value) for value in inputs))

    async def measure(
        label: str,
        run: Callable[[], Any],
        pool_limit: int,
        calls: int = total,
        limit: int = max_concurrency,
    ) -> None:
        # A warm-up pass opens the pool's connections, as in a long-running service.
        await run()
        times: list[float] = []
        max_open = requests = 0
        for _ in range(repeats):
            server_stats(base, reset=True)
            started = time.perf_counter()
            outputs = await run()
            times.append(time.perf_counter() - started)
            assert len(outputs) == calls
            assert all(output == RESULT for output in outputs), f"{label}: a wrong result"
            stats = server_stats(base)
            max_open = max(max_open, stats["max_open"])
            requests = max(requests, stats["requests"])
        results.append(
            ConcurrencyResult(
                label, statistics.median(times), max_open, pool_limit, requests, calls, limit
            )
        )

    async def main() -> None:
        flow = LamaticFlow(flow_id=FLOW_ID, **connection)
        client = flow.lamatic_client
        # The same pool settings as LamaticClient's own AsyncClient.
        http = httpx.AsyncClient(limits=client._limits())

        async def bare_post(payload: dict[str, Any]) -> Any:
            body = json.dumps(
                {
                    "query": EXECUTE_WORKFLOW,
                    "variables": {"workflowId": FLOW_ID, "payload": payload},
                }
            ).encode()
            response = await http.post(url, content=body, headers=headers)
            response.raise_for_status()
            return response.json()["data"]["executeWorkflow"]["result"]

        bare_lambda = RunnableLambda(lambda payload: payload, afunc=bare_post)
        batch_config: Any = {"max_concurrency": max_concurrency}

        async def sleep_only(payload: dict[str, Any]) -> Any:
            await asyncio.sleep(SLOW_DELAY)
            return RESULT

        # LangChain's own cost at this concurrency, with no HTTP at all: no runnable's
        # abatch can come closer to the ideal than this.
        sleep_lambda = RunnableLambda(lambda payload: payload, afunc=sleep_only)
        await measure(
            "RunnableLambda(asyncio.sleep(0.05)).abatch, no HTTP",
            lambda: sleep_lambda.abatch(inputs, config=batch_config),
            100,
        )
        await measure(
            "bare httpx.AsyncClient POST (httpcore pool), gathered",
            lambda: gather_limited(bare_post),
            100,
        )
        await measure(
            "RunnableLambda(bare POST).abatch",
            lambda: bare_lambda.abatch(inputs, config=batch_config),
            100,
        )
        await measure(
            "LamaticFlow.abatch",
            lambda: flow.abatch(inputs, config=batch_config),
            client.max_connections,
        )
        await measure(
            "LamaticFlow.ainvoke, gathered",
            lambda: gather_limited(flow.ainvoke),
            client.max_connections,
        )
        await http.aclose()
        await client.aclose()

        small = LamaticClient(**connection, max_connections=20)
        small_flow = LamaticFlow(flow_id=FLOW_ID, client=small)
        await measure(
            "LamaticFlow.abatch, pool of 20",
            lambda: small_flow.abatch(inputs, config=batch_config),
            small.max_connections,
        )
        await small.aclose()

        # Many more calls than connections, gathered with no limit of the caller's own.
        many = [PAYLOAD] * GATHERED_CALLS
        unlimited = LamaticFlow(flow_id=FLOW_ID, **connection)
        await measure(
            f"LamaticFlow.ainvoke x{GATHERED_CALLS}, gathered without a limit",
            lambda: asyncio.gather(*(unlimited.ainvoke(value) for value in many)),
            unlimited.lamatic_client.max_connections,
            calls=GATHERED_CALLS,
            limit=GATHERED_CALLS,
        )
        await unlimited.lamatic_client.aclose()

    asyncio.run(main())
    return results


# --- Memory and file descriptors -------------------------------------------------------------


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        resident_pages = int(statm.read().split()[1])
    return resident_pages * os.sysconf("SC_PAGE_SIZE")


def socket_fds() -> int:
    count = 0
    for name in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{name}").startswith("socket:"):
                count += 1
        except OSError:
            continue
    return count


@dataclass
class MemoryResult:
    calls: int
    rss_growth: int
    sockets_before: int
    sockets_after_calls: int
    sockets_after_close: int
    fds_before: int
    fds_after_close: int


def memory(base: str, calls: int) -> MemoryResult:
    from langchain_lamatic import LamaticFlow

    flow = LamaticFlow(
        flow_id=FLOW_ID, endpoint=f"{base}/graphql", project_id=PROJECT_ID, api_key=API_KEY
    )
    gc.collect()
    fds_before = len(os.listdir("/proc/self/fd"))
    sockets_before = socket_fds()
    for _ in range(500):
        flow.invoke(PAYLOAD)
    gc.collect()
    rss_before = rss_bytes()
    for _ in range(calls):
        flow.invoke(PAYLOAD)
    gc.collect()
    rss_after = rss_bytes()
    sockets_after_calls = socket_fds()
    flow.lamatic_client.close()
    gc.collect()
    return MemoryResult(
        calls=calls,
        rss_growth=rss_after - rss_before,
        sockets_before=sockets_before,
        sockets_after_calls=sockets_after_calls,
        sockets_after_close=socket_fds(),
        fds_before=fds_before,
        fds_after_close=len(os.listdir("/proc/self/fd")),
    )


# --- Import and construction -----------------------------------------------------------------

# The names langchain_lamatic imports from its dependencies, so the difference is the package's
# own cost. The names matter: langchain_core.runnables loads its classes lazily on first access.
CORE_IMPORT = (
    "from langchain_core.runnables import RunnableSerializable, RunnableLambda\n"
    "from langchain_core.messages import BaseMessage\n"
    "from langchain_core.prompt_values import PromptValue\n"
    "from langchain_core.callbacks import CallbackManagerForChainRun\n"
    "from langchain_core.tools import BaseTool, BaseToolkit, StructuredTool\n"
    "import httpx, pydantic"
)


def _time_import(setup: str, statement: str) -> float:
    code = (
        f"import time\n{setup}\nstarted = time.perf_counter()\n{statement}\n"
        "print(time.perf_counter() - started)"
    )
    output = subprocess.run(  # noqa: S603 - fixed code, this interpreter
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout
    return float(output.strip().splitlines()[-1])


def import_times(repeats: int) -> dict[str, float]:
    samples: dict[str, list[float]] = {"core": [], "lamatic": [], "increment": []}
    for _ in range(repeats):
        samples["core"].append(_time_import("", CORE_IMPORT))
        samples["lamatic"].append(_time_import("", "import langchain_lamatic"))
        samples["increment"].append(_time_import(CORE_IMPORT, "import langchain_lamatic"))
    return {name: statistics.median(values) for name, values in samples.items()}


def construction_times(repeats: int) -> dict[str, float | str]:
    from langchain_lamatic import LamaticFlow

    connection = {
        "endpoint": "http://127.0.0.1:9/graphql",
        "project_id": PROJECT_ID,
        "api_key": API_KEY,
    }
    started = time.perf_counter()
    for _ in range(repeats):
        LamaticFlow(flow_id=FLOW_ID, **connection)
    flow_seconds = (time.perf_counter() - started) / repeats

    toolkit_seconds = _toolkit_time(connection)
    return {"flow": flow_seconds, "toolkit_50": toolkit_seconds}


def _toolkit_time(connection: dict[str, str]) -> float | str:
    """Time building a toolkit of 50 flow tools, or return why it could not be measured."""
    try:
        from langchain_lamatic.toolkit import LamaticToolkit
    except ImportError:
        return "the toolkit module is not present"
    definitions = [
        {
            "kind": "flow",
            "id": f"flow-{index}",
            "name": f"flow_{index}",
            "description": f"Benchmark flow number {index}.",
            "schema": '{"url": "string", "language": "string?", "limit": "int"}',
        }
        for index in range(50)
    ]
    started = time.perf_counter()
    toolkit = LamaticToolkit(definitions=definitions, **connection)
    tools = toolkit.get_tools()
    seconds = time.perf_counter() - started
    assert len(tools) == 50, f"expected 50 tools, got {len(tools)}"
    return seconds


# --- Main ------------------------------------------------------------------------------------


def machine() -> str:
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return (
        f"{os.cpu_count()} CPUs ({model}), Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}"
    )


def load_average() -> str:
    """Return the 1, 5 and 15 minute load averages: other work on the machine skews timings."""
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="fewer calls, for a smoke test")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(_serve())
        return 0

    rounds, calls, sdk_calls = (3, 50, 5) if args.quick else (9, 400, 20)
    memory_calls = 1_000 if args.quick else 10_000

    print(f"Machine: {machine()}")
    print(f"Date: {time.strftime('%Y-%m-%d %H:%M %Z')}")
    print(f"Load average at start: {load_average()}")
    checks: list[Check] = []

    with loopback_server() as base:
        samples = sequential(base, rounds, calls, sdk_calls)
        seconds = {name: statistics.median(values) for name, values in samples.items()}
        floor_name, lambda_name = "bare httpx.Client POST", "RunnableLambda(bare POST)"
        flow_name, sdk_name = "LamaticFlow.invoke", "lamatic SDK execute_flow"
        print_table(
            f"Sequential invoke ({rounds} interleaved rounds; medians, ratios paired by round)",
            ("contender", "µs per call", "vs bare POST"),
            [
                (name, f"{value * 1e6:.0f}", f"{paired_ratio(samples, name, floor_name):.3f}x")
                for name, value in seconds.items()
            ],
        )
        checks += [
            Check(
                "LamaticFlow / RunnableLambda(bare POST)",
                paired_ratio(samples, flow_name, lambda_name),
                1.1,
                "x",
            ),
            Check(
                "LamaticFlow / bare POST", paired_ratio(samples, flow_name, floor_name), 1.5, "x"
            ),
            Check(
                "lamatic SDK / LamaticFlow",
                paired_ratio(samples, sdk_name, flow_name),
                20,
                "x",
                higher_is_better=True,
            ),
        ]

        total, max_concurrency = 200, 50
        async_results = concurrency(base, total, max_concurrency, repeats=3 if args.quick else 5)
        print_table(
            f"Async calls ({total} at max_concurrency={max_concurrency} unless named), server "
            f"waits {SLOW_DELAY * 1000:.0f} ms per request (median of the repeats)",
            ("run", "ms", "vs ideal", "max open connections", "pool limit", "requests seen"),
            [
                (
                    r.label,
                    f"{r.seconds * 1000:.0f}",
                    f"{r.seconds / r.ideal:.2f}x",
                    str(r.max_open),
                    str(r.pool_limit),
                    str(r.requests),
                )
                for r in async_results
            ],
        )
        for r in async_results:
            if r.label in ("LamaticFlow.abatch", "LamaticFlow.ainvoke, gathered"):
                checks.append(
                    Check(
                        f"{r.label}: time / ideal",
                        r.seconds / r.ideal,
                        1.25,
                        "x",
                    )
                )
            checks.append(
                Check(f"{r.label}: max open connections", r.max_open, r.pool_limit, "conns")
            )

        mem = memory(base, memory_calls)
        print_table(
            f"{mem.calls:,} sequential LamaticFlow.invoke calls",
            ("measure", "value"),
            [
                ("RSS growth", f"{mem.rss_growth / 2**20:.2f} MiB"),
                ("socket fds before the first call", str(mem.sockets_before)),
                ("socket fds after the calls", str(mem.sockets_after_calls)),
                ("socket fds after close()", str(mem.sockets_after_close)),
                ("all fds before / after close()", f"{mem.fds_before} / {mem.fds_after_close}"),
            ],
        )
        checks += [
            Check("RSS growth over the calls", mem.rss_growth / 2**20, 10, "MiB"),
            Check(
                "socket fds left open by the calls",
                mem.sockets_after_calls - mem.sockets_before,
                1,
                "fds",
            ),
            Check("fds left open after close()", mem.fds_after_close - mem.fds_before, 0, "fds"),
        ]

    imports = import_times(3 if args.quick else 7)
    built = construction_times(20 if args.quick else 200)
    toolkit = built["toolkit_50"]
    print_table(
        "Import and construction",
        ("measure", "ms"),
        [
            ("import the langchain-core modules the package uses", f"{imports['core'] * 1e3:.0f}"),
            ("import langchain_lamatic, fresh interpreter", f"{imports['lamatic'] * 1e3:.0f}"),
            ("import langchain_lamatic after those modules", f"{imports['increment'] * 1e3:.1f}"),
            ("construct one LamaticFlow", f"{float(built['flow']) * 1e3:.3f}"),
            (
                "construct a toolkit of 50 tools",
                toolkit if isinstance(toolkit, str) else f"{toolkit * 1e3:.1f}",
            ),
        ],
    )

    print("\n### Targets\n")
    print("| check | measured | target | result |")
    print("|---|---|---|---|")
    for check in checks:
        print(check.row())
    missed = [check.name for check in checks if not check.met]
    print(f"\nLoad average at end: {load_average()}")
    print(f"\n{len(checks) - len(missed)} of {len(checks)} targets met.")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
