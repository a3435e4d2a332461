# One image for the three services: `shopmesh serve <service>` picks which one runs, and
# `shopmesh migrate <service>` (the initContainer) upgrades its database.
#
# Build stage: compilers and pip live here only. The final stage gets a ready virtualenv.
FROM python:3.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/shopmesh
WORKDIR /src
COPY pyproject.toml README.md ./
COPY gen/ gen/
COPY services/ services/
COPY shopmesh/ shopmesh/
# A regular (non-editable) install: the final stage copies /opt/shopmesh, not /src.
RUN /opt/shopmesh/bin/pip install .

FROM python:3.11-slim-bookworm
# UID 10001, never 1337: Istio's sidecar runs as 1337 and its iptables rules exempt that UID from
# interception, so an application running as 1337 would bypass the mesh (istioctl analyze IST0144).
RUN groupadd --system --gid 10001 shopmesh \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent shopmesh
COPY --from=build /opt/shopmesh /opt/shopmesh
ENV PATH=/opt/shopmesh/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
# The root filesystem is read-only in Kubernetes; /tmp is an emptyDir there.
WORKDIR /tmp
USER 10001:10001
# gRPC ports (order, inventory, payment) and the metrics port used in Kubernetes.
EXPOSE 50051 50052 50053 9090
ENTRYPOINT ["shopmesh"]
CMD ["--help"]
