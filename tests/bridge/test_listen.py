"""2026-07-28 clients hear about change on `subscriptions/listen`, tagged and filtered as they asked."""

from __future__ import annotations

import anyio
import pytest
from mcp.client import Client
from mcp.shared.subscriptions import ToolsListChanged

from tests.conftest import ECHO_SERVER, run_bridge

pytestmark = pytest.mark.anyio


async def test_a_modern_client_hears_tools_list_changed_on_its_listen_stream() -> None:
    """The server's list_changed reaches a listening 2026-07-28 client, after an acknowledgement of its filter."""
    with run_bridge("--", *ECHO_SERVER) as bridge:
        with anyio.fail_after(20):
            async with Client(bridge.mcp) as client:
                assert client.protocol_version == "2026-07-28"
                async with client.listen(tools_list_changed=True, prompts_list_changed=True) as subscription:
                    assert subscription.honored.tools_list_changed
                    assert not subscription.honored.prompts_list_changed  # the server has no prompts
                    await client.call_tool("announce", {})
                    event = await subscription.__anext__()
                    assert isinstance(event, ToolsListChanged)
