"""Session ids that carry their session, so any replica behind one Service can serve any request of it.

A streamable-HTTP session of the handshake era is little more than what `initialize` settled: the protocol version
and the client's capabilities. Sealed into the `Mcp-Session-Id` (encrypted and authenticated with a key every
replica shares, from a Kubernetes Secret), a replica that has never seen the session opens the id and serves it,
and a restarted replica loses nothing. Fernet (AES-128-CBC with HMAC-SHA256, from `cryptography`) does the sealing:
a client can neither read nor forge an id. What a session sets up later (its log level, its subscriptions, its
open GET stream) stays on the replica that received it.
"""

from __future__ import annotations

import base64
import logging
import os
from pathlib import Path
from typing import Any, Final

import orjson
from cryptography.fernet import Fernet, InvalidToken

from bridge.exceptions import ConfigError

__all__ = ["KEY_ENV", "MAX_AGE", "SessionSealer", "load_key"]

logger = logging.getLogger(__name__)

MAX_AGE: Final = 7 * 24 * 3600
"""Seconds a sealed session id stays valid: a client idle for longer starts a new session (HTTP 404)."""
KEY_ENV: Final = "PLEXUS_SESSION_KEY"
"""Environment variable holding the key itself, as an alternative to a key file."""


class SessionSealer:
    """Seals a session's settled state into its id, and opens ids sealed with the same key."""

    def __init__(self, key: bytes) -> None:
        self._fernet = Fernet(key)

    def seal(self, state: dict[str, Any]) -> str:
        return self._fernet.encrypt(orjson.dumps(state)).decode()

    def open(self, session_id: str) -> dict[str, Any] | None:
        """The state sealed in `session_id`, or None for an id this key did not seal (or one too old)."""
        try:
            state = orjson.loads(self._fernet.decrypt(session_id.encode(), ttl=MAX_AGE))
        except (InvalidToken, orjson.JSONDecodeError, UnicodeEncodeError):
            return None
        return state if isinstance(state, dict) else None


def load_key(path: Path | None) -> bytes | None:
    """The sealing key from `path` or from PLEXUS_SESSION_KEY, or None when neither is given.

    A key is 32 random bytes, url-safe base64 encoded (`python -c "import secrets, base64;
    print(base64.urlsafe_b64encode(secrets.token_bytes(32)).decode())"`).
    """
    if path is not None:
        try:
            raw = path.read_bytes().strip()
        except OSError as exc:
            raise ConfigError(f"Cannot read the session key file {path}: {exc.strerror}.") from exc
        where = str(path)
    elif os.environ.get(KEY_ENV):
        raw, where = os.environ[KEY_ENV].strip().encode(), KEY_ENV
    else:
        return None
    try:
        valid = len(base64.urlsafe_b64decode(raw)) == 32
    except ValueError:
        valid = False
    if not valid:
        raise ConfigError(
            f"The session key in {where} is not 32 url-safe base64-encoded bytes; make one with "
            '`python -c "import secrets, base64; print(base64.urlsafe_b64encode(secrets.token_bytes(32)).decode())"`.'
        )
    return raw
