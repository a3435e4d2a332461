"""Istio's string matching, as Envoy matchers (pilot/pkg/security/authz/matcher)."""

from __future__ import annotations

from envoy.type.matcher.v3 import regex_pb2, string_pb2


def istio_string(value: str, *, prefix: str = "") -> string_pb2.StringMatcher:
    """Istio's authorization string rule: exact, `prefix*`, `*suffix`, or `*` (any, present).

    `prefix` is prepended to exact and prefix forms only, as istiod does for principals
    (`spiffe://` + `cluster.local/ns/shop/sa/order`); a suffix match is left as written.
    """
    if value == "*":
        return string_pb2.StringMatcher(safe_regex=regex_pb2.RegexMatcher(regex=".+"))
    if value.startswith("*"):
        return string_pb2.StringMatcher(suffix=value[1:])
    if value.endswith("*"):
        return string_pb2.StringMatcher(prefix=prefix + value[:-1])
    return string_pb2.StringMatcher(exact=prefix + value)


def virtual_service_string(match: dict[str, str], what: str) -> string_pb2.StringMatcher:
    """A VirtualService StringMatch (`exact`, `prefix` or `regex`, RE2) as an Envoy matcher."""
    if "exact" in match:
        return string_pb2.StringMatcher(exact=str(match["exact"]))
    if "prefix" in match:
        return string_pb2.StringMatcher(prefix=str(match["prefix"]))
    if "regex" in match:
        return string_pb2.StringMatcher(safe_regex=regex_pb2.RegexMatcher(regex=str(match["regex"])))
    raise ValueError(f"{what}: a StringMatch needs exact, prefix or regex, got {sorted(match)}")
