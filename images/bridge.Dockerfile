# plexus-bridge: a stdio MCP server (started with npx, uvx or any command in the image) or a REST API described by
# OpenAPI, served as an HTTP MCP server on 0.0.0.0:8080.
#
#   docker build -f images/bridge.Dockerfile -t ghcr.io/plexus-dev/plexus-bridge:0.1.0 .     (from the repo root)
#
# Runs as UID/GID 10001 with a read-only root filesystem: everything it or its child servers write (npm and uv
# caches, HOME) goes under /tmp, where Kubernetes mounts an emptyDir. No HEALTHCHECK: Kubernetes probes /livez and
# /readyz.
#
# Base images are pinned by exact version tag. For reproducible production builds pin them by digest too
# (`FROM python:3.11.14-slim-bookworm@sha256:...`). The digests are not written here because these files were
# written on a machine that cannot pull images, so none could be read: get them with
# `docker buildx imagetools inspect IMAGE:TAG` and let Renovate or Dependabot keep tag and digest current.
# All stages are Debian bookworm (glibc 2.36), so the Node binary copied from the node image runs on the Python one.

FROM ghcr.io/astral-sh/uv:0.13.8 AS uv
FROM node:20.20.2-bookworm-slim AS node

# ---- builder: the project and its locked dependencies in /app/.venv ----
FROM python:3.11.14-slim-bookworm AS builder
COPY --from=uv /uv /usr/local/bin/uv
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_NO_CACHE=1 \
    UV_PYTHON_DOWNLOADS=never \
    UV_PYTHON_PREFERENCE=only-system \
    UV_PROJECT_ENVIRONMENT=/app/.venv
WORKDIR /src
# Dependencies first (their layer survives source edits), then the project itself, not editable: /src stays here.
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --no-install-project
COPY bridge ./bridge
COPY aggregator ./aggregator
RUN uv sync --frozen --no-dev --no-editable

# ---- runtime ----
FROM python:3.11.14-slim-bookworm
# Node 20 (npx) for npm stdio servers, uv (uvx) for Python ones.
COPY --from=node /usr/local/bin/node /usr/local/bin/node
COPY --from=node /usr/local/lib/node_modules/npm /usr/local/lib/node_modules/npm
RUN ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm \
    && ln -s ../lib/node_modules/npm/bin/npx-cli.js /usr/local/bin/npx \
    && node --version && npm --version
COPY --from=uv /uv /uvx /usr/local/bin/
# A named user for the numeric UID (tools that look the user up in /etc/passwd); the UID is what counts.
RUN groupadd --gid 10001 plexus \
    && useradd --uid 10001 --gid 10001 --no-log-init --no-create-home --home-dir /tmp --shell /usr/sbin/nologin plexus
COPY --from=builder /app/.venv /app/.venv

# The venv is not put on PATH: child servers see the image's own python3, node, npx and uvx, not the bridge's packages.
ENV HOME=/tmp \
    PLEXUS_HOST=0.0.0.0 \
    PLEXUS_PORT=8080 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    XDG_CACHE_HOME=/tmp/.cache \
    XDG_CONFIG_HOME=/tmp/.config \
    XDG_DATA_HOME=/tmp/.local/share \
    XDG_STATE_HOME=/tmp/.local/state \
    NPM_CONFIG_CACHE=/tmp/.npm \
    NPM_CONFIG_UPDATE_NOTIFIER=false \
    NPM_CONFIG_FUND=false \
    NPM_CONFIG_AUDIT=false \
    UV_CACHE_DIR=/tmp/.cache/uv \
    UV_TOOL_DIR=/tmp/.local/share/uv/tools \
    UV_PYTHON_INSTALL_DIR=/tmp/.local/share/uv/python
WORKDIR /tmp
USER 10001:10001
EXPOSE 8080
ENTRYPOINT ["/app/.venv/bin/plexus-bridge"]
