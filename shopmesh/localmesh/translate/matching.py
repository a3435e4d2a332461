"""VirtualService string matches, as Envoy matchers (AuthorizationPolicy strings: rbac.py)."""

from __future__ import annotations

from envoy.type.matcher.v3 import regex_pb2, string_pb2


def virtual_service_string(match: dict[str, str], what: str) -> string_pb2.StringMatcher:
    """A VirtualService StringMatch (`exact`, `prefix` or `regex`, RE2) as an Envoy matcher."""
    if "exact" in match:
        return string_pb2.StringMatcher(exact=str(match["exact"]))
    if "prefix" in match:
        return string_pb2.StringMatcher(prefix=str(match["prefix"]))
    if "regex" in match:
        return string_pb2.StringMatcher(safe_regex=regex_pb2.RegexMatcher(regex=str(match["regex"])))
    raise ValueError(f"{what}: a StringMatch needs exact, prefix or regex, got {sorted(match)}")
