"""Bad input at /mcp gets the right HTTP status and a JSON-RPC error that says what to do."""

from __future__ import annotations

import anyio
import httpx2
import pytest

from tests.bridge.wire import ACCEPT, WireSession
from tests.conftest import ECHO_SERVER, RunningBridge, run_bridge

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def bridge() -> object:
    with run_bridge("--max-body-bytes", "2048", "--max-inflight-per-session", "4", "--", *ECHO_SERVER) as running:
        yield running


async def post(bridge: RunningBridge, body: bytes, **headers: str) -> httpx2.Response:
    async with httpx2.AsyncClient() as client:
        return await client.post(bridge.mcp, content=body, headers={**ACCEPT, **headers})


async def test_malformed_json_is_a_parse_error(bridge: RunningBridge) -> None:
    """A body that is not JSON gets 400 and code -32700."""
    response = await post(bridge, b"{not json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == -32700


async def test_batches_are_refused_with_the_reason(bridge: RunningBridge) -> None:
    """A JSON array is refused and the message says to send one message per POST."""
    response = await post(bridge, b'[{"jsonrpc":"2.0","id":1,"method":"ping"}]')
    assert response.status_code == 400
    assert "one message per POST" in response.json()["error"]["message"]


async def test_a_non_jsonrpc_object_is_an_invalid_request(bridge: RunningBridge) -> None:
    """JSON that is not JSON-RPC 2.0 gets -32600."""
    response = await post(bridge, b'{"hello": "world"}')
    assert response.status_code == 400
    assert response.json()["error"]["code"] == -32600


async def test_requests_without_a_session_are_told_to_initialize(bridge: RunningBridge) -> None:
    """A missing Mcp-Session-Id is 400 and names the header; an unknown one is 404."""
    body = b'{"jsonrpc":"2.0","id":1,"method":"tools/list"}'
    missing = await post(bridge, body)
    assert missing.status_code == 400 and "Mcp-Session-Id" in missing.json()["error"]["message"]
    unknown = await post(bridge, body, **{"mcp-session-id": "no-such-session"})
    assert unknown.status_code == 404 and "initialize" in unknown.json()["error"]["message"]


async def test_oversized_bodies_are_refused_with_the_limit(bridge: RunningBridge) -> None:
    """A body over --max-body-bytes gets 413 naming the flag."""
    response = await post(bridge, b'{"jsonrpc":"2.0","id":1,"method":"ping","params":{"x":"' + b"a" * 4096 + b'"}}')
    assert response.status_code == 413
    assert "--max-body-bytes" in response.json()["error"]["message"]


async def test_wrong_content_type_and_accept(bridge: RunningBridge) -> None:
    """Non-JSON content is 415; an Accept that allows neither JSON nor SSE is 406."""
    async with httpx2.AsyncClient() as client:
        wrong_type = await client.post(bridge.mcp, content=b"{}", headers={"content-type": "text/plain"})
        assert wrong_type.status_code == 415
        wrong_accept = await client.post(
            bridge.mcp, content=b"{}", headers={"content-type": "application/json", "accept": "text/html"}
        )
        assert wrong_accept.status_code == 406


async def test_unknown_tools_and_methods_come_back_from_the_server(bridge: RunningBridge) -> None:
    """The bridge passes the server's own error for an unknown method, with the caller's id."""
    async with httpx2.AsyncClient() as client:
        session = WireSession(client, bridge.mcp)
        await session.initialize()
        reply = (await session.post({"jsonrpc": "2.0", "id": "x-1", "method": "no/such"})).json()
        assert reply["id"] == "x-1" and reply["error"]["code"] == -32601


async def test_an_unsupported_protocol_version_header_is_refused(bridge: RunningBridge) -> None:
    """An MCP-Protocol-Version the bridge does not speak gets 400 listing what it does speak."""
    response = await post(
        bridge, b'{"jsonrpc":"2.0","id":1,"method":"tools/list"}', **{"mcp-protocol-version": "1999-01-01"}
    )
    assert response.status_code == 400
    assert "2025-11-25" in response.json()["error"]["message"]


async def test_foreign_host_is_refused_but_allowed_hosts_work() -> None:
    """A Host outside --allowed-hosts gets 421; a Service name listed there works (unlike the SDK's localhost guard)."""
    with run_bridge("--allowed-hosts", "echo.tools.svc,*.cluster.local", "--", *ECHO_SERVER) as bridge:
        async with httpx2.AsyncClient() as client:
            body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
            refused = await client.post(bridge.mcp, json=body, headers={**ACCEPT, "host": "evil.example"})
            assert refused.status_code == 421 and "--allowed-hosts" in refused.json()["error"]["message"]
            for host in ("echo.tools.svc:8080", "echo.tools.svc.cluster.local"):
                allowed = await client.post(bridge.mcp, json=body, headers={**ACCEPT, "host": host})
                assert allowed.status_code == 400  # past the guard: now it asks for a session
            origin = await client.post(
                bridge.mcp, json=body, headers={**ACCEPT, "host": "echo.tools.svc", "origin": "http://evil.example"}
            )
            assert origin.status_code == 403


async def test_delete_ends_the_session(bridge: RunningBridge) -> None:
    """After DELETE the session id is unknown (404)."""
    async with httpx2.AsyncClient() as client:
        session = WireSession(client, bridge.mcp)
        await session.initialize()
        deleted = await client.delete(bridge.mcp, headers={"mcp-session-id": session.session_id})
        assert deleted.status_code == 200
        after = await session.post({"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
        assert after.status_code == 404


async def test_a_client_that_disconnects_cancels_its_call() -> None:
    """A client that gives up (how 2026-07-28 clients cancel) frees its slot before the server answers."""
    with run_bridge("--", *ECHO_SERVER, "--slow-ms", "6000") as bridge:
        async with httpx2.AsyncClient(timeout=10) as client:
            session = WireSession(client, bridge.mcp)
            await session.initialize()
        async with httpx2.AsyncClient(timeout=1.5) as impatient:
            session.client = impatient
            with pytest.raises(httpx2.ReadTimeout):
                await session.call(1, "echo", {"message": "too slow"})
        async with httpx2.AsyncClient(timeout=10) as client:
            with anyio.fail_after(4):  # well before the server's 6 s answer
                while True:
                    metrics = (await client.get(bridge.url + "/metrics")).text
                    if 'outcome="disconnected"} 1.0' in metrics:
                        break
                    await anyio.sleep(0.05)
            assert "plexus_bridge_inflight_requests 0.0" in metrics
