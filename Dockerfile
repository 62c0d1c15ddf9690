# syntax=docker/dockerfile:1
# Every Fabula image, one component per build. From the repository root:
#   docker build --build-arg SERVICE=users -t fabula-users:dev .
# SERVICE is users, stories, generation, billing, media or gateway. A service's image
# also runs its migrations (python -m fabula_common.prestart <service>) and the
# database bootstrap (python -m fabula_common.provision).
ARG SERVICE

# --- builder: resolve the locked dependencies into a self-contained venv ------
FROM python:3.11.13-slim-bookworm AS builder
ARG SERVICE
COPY --from=ghcr.io/astral-sh/uv:0.13.9 /uv /bin/
# Bytecode is compiled here because the runtime filesystem is read-only;
# workspace packages are installed as wheels (--no-editable), so the runtime
# stage needs the venv and nothing of the source tree.
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/app/.venv
WORKDIR /src
COPY . .
# The cache mount keeps downloaded wheels between builds, so a source change
# reinstalls in seconds even though it invalidates this layer.
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --locked --no-dev --no-editable --package fabula-${SERVICE}

# --- runtime: the venv on a slim Python, as an unprivileged user --------------
FROM python:3.11.13-slim-bookworm AS runtime
ARG SERVICE
LABEL org.opencontainers.image.title="fabula-${SERVICE}"
# A numeric uid/gid lets Kubernetes verify runAsNonRoot without reading
# /etc/passwd. pip/setuptools are not needed at run time.
RUN groupadd --system --gid 10001 fabula \
 && useradd --system --uid 10001 --gid fabula --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin fabula \
 && python -m pip uninstall --yes --quiet pip setuptools wheel
# Owned by root: the process cannot modify its own code.
COPY --from=builder /app/.venv /app/.venv
ENV PATH="/app/.venv/bin:${PATH}" \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
WORKDIR /app
USER 10001:10001

# --- what differs per component: where it listens, how it is checked, what runs.
# Each listens on all interfaces (the settings' default, 127.0.0.1, is
# unreachable from outside the container) and serves Prometheus metrics on 9090.

# gRPC services: grpc.health.v1 overall status (""), through the grpcio health
# stub the image already has; it reports NOT_SERVING as soon as a shutdown
# begins. The port is the container's one <SERVICE>_GRPC_PORT, so an override
# at run time is followed.
FROM runtime AS grpc-service
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, sys, grpc; from grpc_health.v1 import health_pb2 as h, health_pb2_grpc as g; (port,) = [v for k, v in os.environ.items() if k.endswith('_GRPC_PORT')]; status = g.HealthStub(grpc.insecure_channel('127.0.0.1:' + port)).Check(h.HealthCheckRequest(service=''), timeout=3).status; sys.exit(status != h.HealthCheckResponse.SERVING)"]

FROM grpc-service AS users
LABEL org.opencontainers.image.description="Fabula users service (gRPC)"
ENV USERS_GRPC_HOST=0.0.0.0 USERS_GRPC_PORT=50051 USERS_METRICS_PORT=9090
EXPOSE 50051 9090
CMD ["python", "-m", "fabula_users"]

FROM grpc-service AS stories
LABEL org.opencontainers.image.description="Fabula stories service (gRPC)"
ENV STORIES_GRPC_HOST=0.0.0.0 STORIES_GRPC_PORT=50052 STORIES_METRICS_PORT=9090
EXPOSE 50052 9090
CMD ["python", "-m", "fabula_stories"]

FROM grpc-service AS generation
LABEL org.opencontainers.image.description="Fabula generation service (gRPC)"
ENV GENERATION_GRPC_HOST=0.0.0.0 GENERATION_GRPC_PORT=50053 GENERATION_METRICS_PORT=9090
EXPOSE 50053 9090
CMD ["python", "-m", "fabula_generation"]

FROM grpc-service AS billing
LABEL org.opencontainers.image.description="Fabula billing service (gRPC)"
ENV BILLING_GRPC_HOST=0.0.0.0 BILLING_GRPC_PORT=50054 BILLING_METRICS_PORT=9090
EXPOSE 50054 9090
CMD ["python", "-m", "fabula_billing"]
FROM grpc-service AS media
LABEL org.opencontainers.image.description="Fabula media service (gRPC) and photo worker"
ENV MEDIA_GRPC_HOST=0.0.0.0 MEDIA_GRPC_PORT=50055 MEDIA_METRICS_PORT=9090
EXPOSE 50055 9090
CMD ["python", "-m", "fabula_media"]

# The gateway: REST API, /healthz and /readyz on 8000; /metrics only on 9090.
FROM runtime AS gateway
LABEL org.opencontainers.image.description="Fabula gateway (public REST API)"
ENV GATEWAY_HOST=0.0.0.0 GATEWAY_PORT=8000 GATEWAY_METRICS_HOST=0.0.0.0 GATEWAY_METRICS_PORT=9090
EXPOSE 8000 9090
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('GATEWAY_PORT', '8000') + '/healthz', timeout=3)"]
CMD ["python", "-m", "fabula_gateway"]

# --- the image: the stage SERVICE names (a missing SERVICE fails the build) -------
FROM ${SERVICE}
