"""The OpenAPI bridge in front of a real FastAPI app: results, errors, security, forwarding and cancellation."""

from __future__ import annotations

import base64
import subprocess
import sys
import time
from collections.abc import Iterator

import anyio
import httpx2
import pytest
from mcp.client import Client
from mcp_types import BlobResourceContents

from tests.bridge.test_inspector import inspector
from tests.bridge.wire import WireSession
from tests.conftest import ROOT, free_port, run_bridge, stop_process

pytestmark = pytest.mark.anyio

CREDENTIALS = {
    "PLEXUS_AUTH_APIKEYHEADER": "key-123",
    "PLEXUS_AUTH_HTTPBEARER": "bearer-456",
    "PLEXUS_AUTH_HTTPBASIC_USERNAME": "ann",
    "PLEXUS_AUTH_OAUTH2_CLIENT_ID": "plexus",
    "PLEXUS_AUTH_OAUTH2_CLIENT_SECRET": "s3cret",
}
"""What the store's security schemes need; the basic password comes from a file (the `_FILE` variant)."""


@pytest.fixture(scope="module")
def store() -> Iterator[str]:
    """The store app on a free loopback port; yields its base URL."""
    port = free_port()
    process = subprocess.Popen([sys.executable, str(ROOT / "examples" / "store_api.py"), str(port)])
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx2.get(url + "/openapi.json", timeout=1).raise_for_status()
                break
            except httpx2.TransportError:
                assert time.monotonic() < deadline, "store app did not start"
                time.sleep(0.1)
        yield url
    finally:
        stop_process(process, timeout=10)


@pytest.fixture
def bridge_args(store: str) -> list[str]:
    return ["--spec", store + "/openapi.json", "--base-url", store]


