"""Host and Origin checks against DNS rebinding, that still work behind a Kubernetes Service name.

The SDK's guard accepts only localhost names when bound to loopback and answers 421 to anything else, which breaks
the moment a bridge is reached as `my-bridge.tools.svc`. Here the allowed hosts are a list (exact names or
`*.suffix` patterns, ports ignored); the default follows the bind address: localhost names on loopback, any Host
otherwise. Browsers, the only clients a rebinding attack can drive, always send `Origin`: a cross-origin request is
refused unless its origin is listed or its host is an allowed host.
"""

from __future__ import annotations

import ipaddress
from typing import Final
from urllib.parse import urlsplit

__all__ = ["HostGuard"]

LOOPBACK_NAMES: Final = ("localhost", "127.0.0.1", "[::1]", "::1")

HOST_CACHE_SIZE: Final = 1024
"""Distinct Host values whose verdict is remembered; the cache starts over when full (arbitrary Hosts stay cheap)."""


def _strip_port(host: str) -> str:
    """The host name of a Host header, lower-case; an IPv6 literal without its brackets (`[fd00::1]:80` is
    `fd00::1`), so a listed pod IP matches however it is written."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class HostGuard:
    """Decides whether a request's Host and Origin headers may reach the MCP endpoint."""

    def __init__(self, bind_host: str, allowed_hosts: tuple[str, ...], allowed_origins: tuple[str, ...]) -> None:
        if not allowed_hosts:
            allowed_hosts = LOOPBACK_NAMES if _is_loopback(bind_host) else ("*",)
        self.allowed_hosts = tuple(h.strip().lower().strip("[]") for h in allowed_hosts)
        self.allowed_origins = tuple(o.lower().rstrip("/") for o in allowed_origins)
        self._hosts: dict[str, bool] = {}

    def host_allowed(self, host: str) -> bool:
        """Whether `host` (a Host header, port allowed) matches the list; remembered, as clients repeat theirs."""
        known = self._hosts.get(host)
        if known is None:
            known = self._match(_strip_port(host))
            if len(self._hosts) >= HOST_CACHE_SIZE:
                self._hosts.clear()
            self._hosts[host] = known
        return known

    def _match(self, name: str) -> bool:
        for pattern in self.allowed_hosts:
            if pattern == "*" or pattern == name:
                return True
            if pattern.startswith("*.") and name.endswith(pattern[1:]):
                return True
        return False

    def check(self, host: str | None, origin: str | None) -> tuple[int, str] | None:
        """Return (status, reason) to refuse the request, or None to let it through."""
        if host is None or not self.host_allowed(host):
            return 421, (
                f"Host {host!r} is not allowed. Add it to --allowed-hosts (PLEXUS_ALLOWED_HOSTS), "
                "for example the Service name clients use."
            )
        if origin is None or "*" in self.allowed_origins:
            return None
        normalized = origin.lower().rstrip("/")
        if normalized in self.allowed_origins:
            return None
        origin_host = urlsplit(normalized).netloc
        if origin_host and self.host_allowed(origin_host):
            return None
        return 403, f"Origin {origin!r} is not allowed. Add it to --allowed-origins (PLEXUS_ALLOWED_ORIGINS)."
