"""The local kubelet on the running mesh: a killed pod is restarted on CrashLoopBackOff's
schedule and Ready again; a pod that stops answering leaves EDS (as the control plane serves
it) and its livenessProbe restarts it; with the control plane down the data plane keeps serving
and a restarted pod waits, not Ready, until it is back. Through `shopmesh mesh ps/kill/
stop-control-plane/start-control-plane` from another process, as the chaos experiments call them.

How long recovery takes is a benchmark's figure (scripts/chaos); here the mechanism is checked:
restart counts, readiness, the schedule's delays, the endpoints served.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import pytest
from envoy.config.core.v3 import base_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2

from shop.order.v1 import order_pb2, order_pb2_grpc
from shopmesh.localmesh.control import request
from shopmesh.localmesh.supervisor import LocalMesh
from shopmesh.localmesh.translate import names

pytestmark = pytest.mark.slow  # the session's mesh: real pods, sidecars and control plane

#: Bounds so that a broken mesh fails the test instead of hanging it, not timing targets.
RECOVERY_TIMEOUT = 90.0
ORDER_V2_CLUSTER = "outbound|50051|v2|order.shop.svc.cluster.local"


def cli(mesh: LocalMesh, *arguments: str) -> subprocess.CompletedProcess[str]:
    """`shopmesh mesh ...` in a process of its own, against the test's mesh."""
    return subprocess.run(
        [sys.executable, "-m", "shopmesh.cli", "mesh", *arguments, "--state", str(mesh.settings.state)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def pods(mesh: LocalMesh) -> dict[str, dict[str, Any]]:
    return {pod["name"]: pod for pod in request(mesh.state.control_socket, "ps")["pods"]}


def wait_pod(
    mesh: LocalMesh, name: str, condition: Callable[[dict[str, Any]], bool], timeout: float = RECOVERY_TIMEOUT
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        pod = pods(mesh)[name]
        if condition(pod):
            return pod
        assert time.monotonic() < deadline, f"{name} never got there: {pod}"
        time.sleep(0.2)


@pytest.fixture(autouse=True)
def all_ready_after(mesh: LocalMesh) -> Iterator[None]:
    """Whatever a test broke, the next one starts with the control plane up and every pod Ready."""
    yield
    if not mesh.processes["controlplane"].running():
        mesh.start_control_plane()
    assert mesh.kubelet is not None
    mesh.kubelet.wait_ready(RECOVERY_TIMEOUT)


class EdsWatch:
    """An xDS client of the control plane subscribed to one cluster's endpoints: what the
    mesh's proxies are served, as they are served it."""

    def __init__(self, control_plane: str, cluster: str) -> None:
        self._channel = grpc.insecure_channel(control_plane)
        self._requests: queue.Queue[discovery_pb2.DiscoveryRequest | None] = queue.Queue()
        self._ask = discovery_pb2.DiscoveryRequest(
            node=base_pb2.Node(id="test-eds-watch"), type_url=names.ENDPOINT, resource_names=[cluster]
        )
        self._requests.put(self._ask)
        self.addresses: list[str] | None = None
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        stub = ads_pb2_grpc.AggregatedDiscoveryServiceStub(self._channel)
        try:
            for response in stub.StreamAggregatedResources(iter(self._requests.get, None)):
                for resource in response.resources:
                    assignment = endpoint_pb2.ClusterLoadAssignment()
                    resource.Unpack(assignment)
                    self.addresses = [
                        endpoint.endpoint.address.socket_address.address
                        for locality in assignment.endpoints
                        for endpoint in locality.lb_endpoints
                    ]
                ack = discovery_pb2.DiscoveryRequest()
                ack.CopyFrom(self._ask)
                ack.version_info, ack.response_nonce = response.version_info, response.nonce
                self._requests.put(ack)
        except grpc.RpcError:
            pass  # closed

    def wait_for(self, expected: list[str], timeout: float = RECOVERY_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while self.addresses != expected:
            assert time.monotonic() < deadline, f"EDS serves {self.addresses}, expected {expected}"
            time.sleep(0.1)

    def close(self) -> None:
        self._requests.put(None)
        self._channel.close()


def test_a_killed_pod_is_restarted_at_once_then_on_the_back_off_schedule(mesh: LocalMesh) -> None:
    assert mesh.kubelet is not None
    worker = mesh.kubelet.workers["payment-0"]
    listed = json.loads(cli(mesh, "ps", "--json").stdout)
    before = next(pod for pod in listed["pods"] if pod["name"] == "payment-0")
    assert (before["ready"], before["status"]) == (True, "Running")
    assert listed["control_plane"]["status"] == "Running"
    prior_delay = worker.back_off.delay

    killed = cli(mesh, "kill", "payment-0")
    assert killed.returncode == 0, killed.stderr
    assert f"payment-0: app (pid {before['app_pid']}) killed with SIGKILL" in killed.stdout
    after = wait_pod(mesh, "payment-0", lambda p: p["restarts"] == before["restarts"] + 1 and p["ready"])
    assert (after["last_state"]["reason"], after["last_state"]["exit_code"]) == ("Error", 137)  # SIGKILL
    assert after["app_pid"] != before["app_pid"]
    if prior_delay is None:  # the pod's first exit (when run alone or first): restarted at once
        assert worker.last_wait is not None
        assert worker.last_wait < worker.back_off.policy.initial
        assert worker.back_off.delay == worker.back_off.policy.initial  # 10 s for the next exit

    # A second exit soon after: CrashLoopBackOff, for the schedule's delay after the exit.
    delay = worker.back_off.delay
    assert delay is not None
    request(mesh.state.control_socket, "kill", {"pod": "payment-0"})
    backing_off = wait_pod(mesh, "payment-0", lambda p: p["status"] == "CrashLoopBackOff")
    assert (backing_off["ready"], backing_off["ready_containers"]) == (False, 0)
    assert 0 < backing_off["back_off_seconds"] <= delay
    assert "CrashLoopBackOff" in cli(mesh, "ps").stdout
    wait_pod(mesh, "payment-0", lambda p: p["restarts"] == before["restarts"] + 2 and p["ready"])
    assert worker.last_wait is not None
    assert worker.last_wait >= delay
    assert worker.back_off.delay == min(2 * delay, worker.back_off.policy.maximum)


def test_the_commands_say_in_one_line_what_is_wrong(mesh: LocalMesh, tmp_path: Any) -> None:
    unknown = cli(mesh, "kill", "payment-9")
    assert unknown.returncode == 1
    assert unknown.stderr.strip() == (
        "shopmesh mesh kill: no pod named 'payment-9' "
        "(pods: inventory-0, order-0, order-v2-0, payment-0, payment-1)"
    )
    nothing = subprocess.run(
        [sys.executable, "-m", "shopmesh.cli", "mesh", "ps", "--state", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert nothing.returncode == 1
    assert nothing.stderr.strip() == (
        f"shopmesh mesh ps: no local mesh is running (nothing answers at {tmp_path / 'control.sock'})"
    )


def test_a_pod_that_stops_answering_leaves_eds_and_liveness_restarts_it(mesh: LocalMesh) -> None:
    """SIGSTOP: the process is there, its port accepts connections, nothing answers."""
    name = "order-v2-0"
    address = next(pod.instance.address for pod in mesh.pods if pod.name == name)
    before = pods(mesh)[name]
    eds = EdsWatch(mesh.settings.control_plane, ORDER_V2_CLUSTER)
    try:
        eds.wait_for([address])
        os.kill(before["app_pid"], signal.SIGSTOP)
        try:
            eds.wait_for([])  # readinessProbe: 2 failures 5 s apart
            hung = pods(mesh)[name]
            assert (hung["ready"], hung["status"], hung["restarts"]) == (False, "Running", before["restarts"])
            restarted = wait_pod(mesh, name, lambda p: p["restarts"] == before["restarts"] + 1)
        finally:
            if pods(mesh)[name]["app_pid"] == before["app_pid"]:  # still ours: not a recycled pid
                os.kill(before["app_pid"], signal.SIGCONT)
        assert restarted["last_state"]["message"] == "liveness probe failed"
        assert restarted["last_state"]["exit_code"] == 137  # SIGTERM waits in a stopped process: SIGKILL
        wait_pod(mesh, name, lambda p: p["ready"])
        eds.wait_for([address])  # Ready again: an endpoint again
    finally:
        eds.close()


def test_without_control_plane_the_mesh_serves_and_a_restarted_pod_waits_for_it(mesh: LocalMesh) -> None:
    name = "inventory-0"
    before = pods(mesh)[name]
    with grpc.insecure_channel(mesh.settings.ingress) as channel:
        orders = order_pb2_grpc.OrderServiceStub(channel)

        def list_orders() -> None:
            orders.ListOrders(order_pb2.ListOrdersRequest(customer_id="cp-down"), timeout=10)

        list_orders()
        stopped = cli(mesh, "stop-control-plane")
        assert (stopped.returncode, stopped.stdout.strip()) == (0, "control plane: Stopped"), stopped.stderr
        assert "already stopped" in cli(mesh, "stop-control-plane").stderr
        request(mesh.state.control_socket, "kill", {"pod": name})
        # restarted, its app Ready (1/2), but its sidecar has no configuration: the pod is not
        restarted = wait_pod(
            mesh, name, lambda p: p["restarts"] == before["restarts"] + 1 and p["ready_containers"] == 1
        )
        assert not restarted["ready"]
        for _ in range(5):  # the data plane keeps its last configuration: calls still succeed
            list_orders()
        time.sleep(2)  # well past the sidecar's readiness period (1 s): still waiting
        assert not pods(mesh)[name]["ready"]

        back_at = time.time()
        started = cli(mesh, "start-control-plane")
        assert (started.returncode, started.stdout.strip()) == (0, "control plane: Running"), started.stderr
        ready = wait_pod(mesh, name, lambda p: p["ready"])
        assert ready["ready_since"] > back_at
        list_orders()
        # Orders through each order version to inventory and payment again: the clients
        # reconnect on gRPC's backoff, which grew during the outage; later tests need every path.
        deadline, in_a_row = time.monotonic() + RECOVERY_TIMEOUT, 0
        while in_a_row < 10:
            canary = (("x-canary", "true"),) if in_a_row % 2 else ()
            try:
                orders.CreateOrder(
                    order_pb2.CreateOrderRequest(
                        request_id=f"cp-back-{time.monotonic_ns()}",
                        customer_id="cp-down",
                        payment_token="tok_visa",
                        items=[order_pb2.OrderItem(product_id="sku-espresso-beans", quantity=1)],
                    ),
                    timeout=10,
                    metadata=canary,
                )
                in_a_row += 1
            except grpc.RpcError as error:
                if time.monotonic() > deadline:
                    raise AssertionError(f"orders do not flow again: {error}") from error
                in_a_row = 0
                time.sleep(0.5)
