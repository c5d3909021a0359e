# plexus-aggregator: many MCP targets behind one endpoint on 0.0.0.0:8080. No Node, no uv at run time: it never
# starts servers in a cluster (bridges run in their own pods and are discovered).
#
#   docker build -f images/aggregator.Dockerfile -t ghcr.io/plexus-dev/plexus-aggregator:0.1.0 .     (from the repo root)
#
# Runs as UID/GID 10001 with a read-only root filesystem (HOME is /tmp, an emptyDir in Kubernetes). No HEALTHCHECK:
# Kubernetes probes /livez and /readyz.
#
# Base images are pinned by exact version tag. For reproducible production builds pin them by digest too
# (`FROM python:3.11.14-slim-bookworm@sha256:...`). The digests are not written here because these files were
# written on a machine that cannot pull images, so none could be read: get them with
# `docker buildx imagetools inspect IMAGE:TAG` and let Renovate or Dependabot keep tag and digest current.

FROM ghcr.io/astral-sh/uv:0.13.8 AS uv

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
# A named user for the numeric UID (tools that look the user up in /etc/passwd); the UID is what counts.
RUN groupadd --gid 10001 plexus \
    && useradd --uid 10001 --gid 10001 --no-log-init --no-create-home --home-dir /tmp --shell /usr/sbin/nologin plexus
COPY --from=builder /app/.venv /app/.venv
ENV HOME=/tmp \
    PLEXUS_HOST=0.0.0.0 \
    PLEXUS_PORT=8080 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
WORKDIR /tmp
USER 10001:10001
EXPOSE 8080
ENTRYPOINT ["/app/.venv/bin/plexus-aggregator"]
