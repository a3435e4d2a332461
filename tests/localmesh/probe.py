"""A mesh client for the tests: makes calls as one pod's identity and reports each.

`python -m localmesh.probe PLAN.json` (with tests/ on PYTHONPATH, as meshcalls.probe runs it)
and GRPC_XDS_BOOTSTRAP naming an identity's bootstrap: every call goes through gRPC's own xDS
client (routes, weights, retries, outlier ejection, mTLS with that identity), so a result is
what that caller would get. One process per identity because a gRPC process has exactly one
xDS bootstrap.

A plan is a JSON list of batches; each prints one JSON line per call:
  {"target": "xds:///payment.shop.svc.cluster.local:50053",
   "method": "/shop.payment.v1.PaymentService/GetPayment",
   "request_b64": "...", "metadata": [["x-canary", "true"]],
   "count": 1, "concurrency": 1, "timeout": 5.0, "streaming": false, "pause": 0.0,
   "credentials": "xds" | "insecure", "duration": null, "requests_b64": null,
   "fresh_channel": false}
`fresh_channel` makes each call on a channel (so a connection) of its own;
`duration` keeps each worker calling until that many seconds have passed (`count` still caps
the calls); `requests_b64`, a list, gives call i the request i modulo its length.
→ {"batch": 0, "index": 0, "code": "OK", "details": "", "peer": "sidecar~127.10.4.1~...",
   "messages": 1, "started": 0.0012, "elapsed": 0.004, "headers": {...}, "trailers": {...},
   "response_b64": "..."}
"""

from __future__ import annotations

import base64
import json
import sys
import threading
import time
from collections.abc import Sequence
from concurrent import futures
from typing import Any

import grpc
import grpc.experimental

PEER_ID = "x-envoy-peer-metadata-id"


def _identity(data: bytes) -> bytes:
    return data


def _peer(*metadata_sets: Sequence[tuple[str, Any]] | None) -> str:
    for metadata in metadata_sets:
        for key, value in metadata or ():
            if key == PEER_ID:
                return str(value)
    return ""


def _plain(metadata: Sequence[tuple[str, Any]] | None) -> dict[str, str]:
    """Metadata as JSON: text as is, binary (`-bin`) values base64-encoded."""
    return {
        key: base64.b64encode(value).decode() if isinstance(value, bytes) else str(value)
        for key, value in metadata or ()
    }


def _outcome(code: str, details: str, messages: int, call: Any, response: bytes = b"") -> dict[str, Any]:
    headers, trailers = call.initial_metadata(), call.trailing_metadata()
    return {
        "code": code,
        "details": details,
        "messages": messages,
        "peer": _peer(headers, trailers),
        "headers": _plain(headers),
        "trailers": _plain(trailers),
        "response_b64": base64.b64encode(response).decode(),
    }


def _channel(target: str, credentials: str) -> grpc.Channel:
    if credentials == "insecure":
        return grpc.insecure_channel(target)
    return grpc.secure_channel(
        target, grpc.xds_channel_credentials(grpc.experimental.insecure_channel_credentials())
    )


def _call(channel: grpc.Channel, batch: dict[str, Any], request: bytes) -> dict[str, Any]:
    metadata = tuple((str(k), str(v)) for k, v in batch.get("metadata") or [])
    timeout = float(batch.get("timeout", 5.0))
    if batch.get("streaming"):
        stream = channel.unary_stream(
            batch["method"], request_serializer=_identity, response_deserializer=_identity
        )(request, timeout=timeout, metadata=metadata)
        count = 0
        try:
            for _ in stream:
                count += 1
            return _outcome("OK", "", count, stream)
        except grpc.RpcError as error:
            failed: Any = error
            return _outcome(failed.code().name, failed.details() or "", count, failed)
    unary = channel.unary_unary(
        batch["method"], request_serializer=_identity, response_deserializer=_identity
    )
    try:
        response, call = unary.with_call(request, timeout=timeout, metadata=metadata)
        return _outcome("OK", "", 1, call, response)
    except grpc.RpcError as error:
        failed = error
        return _outcome(failed.code().name, failed.details() or "", 0, failed)


def run(plan: list[dict[str, Any]], out: Any = sys.stdout) -> None:
    channels: dict[tuple[str, str], grpc.Channel] = {}
    lock = threading.Lock()
    origin = time.monotonic()
    for number, batch in enumerate(plan):
        key = (batch["target"], batch.get("credentials", "xds"))
        if key not in channels:
            channels[key] = _channel(*key)
        channel = channels[key]
        requests = [base64.b64decode(item) for item in batch.get("requests_b64") or []]
        requests = requests or [base64.b64decode(batch.get("request_b64", ""))]
        pause = float(batch.get("pause", 0.0))
        count = int(batch.get("count", 1))
        duration = batch.get("duration")
        stop_at = time.monotonic() + float(duration) if duration is not None else None
        counter = iter(range(count))

        def worker(
            key: tuple[str, str] = key,
            channel: grpc.Channel = channel,
            batch: dict[str, Any] = batch,
            requests: list[bytes] = requests,
            number: int = number,
            pause: float = pause,
            stop_at: float | None = stop_at,
            counter: Any = counter,
        ) -> None:
            while stop_at is None or time.monotonic() < stop_at:
                with lock:
                    index = next(counter, None)
                if index is None:
                    return
                started = time.monotonic()
                if batch.get("fresh_channel"):
                    # a new connection, so a new TLS handshake with the current certificate
                    with _channel(*key) as fresh:
                        result = _call(fresh, batch, requests[index % len(requests)])
                else:
                    result = _call(channel, batch, requests[index % len(requests)])
                result.update(
                    batch=number,
                    index=index,
                    started=round(started - origin, 4),
                    elapsed=round(time.monotonic() - started, 4),
                )
                with lock:
                    out.write(json.dumps(result) + "\n")
                    out.flush()
                if pause:
                    time.sleep(pause)

        workers = max(1, int(batch.get("concurrency", 1)))
        with futures.ThreadPoolExecutor(max_workers=workers) as pool:
            for task in [pool.submit(worker) for _ in range(workers)]:
                task.result()
    for channel in channels.values():
        channel.close()


def main(argv: Sequence[str] | None = None) -> None:
    arguments = list(sys.argv[1:] if argv is None else argv)
    if len(arguments) != 1:
        raise SystemExit("usage: python -m localmesh.probe PLAN.json  (or - for stdin)")
    text = sys.stdin.read() if arguments[0] == "-" else open(arguments[0]).read()  # noqa: SIM115
    run(json.loads(text))


if __name__ == "__main__":
    main()
