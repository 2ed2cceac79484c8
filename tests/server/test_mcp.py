"""`larimar mcp` under the MCP SDK's own client: tools and resources over a local memory (in
process) and over a real server (the `larimar mcp --url` command on stdio and streamable HTTP);
bad calls are MCP errors and the server keeps answering."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

mcp = pytest.importorskip("mcp")
from mcp import Client, StdioServerParameters  # noqa: E402
from server_testing import KEY_A  # noqa: E402

from larimar_memory.mcp_server import create_mcp_server  # noqa: E402
from larimar_memory.testing import free_port  # noqa: E402

LARIMAR = str(Path(sys.executable).with_name("larimar"))
FACT, QUESTION = "Alice lives in Lisbon.", "Where does Alice live?"


async def _round_trip(client: Client, namespace: str) -> None:
    """remember, recall, list, resources, forget: what every transport must do alike."""
    tools = {t.name for t in (await client.list_tools()).tools}
    assert tools == {"remember", "recall", "forget", "list"}
    written = await client.call_tool("remember", {"text": FACT, "metadata": {"source": "mcp"}})
    assert not written.is_error, written.content
    [fact_id] = written.structured_content["ids"]
    recalled = await client.call_tool("recall", {"query": QUESTION, "k": 2})
    assert not recalled.is_error
    assert recalled.structured_content["hits"][0]["fact"]["id"] == fact_id
    listed = await client.call_tool("list", {"filter": {"source": "mcp"}})
    assert [f["text"] for f in listed.structured_content["result"]] == [FACT]

    resources = {str(r.uri): r for r in (await client.list_resources()).resources}
    [uri] = [u for u in resources if u.startswith("larimar://facts/")]
    assert fact_id in uri and resources[uri].name == FACT
    body = json.loads((await client.read_resource(uri)).contents[0].text)
    assert (body["id"], body["text"], body["namespace"]) == (fact_id, FACT, namespace)
    names = json.loads((await client.read_resource("larimar://namespaces")).contents[0].text)
    assert namespace in names

    forgotten = await client.call_tool("forget", {"fact": fact_id})
    assert [f["id"] for f in forgotten.structured_content["result"]] == [fact_id]
    assert (await client.call_tool("list", {})).structured_content["result"] == []


BAD_CALLS = [
    ("recall", {}, "query"),  # missing
    ("recall", {"query": QUESTION, "k": "three"}, "k"),  # mistyped
    ("recall", {"query": QUESTION, "k": 0}, "greater than or equal to 1"),
    ("remember", {"text": 42}, "text"),
    ("remember", {"text": "   "}, "EmptyInputError"),
    ("remember", {"text": FACT, "namespace": "../x"}, "NamespaceError"),
    ("forget", {"fact": "no-such-fact"}, "FactNotFoundError"),
    ("list", {"limit": -1}, "limit"),
]


async def _bad_calls_are_errors(client: Client) -> None:
    for tool, arguments, why in BAD_CALLS:
        result = await client.call_tool(tool, arguments)
        assert result.is_error, (tool, arguments)
        assert why in result.content[0].text, (why, result.content[0].text)
    with pytest.raises(mcp.MCPError):
        await client.read_resource("larimar://facts/default/no-such-fact")
    assert not (await client.call_tool("list", {})).is_error  # still serving


async def test_tools_and_resources_over_a_local_memory(memory) -> None:
    async with Client(create_mcp_server(memory, namespace="user:alice")) as client:
        await _round_trip(client, "user:alice")
        await _bad_calls_are_errors(client)
    assert memory.namespaces() == ["user:alice"]


async def test_stdio_over_a_remote_memory(served) -> None:
    params = StdioServerParameters(
        command=LARIMAR, args=["mcp", "--url", served.url, "--namespace", "thread:t1"],
        env={"LARIMAR_API_KEY": KEY_A},
    )
    async with Client(params) as client:
        await _round_trip(client, "thread:t1")
        await _bad_calls_are_errors(client)
    assert served.memory.namespaces() == ["acme/thread:t1"]  # the server's tenant holds it


async def test_streamable_http_over_a_remote_memory(served, tmp_path: Path) -> None:
    port = free_port()
    log = (tmp_path / "mcp.log").open("wb")
    proc = subprocess.Popen(
        [LARIMAR, "mcp", "--transport", "streamable-http", "--port", str(port),
         "--url", served.url, "--api-key", KEY_A, "--namespace", "user:bob"],
        stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        _wait_for_port(port, proc)
        async with Client(f"http://127.0.0.1:{port}/mcp") as client:
            await _round_trip(client, "user:bob")
            await _bad_calls_are_errors(client)
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        log.close()


def _wait_for_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"larimar mcp exited with {proc.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise TimeoutError(f"larimar mcp not listening on {port} after {timeout} s")
