"""The command line: flags, PLEXUS_* variables, and errors that say what to fix."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bridge.cli import settings_from_args
from bridge.exceptions import ConfigError
from bridge.settings import StdioSource


def test_flags_and_environment_variables_both_configure(monkeypatch: pytest.MonkeyPatch) -> None:
    """PLEXUS_<FLAG> sets a default; the flag on the command line wins."""
    monkeypatch.setenv("PLEXUS_MAX_SESSIONS", "7")
    monkeypatch.setenv("PLEXUS_PORT", "9000")
    monkeypatch.setenv("PLEXUS_ALLOWED_HOSTS", "a, b")
    settings = settings_from_args(["stdio", "--port", "9100", "--", "server", "--flag"])
    assert settings.max_sessions == 7
    assert settings.port == 9100
    assert settings.allowed_hosts == ("a", "b")
    assert isinstance(settings.source, StdioSource) and settings.source.command == ("server", "--flag")


def test_a_bad_environment_value_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    """A PLEXUS_* value that does not parse is reported with its name and value."""
    monkeypatch.setenv("PLEXUS_MAX_SESSIONS", "many")
    with pytest.raises(ConfigError, match="PLEXUS_MAX_SESSIONS='many'"):
        settings_from_args(["stdio", "--", "server"])


def test_a_server_is_required_exactly_once() -> None:
    """Neither a command nor --fifo, or both, is an error that shows both ways."""
    with pytest.raises(ConfigError, match="--fifo DIR"):
        settings_from_args(["stdio"])
    with pytest.raises(ConfigError, match="not both"):
        settings_from_args(["stdio", "--fifo", "/tmp", "--", "server"])


def test_fifo_mode_refuses_per_session() -> None:
    """--fifo serves one process, so per-session mode is refused with the reason."""
    with pytest.raises(ConfigError, match="only with --session-mode shared"):
        settings_from_args(["stdio", "--fifo", str(Path("/tmp")), "--session-mode", "per-session"])


def test_help_explains_every_flag_and_the_environment() -> None:
    """`plexus-bridge stdio --help` mentions the PLEXUS_ variables and each flag has a description."""
    completed = subprocess.run([sys.executable, "-m", "bridge", "stdio", "--help"], capture_output=True, text=True)
    assert completed.returncode == 0
    assert "PLEXUS_" in completed.stdout
    for flag in ("--session-mode", "--fifo", "--max-sessions", "--request-timeout", "--allowed-hosts"):
        assert flag in completed.stdout


def test_a_config_error_exits_2_with_the_message() -> None:
    """Misconfiguration exits with status 2 and a one-line message on stderr, no traceback."""
    completed = subprocess.run([sys.executable, "-m", "bridge", "stdio"], capture_output=True, text=True)
    assert completed.returncode == 2
    assert completed.stderr.startswith("plexus-bridge: error:") and "Traceback" not in completed.stderr
