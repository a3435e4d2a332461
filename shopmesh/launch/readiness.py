"""When a started process is ready: its gRPC health says SERVING, or its port accepts connections.

The one readiness wait of the project (the plain run, the benchmark, the local mesh, the tests).
It must not sit out gRPC's reconnect backoff: a channel whose first connection was refused waits
about a second before it tries again, while a service starts serving well within that. The
probe channel therefore retries its connection every few tens of milliseconds, and each health
check waits for the connection (`wait_for_ready`) instead of failing at once.
"""

from __future__ import annotations

import time

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from shopmesh.launch.listeners import accepts_connections
from shopmesh.launch.processes import ManagedProcess

#: The probe channel's reconnect backoff: short, since the server is expected any moment.
_PROBE_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 50),
    ("grpc.min_reconnect_backoff_ms", 50),
    ("grpc.max_reconnect_backoff_ms", 100),
    # A pool of its own: no other channel of this process shares (or slows) its connection.
    ("grpc.use_local_subchannel_pool", 1),
]
#: Each health check's budget: a started server answers in milliseconds.
_CHECK_SECONDS = 0.25
_POLL_SECONDS = 0.05


def health_status(address: str, service: str = "", timeout: float = 0.5) -> int | None:
    """One health check of `service` ("" for the whole server), or None if nothing answers."""
    with grpc.insecure_channel(address) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=timeout
            )
        except grpc.RpcError:
            return None
        return int(reply.status)


def wait_serving(process: ManagedProcess, address: str, timeout: float, service: str = "") -> None:
    """Returns once `address` says SERVING for `service`; RuntimeError, with the process's log,
    if the process exits first or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    with grpc.insecure_channel(address, options=_PROBE_OPTIONS) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        while True:
            if not process.running():
                raise RuntimeError(f"{process.name} exited ({process.returncode()}):\n{process.logs()}")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise RuntimeError(
                    f"{process.name} not SERVING on {address} within {timeout}s:\n{process.logs()}"
                )
            try:
                reply = health.Check(
                    health_pb2.HealthCheckRequest(service=service),
                    timeout=min(_CHECK_SECONDS, remaining),
                    wait_for_ready=True,
                )
            except grpc.RpcError as error:
                if error.code() is not grpc.StatusCode.DEADLINE_EXCEEDED:
                    time.sleep(_POLL_SECONDS)  # an answer, but not a health reply: ask again later
                continue  # DEADLINE_EXCEEDED: not listening yet, and the check waited already
            if reply.status == health_pb2.HealthCheckResponse.SERVING:
                return
            time.sleep(_POLL_SECONDS)  # listening, but not SERVING yet (e.g. its database)


def wait_listening(process: ManagedProcess, address: str, timeout: float) -> None:
    """Returns once `address` accepts TCP connections (a process that speaks no health service);
    RuntimeError, with the process's log, if it exits first or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    while not accepts_connections(address):
        if not process.running():
            raise RuntimeError(f"{process.name} exited ({process.returncode()}):\n{process.logs()}")
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"{process.name} not listening on {address} within {timeout}s:\n{process.logs()}"
            )
        time.sleep(_POLL_SECONDS)
