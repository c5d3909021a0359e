"""Credentials for the REST API, from its `securitySchemes`, read from the environment or mounted files only.

Secrets never come from flags (they would show in `ps`) and never reach the log. For a scheme named `name` in the
spec, the bridge reads `PLEXUS_AUTH_<NAME>` (`NAME` upper-cased, other characters as `_`), or the file named by
`PLEXUS_AUTH_<NAME>_FILE`:

| scheme | variables |
| --- | --- |
| apiKey (header, query, cookie) | `PLEXUS_AUTH_<NAME>` |
| http bearer | `PLEXUS_AUTH_<NAME>` (the token) |
| http basic | `PLEXUS_AUTH_<NAME>_USERNAME`, `PLEXUS_AUTH_<NAME>_PASSWORD` |
| oauth2 (client credentials) | `PLEXUS_AUTH_<NAME>_CLIENT_ID`, `PLEXUS_AUTH_<NAME>_CLIENT_SECRET` |

OAuth2 tokens are fetched from the flow's `tokenUrl`, cached, and fetched again before they expire or after a 401.
Each `_FILE` variant works too (`PLEXUS_AUTH_<NAME>_PASSWORD_FILE`, ...). An operation's `security` lists
alternatives; the first one whose schemes all have credentials is used.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import re
import time
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlencode, urljoin

import orjson

from bridge.exceptions import ConfigError
from bridge.http1 import Client

__all__ = ["Credentials", "RequestParts"]

logger = logging.getLogger(__name__)

TOKEN_EXPIRY_MARGIN: Final = 30.0
"""Seconds before an OAuth2 token's expiry at which it is fetched again, so no request carries a stale one."""

DEFAULT_TOKEN_LIFETIME: Final = 300.0
MAX_TOKEN_RESPONSE: Final = 64 * 1024
"""Bytes of a token endpoint's answer read; a token response is a few hundred."""
"""Seconds a token without `expires_in` is reused."""


@dataclass
class RequestParts:
    """The pieces of an outgoing request that credentials may add to."""

    headers: MutableMapping[str, str]
    query: list[tuple[str, str]]
    cookies: MutableMapping[str, str] = field(default_factory=dict)


def _variable(scheme: str, suffix: str = "") -> str:
    return "PLEXUS_AUTH_" + re.sub(r"[^A-Za-z0-9]", "_", scheme).upper() + suffix


def _secret(environ: Mapping[str, str], scheme: str, suffix: str = "") -> str | None:
    name = _variable(scheme, suffix)
    if name in environ:
        return environ[name]
    path = environ.get(name + "_FILE")
    if path is None:
        return None
    try:
        return Path(path).read_text().strip()
    except OSError as exc:
        raise ConfigError(f"{name}_FILE={path!r} cannot be read ({exc.strerror}); mount the secret there.") from exc


@dataclass
class _Token:
    value: str
    expires: float


class Credentials:
    """Applies the configured credentials of each security scheme to outgoing requests."""

    def __init__(self, schemes: Mapping[str, Any], environ: Mapping[str, str], base_url: str) -> None:
        self._schemes = schemes
        self._values: dict[str, Any] = {}
        self._tokens: dict[str, _Token] = {}
        self._token_locks: dict[str, asyncio.Lock] = {}
        for name, scheme in schemes.items():
            kind = (scheme or {}).get("type")
            http_scheme = str((scheme or {}).get("scheme", "")).lower()
            if kind == "http" and http_scheme == "basic":
                user, password = _secret(environ, name, "_USERNAME"), _secret(environ, name, "_PASSWORD")
                if user is not None and password is not None:
                    self._values[name] = base64.b64encode(f"{user}:{password}".encode()).decode()
            elif kind == "oauth2":
                client_id = _secret(environ, name, "_CLIENT_ID")
                secret = _secret(environ, name, "_CLIENT_SECRET")
                token_url = ((scheme.get("flows") or {}).get("clientCredentials") or {}).get("tokenUrl")
                if client_id is not None and secret is not None and token_url:
                    # A relative tokenUrl (FastAPI writes "/token") is relative to the API's address.
                    self._values[name] = (client_id, secret, urljoin(base_url.rstrip("/") + "/", str(token_url)))
                    self._token_locks[name] = asyncio.Lock()
            elif kind in ("apiKey", "http"):
                value = _secret(environ, name)
                if value is not None:
                    self._values[name] = value
        if self._values:
            logger.info("Credentials configured for security schemes: %s", ", ".join(sorted(self._values)))

    @property
    def configured(self) -> frozenset[str]:
        return frozenset(self._values)

    def choose(self, requirements: tuple[Mapping[str, list[str]], ...]) -> Mapping[str, list[str]] | None:
        """The first alternative whose schemes all have credentials; None when the operation needs none we have."""
        for alternative in requirements:
            if all(name in self._values for name in alternative):
                return alternative
        return None

    def missing_hint(self, requirements: tuple[Mapping[str, list[str]], ...]) -> str:
        """Which variables would satisfy the operation's security, for an error message."""
        names = sorted({name for alternative in requirements for name in alternative})
        return ", ".join(_variable(name) + "[_FILE]" for name in names)

    async def apply(self, requirement: Mapping[str, list[str]], parts: RequestParts, client: Client) -> None:
        for name, scopes in requirement.items():
            scheme = self._schemes[name]
            value = self._values[name]
            kind = scheme.get("type")
            if kind == "apiKey":
                where, key = scheme.get("in"), str(scheme.get("name"))
                if where == "header":
                    parts.headers[key] = value
                elif where == "query":
                    parts.query.append((key, value))
                else:
                    parts.cookies[key] = value
            elif kind == "http":
                prefix = "Basic" if str(scheme.get("scheme")).lower() == "basic" else "Bearer"
                parts.headers["Authorization"] = f"{prefix} {value}"
            elif kind == "oauth2":
                token = await self._token(name, scopes, client)
                parts.headers["Authorization"] = f"Bearer {token}"

    def invalidate(self, requirement: Mapping[str, list[str]]) -> None:
        """Forget cached tokens after the API refused them (HTTP 401), so the next call fetches a fresh one."""
        for name in requirement:
            self._tokens.pop(name, None)

    async def _token(self, name: str, scopes: list[str], client: Client) -> str:
        async with self._token_locks[name]:
            token = self._tokens.get(name)
            if token is not None and token.expires > time.monotonic():
                return token.value
            client_id, secret, token_url = self._values[name]
            form = {"grant_type": "client_credentials"}
            if scopes:
                form["scope"] = " ".join(scopes)
            basic = base64.b64encode(f"{client_id}:{secret}".encode("latin-1")).decode()
            headers = {
                "Accept": "application/json",
                "Content-Type": "application/x-www-form-urlencoded",
                "Authorization": f"Basic {basic}",
            }
            response = await client.request("POST", token_url, headers, urlencode(form).encode())
            try:
                raw = await response.read(MAX_TOKEN_RESPONSE)
            finally:
                response.release()
            if response.status != 200:
                raise PermissionError(
                    f"The OAuth2 token endpoint of {name!r} answered HTTP {response.status}; check "
                    f"{_variable(name, '_CLIENT_ID')} and {_variable(name, '_CLIENT_SECRET')}."
                )
            try:
                body = orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                raise PermissionError(f"The OAuth2 token endpoint of {name!r} answered no JSON token.") from exc
            lifetime = float(body.get("expires_in") or DEFAULT_TOKEN_LIFETIME)
            value = str(body["access_token"])
            self._tokens[name] = _Token(value, time.monotonic() + max(0.0, lifetime - TOKEN_EXPIRY_MARGIN))
            return value
