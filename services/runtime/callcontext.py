"""What the server call being handled passes on to the calls it makes: its request id, deadline
and trace context.

The server interceptor sets it for the duration of each incoming call (a contextvar, so it
follows the handler's task); the outbound channels and the log formatter read it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, replace

from services.runtime.tracing import TraceContext

REQUEST_ID_HEADER = "x-request-id"
#: Untrusted: an incoming request id longer than this is replaced by a fresh one.
MAX_REQUEST_ID_LENGTH = 128


@dataclass(frozen=True)
class CallContext:
    request_id: str
    method: str  # the full method path of the incoming call, e.g. "/shop.order.v1.OrderService/CreateOrder"
    deadline: float | None  # time.monotonic() by which the incoming call must answer, None if unbounded
    trace: TraceContext | None = None

    def remaining(self) -> float | None:
        return None if self.deadline is None else max(0.0, self.deadline - time.monotonic())


_current: ContextVar[CallContext | None] = ContextVar("shopmesh_call", default=None)


def current_call() -> CallContext | None:
    return _current.get()


@contextmanager
def call_scope(call: CallContext) -> Iterator[CallContext]:
    token = _current.set(call)
    try:
        yield call
    finally:
        _current.reset(token)


@contextmanager
def outbound_call_context(timeout: float) -> Iterator[CallContext]:
    """Calls made inside get a fresh budget of `timeout` seconds instead of the incoming deadline.

    For detached work that must finish even though the incoming call ran out of time, like a
    saga's compensation (release the stock, refund the charge). The request id is kept, so the
    compensation is still logged and traced under the request that caused it.
    """
    outer = _current.get()
    deadline = time.monotonic() + timeout
    if outer is None:
        call = CallContext(request_id="", method="", deadline=deadline)
    else:
        call = replace(outer, deadline=deadline)
    with call_scope(call) as scoped:
        yield scoped
