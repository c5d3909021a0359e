"""The relay's routing rules, exercised in-process with the server side captured as written lines."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from bridge.exceptions import ServerUnavailable
from bridge.exchange import Exchange
from bridge.jsonrpc import RequestId
from bridge.stdio.relay import Relay

pytestmark = pytest.mark.anyio


class Client:
    """A peer that records what reaches it outside its own replies."""

    back_channel = True

    def __init__(self, level: str | None = None) -> None:
        self.inflight: dict[RequestId, Exchange] = {}
        self.subscriptions: set[str] = set()
        self.log_level = level
        self.delivered: list[dict[str, Any]] = []

    def deliver(self, data: bytes) -> None:
        self.delivered.append(orjson.loads(data))


def wired(*, exclusive: bool = False) -> tuple[Relay, list[dict[str, Any]]]:
    relay = Relay(exclusive=exclusive)
    written: list[dict[str, Any]] = []
    relay.connect(lambda line: written.append(orjson.loads(line)))
    return relay, written


def request(relay: Relay, peer: Client, request_id: RequestId, method: str = "tools/call", **params: Any) -> Exchange:
    exchange = Exchange(peer, request_id, method)
    relay.request(exchange, {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params})
    return exchange


async def take(exchange: Exchange) -> tuple[bytes, bool]:
    item = await exchange.next()
    assert item is not None
    return item


def reply(relay: Relay, message: dict[str, Any]) -> None:
    relay.receive(orjson.dumps({"jsonrpc": "2.0", **message}) + b"\n")


async def test_two_clients_using_the_same_id_get_their_own_replies() -> None:
    """Ids are renumbered for the server and restored per client, whatever order the replies come in."""
    relay, written = wired()
    alice, bob = Client(), Client()
    first = request(relay, alice, 1, name="echo")
    second = request(relay, bob, 1, name="echo")
    assert written[0]["id"] != written[1]["id"]
    reply(relay, {"id": written[1]["id"], "result": {"who": "bob"}})
    reply(relay, {"id": written[0]["id"], "result": {"who": "alice"}})
    assert orjson.loads((await take(first))[0]) == {"jsonrpc": "2.0", "id": 1, "result": {"who": "alice"}}
    assert orjson.loads((await take(second))[0])["result"] == {"who": "bob"}


async def test_progress_tokens_are_mapped_and_reach_only_their_request() -> None:
    """Two clients using the same progress token each see only their own progress, with their own token back."""
    relay, written = wired()
    alice, bob = Client(), Client()
    first = request(relay, alice, 1, _meta={"progressToken": "t"})
    request(relay, bob, 1, _meta={"progressToken": "t"})
    token = written[0]["params"]["_meta"]["progressToken"]
    assert token != written[1]["params"]["_meta"]["progressToken"]
    reply(relay, {"method": "notifications/progress", "params": {"progressToken": token, "progress": 1}})
    data, final = await take(first)
    assert not final and orjson.loads(data)["params"]["progressToken"] == "t"
    assert not bob.delivered


async def test_a_server_exit_fails_every_pending_request_at_once() -> None:
    """disconnect() answers each request in flight with an error naming how the server ended."""
    relay, _ = wired()
    exchange = request(relay, Client(), 7)
    relay.disconnect("was killed by SIGKILL")
    data, final = await take(exchange)
    assert final and "was killed by SIGKILL" in orjson.loads(data)["error"]["message"]
    with pytest.raises(ServerUnavailable):
        request(relay, Client(), 8)


async def test_cancellation_goes_to_the_server_under_the_servers_id() -> None:
    """A client's notifications/cancelled is translated to the id the server knows; other clients' ids are ignored."""
    relay, written = wired()
    alice, bob = Client(), Client()
    exchange = request(relay, alice, 5)
    relay.notify(bob, {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 5}})
    assert len(written) == 1
    relay.notify(alice, {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 5}})
    assert written[-1] == {
        "jsonrpc": "2.0",
        "method": "notifications/cancelled",
        "params": {"requestId": written[0]["id"], "reason": "cancelled by the client"},
    }
    assert (await take(exchange))[1]


async def test_log_messages_respect_each_sessions_level() -> None:
    """A session at `error` does not get `info` lines; one with no level set gets everything."""
    relay, _ = wired()
    quiet, chatty = Client("error"), Client()
    relay.peers.update({quiet, chatty})
    reply(relay, {"method": "notifications/message", "params": {"level": "info", "data": "hi"}})
    assert not quiet.delivered and chatty.delivered[0]["params"]["data"] == "hi"


async def test_resource_updates_reach_only_subscribers() -> None:
    """notifications/resources/updated goes to the sessions subscribed to that URI."""
    relay, _ = wired()
    subscriber, other = Client(), Client()
    subscriber.subscriptions.add("test://a")
    relay.peers.update({subscriber, other})
    reply(relay, {"method": "notifications/resources/updated", "params": {"uri": "test://a"}})
    assert subscriber.delivered and not other.delivered


async def test_server_requests_go_to_the_only_client_with_a_call_in_flight() -> None:
    """A sampling request rides on the stream of the call in flight; its answer goes back to the server."""
    relay, written = wired()
    caller, idle = Client(), Client()
    relay.peers.update({caller, idle})
    exchange = request(relay, caller, 1)
    reply(relay, {"id": 99, "method": "sampling/createMessage", "params": {}})
    data, final = await take(exchange)
    assert not final and orjson.loads(data)["method"] == "sampling/createMessage"
    assert relay.answer(idle, {"jsonrpc": "2.0", "id": 99, "result": {}}) is False
    assert relay.answer(caller, {"jsonrpc": "2.0", "id": 99, "result": {"ok": True}}) is True
    assert written[-1] == {"jsonrpc": "2.0", "id": 99, "result": {"ok": True}}


async def test_server_requests_that_cannot_be_attributed_are_refused() -> None:
    """With calls in flight from two sessions, the server is told to use per-session mode."""
    relay, written = wired()
    request(relay, Client(), 1)
    request(relay, Client(), 1)
    reply(relay, {"id": 99, "method": "elicitation/create", "params": {}})
    assert "per-session" in written[-1]["error"]["message"]


async def test_pings_from_the_server_are_answered_by_the_bridge() -> None:
    """A server's ping never reaches a client."""
    relay, written = wired()
    reply(relay, {"id": "p", "method": "ping"})
    assert written == [{"id": "p", "result": {}, "jsonrpc": "2.0"}]


async def test_subscriptions_are_counted_per_uri() -> None:
    """Only the first subscribe and the last unsubscribe of a URI need the server."""
    relay, _ = wired()
    assert relay.subscribe("u") is True
    assert relay.subscribe("u") is False
    assert relay.unsubscribe("u") is False
    assert relay.unsubscribe("u") is True
    assert relay.unsubscribe("u") is False


async def test_garbage_from_the_server_is_dropped_not_fatal() -> None:
    """Lines that are not JSON-RPC objects are logged and ignored; the relay keeps routing."""
    relay, written = wired()
    exchange = request(relay, Client(), 1)
    relay.receive(b"not json\n")
    relay.receive(b"[1, 2]\n")
    reply(relay, {"id": written[0]["id"], "result": {}})
    assert (await take(exchange))[1]