def password_file(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    secret = tmp_path_factory.mktemp("secrets") / "basic-password"
    secret.write_text("pw\n")
    return {**CREDENTIALS, "PLEXUS_AUTH_HTTPBASIC_PASSWORD_FILE": str(secret)}


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_calls_return_structured_json_images_text_and_blobs(mode: str, bridge_args: list[str]) -> None:
    """JSON objects and arrays come back as structured content and text; images, text and binaries as such."""
    with run_bridge(*bridge_args, mode="openapi") as bridge:
        with anyio.fail_after(30):
            async with Client(bridge.mcp, mode=mode) as client:
                tools = {tool.name: tool for tool in (await client.list_tools()).tools}
                assert tools["getItem"].annotations is not None and tools["getItem"].annotations.read_only_hint
                assert tools["deleteItem"].annotations is not None and tools["deleteItem"].annotations.destructive_hint
                assert tools["getItem"].output_schema is not None
                item = await client.call_tool("getItem", {"item_id": 1, "x-trace": "t1"})
                assert item.structured_content == {"id": 1, "name": "lamp [t1]", "price": 12.5, "tags": ["home"]}
                listing = await client.call_tool("listItems", {"tag": ["home"]})
                assert listing.structured_content is not None and listing.structured_content["result"][0]["id"] == 1
                created = await client.call_tool("createItem", {"name": f"mug-{mode}", "price": 3})
                assert created.structured_content is not None and created.structured_content["name"] == f"mug-{mode}"
                form = await client.call_tool("login", {"username": "ann", "password": "pw"})
                assert form.structured_content == {"user": "ann", "password_length": "2"}
                image = await client.call_tool("itemImage", {"item_id": 1})
                assert image.content[0].type == "image" and image.content[0].mime_type == "image/png"
                text = await client.call_tool("report", {})
                assert text.content[0].text == "all good\n"  # type: ignore[union-attr]
                blob = await client.call_tool("archive", {})
                resource = blob.content[0].resource  # type: ignore[union-attr]
                assert isinstance(resource, BlobResourceContents)
                assert base64.b64decode(resource.blob) == b"\x00\x01binary"


async def test_bad_arguments_and_http_errors_are_tool_errors_that_say_why(bridge_args: list[str]) -> None:
    """Invalid arguments are refused before any request; 404 and 503 carry the status and the API's words."""
    with run_bridge(*bridge_args, mode="openapi") as bridge:
        with anyio.fail_after(30):
            async with Client(bridge.mcp, mode="legacy") as client:
                invalid = await client.call_tool("getItem", {"item_id": "seven", "detail": "maybe"})
                assert invalid.is_error
                message = invalid.content[0].text  # type: ignore[union-attr]
                assert "nothing was sent" in message and "item_id" in message and "detail" in message
                missing = await client.call_tool("getItem", {"item_id": 99})
                assert missing.is_error and "HTTP 404" in missing.content[0].text  # type: ignore[union-attr]
                closed = await client.call_tool("fail", {})
                assert closed.is_error and "closed for maintenance" in closed.content[0].text  # type: ignore[union-attr]
        async with httpx2.AsyncClient(timeout=10) as http:
            session = WireSession(http, bridge.mcp)
            await session.initialize()
            unknown = await session.call(1, "noSuchTool", {})
            assert unknown["error"]["code"] == -32602 and "tools/list" in unknown["error"]["message"]


async def test_every_security_scheme_is_served_from_environment_and_files(
    bridge_args: list[str], tmp_path_factory: pytest.TempPathFactory
) -> None:
    """API key, bearer, basic (password from a file) and OAuth2 client credentials all reach the API."""
    with run_bridge(*bridge_args, mode="openapi", env=password_file(tmp_path_factory)) as bridge:
        with anyio.fail_after(30):
            async with Client(bridge.mcp, mode="legacy") as client:
                for tool, access in [("secureKey", "key"), ("secureBearer", "bearer"), ("secureBasic", "basic"),
                                     ("secureOAuth", "oauth")]:  # fmt: skip
                    result = await client.call_tool(tool, {})
                    assert result.structured_content == {"access": access}, result.content


async def test_missing_credentials_are_named_in_the_error(bridge_args: list[str]) -> None:
    """Without PLEXUS_AUTH_* the API refuses, and the error names the variable to set."""
    with run_bridge(*bridge_args, mode="openapi") as bridge:
        with anyio.fail_after(30):
            async with Client(bridge.mcp, mode="legacy") as client:
                refused = await client.call_tool("secureKey", {})
                assert refused.is_error and "PLEXUS_AUTH_APIKEYHEADER" in refused.content[0].text  # type: ignore[union-attr]


async def test_the_clients_authorization_reaches_the_api_only_when_allowed(bridge_args: list[str]) -> None:
    """By default the caller's Authorization header stays at the bridge; --forward-headers lets it through."""
    for extra, forwarded in (([], False), (["--forward-headers", "Authorization"], True)):
        with run_bridge(*bridge_args, *extra, mode="openapi") as bridge:
            async with httpx2.AsyncClient(headers={"Authorization": "Bearer caller-token"}, timeout=10) as http:
                session = WireSession(http, bridge.mcp)
                await session.initialize()
                seen = (await session.call(1, "echoHeaders", {}))["result"]["structuredContent"]
                assert (seen.get("authorization") == "Bearer caller-token") is forwarded, seen


def test_the_inspector_cli_lists_and_calls_rest_tools(bridge_args: list[str]) -> None:
    """The MCP Inspector CLI sees the API's operations as tools and calls one."""
    with run_bridge(*bridge_args, mode="openapi") as bridge:
        listed = inspector(bridge.mcp, "--method", "tools/list")
        assert "getItem" in {tool["name"] for tool in listed["tools"]}  # type: ignore[attr-defined]
        called = inspector(bridge.mcp, "--method", "tools/call", "--tool-name", "report")
        assert called["content"] == [{"type": "text", "text": "all good\n"}]


async def test_a_slow_api_call_times_out_and_is_cancelled(bridge_args: list[str]) -> None:
    """Past --request-timeout the client gets -32001 naming the flag, and the HTTP request is abandoned."""
    with run_bridge(*bridge_args, "--request-timeout", "1", mode="openapi") as bridge:
        async with httpx2.AsyncClient(timeout=10) as http:
            session = WireSession(http, bridge.mcp)
            await session.initialize()
            with anyio.fail_after(5):
                reply = await session.call(1, "slow", {"seconds": 30})
            assert reply["error"]["code"] == -32001 and "--request-timeout" in reply["error"]["message"]
            metrics = (await http.get(bridge.url + "/metrics")).text
            assert "plexus_bridge_inflight_requests 0.0" in metrics
