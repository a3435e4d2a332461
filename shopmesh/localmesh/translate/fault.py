"""VirtualService `fault` → the HTTP fault filter's per-route config (gRFC A33), as istiod
writes it: pilot/pkg/networking/core/route/route.go TranslateRoute puts
`TranslateFault(in.Fault)` in the route's `typed_per_filter_config["envoy.filters.http.fault"]`,
where the listener's (empty) fault filter, before the router, picks it up.

TranslateFault's rules, kept here: a delay's `percentage` (0-100, a float) becomes
numerator `value * 10000` of a MILLION, its legacy integer `percent` a numerator of a HUNDRED
(so a delay with neither delays nothing); an abort without `percentage` gets none (so it aborts
nothing, in Envoy and in gRPC alike); `grpcStatus` is a code's name (pkg/util/grpc/codes.go
SupportedGRPCStatus). What istiod's validation refuses (pkg/config/validation
validateHTTPFaultInjection: no abort and no delay, `http2Error`, `exponentialDelay`, an HTTP
status outside 200-600, an unknown gRPC status, a percentage outside 0-100) is refused here
with the same reason; so is what TranslateFault would silently drop (a delay without
`fixedDelay`, an abort without a status), which the local mesh cannot enforce as written.

gRPC maps an `httpStatus` abort to a status as grpc-core's grpc_http2_status_to_grpc_status:
400 INTERNAL, 401 UNAUTHENTICATED, 403 PERMISSION_DENIED, 404 UNIMPLEMENTED, 429, 502, 503,
504 UNAVAILABLE, any other UNKNOWN; 200 aborts nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import grpc
from envoy.extensions.filters.common.fault.v3 import fault_pb2 as common_fault_pb2
from envoy.extensions.filters.http.fault.v3 import fault_pb2
from envoy.type.v3 import percent_pb2

from shopmesh.localmesh.translate import TranslationError
from shopmesh.localmesh.translate.durations import parse_duration

#: Istio's gRPC status names and codes (pkg/util/grpc/codes.go), the same as gRPC's.
GRPC_STATUS_CODES = {code.name: int(code.value[0]) for code in grpc.StatusCode}
DELAY_FIELDS = frozenset({"fixedDelay", "percentage", "percent"})
ABORT_FIELDS = frozenset({"httpStatus", "grpcStatus", "percentage"})


def _percentage(value: Any, where: str) -> percent_pb2.FractionalPercent:
    """route.go translatePercentToFractionalPercent: `{value: 12.5}` → 125000 per million."""
    number = (value or {}).get("value", 0) if isinstance(value, Mapping) else value
    if isinstance(number, bool) or not isinstance(number, int | float) or not 0 <= number <= 100:
        raise TranslationError(f"{where}.percentage: {value!r} is not a percentage between 0 and 100")
    return percent_pb2.FractionalPercent(
        numerator=int(number * 10000), denominator=percent_pb2.FractionalPercent.MILLION
    )


def _delay(delay: Mapping[str, Any], where: str) -> common_fault_pb2.FaultDelay:
    unknown = set(delay) - DELAY_FIELDS
    if unknown:
        raise TranslationError(f"{where}: {sorted(unknown)} not supported (Istio has no exponentialDelay)")
    fixed = parse_duration(delay.get("fixedDelay"), f"{where}.fixedDelay")
    if fixed is None:
        raise TranslationError(f"{where}: a delay needs fixedDelay")
    out = common_fault_pb2.FaultDelay(fixed_delay=fixed)
    if "percentage" in delay:
        out.percentage.CopyFrom(_percentage(delay["percentage"], where))
    else:  # route.go translateIntegerToFractionalPercent(in.Delay.Percent): 0 when unset
        percent = delay.get("percent", 0)
        if isinstance(percent, bool) or not isinstance(percent, int) or not 0 <= percent <= 100:
            raise TranslationError(f"{where}.percent: {percent!r} is not a whole percentage")
        hundred = percent_pb2.FractionalPercent.HUNDRED
        out.percentage.CopyFrom(percent_pb2.FractionalPercent(numerator=percent, denominator=hundred))
    return out


def _abort(abort: Mapping[str, Any], where: str) -> fault_pb2.FaultAbort:
    unknown = set(abort) - ABORT_FIELDS
    if unknown:
        raise TranslationError(f"{where}: {sorted(unknown)} not supported (Istio refuses http2Error)")
    out = fault_pb2.FaultAbort()
    if "grpcStatus" in abort:
        status = abort["grpcStatus"]
        if status not in GRPC_STATUS_CODES:
            raise TranslationError(
                f"{where}.grpcStatus: {status!r} is not a gRPC status name (for example 'UNAVAILABLE')"
            )
        out.grpc_status = GRPC_STATUS_CODES[status]
    elif "httpStatus" in abort:
        status = abort["httpStatus"]
        if isinstance(status, bool) or not isinstance(status, int) or not 200 <= status <= 600:
            raise TranslationError(f"{where}.httpStatus: {status!r} is not in range 200-599")
        out.http_status = status
    else:
        raise TranslationError(f"{where}: an abort needs grpcStatus or httpStatus")
    if "percentage" in abort:
        out.percentage.CopyFrom(_percentage(abort["percentage"], where))
    return out


def http_fault(fault: Any, where: str) -> fault_pb2.HTTPFault:
    """One route's `fault`, as the fault filter's per-route config."""
    where = f"{where} fault"
    if not isinstance(fault, Mapping) or not (fault.get("delay") or fault.get("abort")):
        raise TranslationError(f"{where}: HTTP fault injection must have an abort and/or a delay")
    unknown = set(fault) - {"delay", "abort"}
    if unknown:
        raise TranslationError(f"{where}: unknown fields {sorted(unknown)}")
    out = fault_pb2.HTTPFault()
    if fault.get("delay"):
        out.delay.CopyFrom(_delay(fault["delay"], f"{where}.delay"))
    if fault.get("abort"):
        out.abort.CopyFrom(_abort(fault["abort"], f"{where}.abort"))
    return out
