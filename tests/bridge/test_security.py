"""Host and Origin rules: Service names work when listed, rebinding from a browser does not."""

from __future__ import annotations

from bridge.security import HostGuard


def test_loopback_binds_accept_only_localhost_names_by_default() -> None:
    """Bound to 127.0.0.1 with no list, the guard behaves like the SDK's: localhost names only."""
    guard = HostGuard("127.0.0.1", (), ())
    assert guard.check("localhost:8080", None) is None
    assert guard.check("127.0.0.1:8080", None) is None
    assert guard.check("[::1]:8080", None) is None
    refusal = guard.check("attacker.example", None)
    assert refusal is not None and refusal[0] == 421


def test_listed_service_names_and_suffix_patterns_are_accepted() -> None:
    """Exact names and *.suffix patterns match with or without a port."""
    guard = HostGuard("0.0.0.0", ("bridge", "*.svc.cluster.local"), ())
    assert guard.check("bridge:8080", None) is None
    assert guard.check("bridge.tools.svc.cluster.local", None) is None
    assert guard.check("bridge.example", None) is not None


def test_any_host_is_accepted_on_a_public_bind_but_foreign_origins_are_not() -> None:
    """Listening on 0.0.0.0 without a list accepts any Host; a browser Origin from elsewhere is still refused."""
    guard = HostGuard("0.0.0.0", (), ("https://console.example",))
    assert guard.check("anything:8080", None) is None
    assert guard.check("anything", "https://console.example") is None
    guard = HostGuard("127.0.0.1", (), ())
    refusal = guard.check("localhost", "http://evil.example")
    assert refusal is not None and refusal[0] == 403
    assert guard.check("localhost", "http://localhost:3000") is None


def test_an_ipv6_pod_ip_matches_with_or_without_brackets() -> None:
    """The aggregator dials pod IPs; on an IPv6 cluster its Host is `[fd00::7]:8080`, listed as `$(POD_IP)`."""
    for listed in ("fd00::7", "[fd00::7]", "FD00::7"):
        guard = HostGuard("0.0.0.0", (listed,), ())
        assert guard.check("[fd00::7]:8080", None) is None
        assert guard.check("[fd00::8]:8080", None) is not None
