"""AuthorizationPolicies and PeerAuthentication: do they name things that exist, and do they
hold the baseline the design promises (deny-all, STRICT mTLS, gRPC methods only over POST)?
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from services.runtime.registry import declarations
from shopmesh.manifests.authz import grpc_paths
from shopmesh.manifests.findings import Inventory, namespace_resource
from shopmesh.manifests.mesh import INGRESS_GATEWAY, ROOT_NAMESPACE
from shopmesh.manifests.model import Resource
from shopmesh.manifests.policy import (
    Action,
    AuthorizationPolicy,
    Pattern,
    PolicyError,
    authorization_policies,
)

#: Namespaces an Istio cluster has besides the rendered ones.
CLUSTER_NAMESPACES = frozenset({ROOT_NAMESPACE, "kube-system", "default"})
#: Identities outside the render that the design names on purpose.
EXTERNAL_PRINCIPALS = frozenset({INGRESS_GATEWAY.principal})
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"})


def _sources(policy: Resource) -> Iterator[Mapping[str, Any]]:
    for rule in policy.spec.get("rules") or []:
        for entry in rule.get("from") or []:
            yield entry.get("source") or {}


def _operations(policy: Resource) -> Iterator[Mapping[str, Any]]:
    for rule in policy.spec.get("rules") or []:
        for entry in rule.get("to") or []:
            yield entry.get("operation") or {}


def policy_validation(inventory: Inventory) -> None:
    """IST0106 for a policy Istio's validation refuses (an unknown condition key, a port that is
    no number, an IP block that is no address...): istiod would reject it, and every check
    that evaluates policies leaves it out."""
    for resource in inventory.of_kind("AuthorizationPolicy"):
        try:
            AuthorizationPolicy.of(resource)
        except PolicyError as error:
            inventory.report("IST0106", resource, str(error))


def _namespace_match(pattern: str, namespace: str) -> bool:
    """authorizationpolicies.go namespaceMatch: `*`, `*suffix`, `prefix*`, else equal ignoring case."""
    parsed = Pattern.of(pattern)
    if parsed.kind == "exact":
        return pattern.lower() == namespace.lower()
    return parsed.matches(namespace)


def source_namespaces(inventory: Inventory) -> None:
    """IST0101 for a source namespace that does not exist
    (authz/authorizationpolicies.go analyzeNamespaceNotFound, with its namespaceMatch)."""
    known = inventory.namespaces | CLUSTER_NAMESPACES
    for policy in inventory.of_kind("AuthorizationPolicy"):
        for source in _sources(policy):
            for namespace in [*(source.get("namespaces") or []), *(source.get("notNamespaces") or [])]:
                if not any(_namespace_match(namespace, n) for n in known):
                    inventory.report("IST0101", policy, f'Referenced namespace not found: "{namespace}"')


def source_principals(inventory: Inventory) -> None:
    """KIA0106 for a principal whose ServiceAccount does not exist (Kiali
    business/checkers/authorization/principals_checker.go, authorizationpolicy.source.principalnotfound).
    Wildcards are not checked, as in Kiali."""
    for policy in inventory.of_kind("AuthorizationPolicy"):
        for source in _sources(policy):
            for principal in [*(source.get("principals") or []), *(source.get("notPrincipals") or [])]:
                if "*" in principal or principal in EXTERNAL_PRINCIPALS:
                    continue
                parts = principal.split("/")
                well_formed = len(parts) == 5 and parts[1] == "ns" and parts[3] == "sa"
                if not well_formed or (parts[2], parts[4]) not in inventory.service_accounts:
                    inventory.report(
                        "KIA0106", policy, f'Service Account not found for this principal: "{principal}"'
                    )


def _served_paths(inventory: Inventory, policy: AuthorizationPolicy) -> set[str]:
    """The gRPC paths the workloads this policy applies to serve."""
    apps = {w.app for w in inventory.workloads if policy.applies_to(w.namespace, w.labels)}
    return {path for app in apps if app in declarations() for path in grpc_paths(app)}


def operation_paths_and_methods(inventory: Inventory) -> None:
    """SHM0101 for a path that names no method the selected workloads serve (proto/ is the
    truth: a typo or a stale method would otherwise deny silently); SHM0102 for a gRPC
    operation not restricted to POST (gRPC is always POST); KIA0102 for a method value that is
    neither an HTTP method nor a gRPC name (Kiali authorizationpolicy.to.wrongmethod)."""
    for parsed in authorization_policies(inventory, skip_invalid=True):
        policy = parsed.resource
        served = _served_paths(inventory, parsed)
        for operation in _operations(policy):
            paths = [*(operation.get("paths") or []), *(operation.get("notPaths") or [])]
            for path in paths:
                if served and not any(Pattern.of(path).matches(real) for real in served):
                    inventory.report(
                        "SHM0101", policy, f'Path "{path}" names no gRPC method of the selected workloads'
                    )
            methods = operation.get("methods") or []
            for method in methods:
                if method not in HTTP_METHODS and "/" not in method:
                    inventory.report(
                        "KIA0102",
                        policy,
                        f'Only HTTP methods and fully-qualified gRPC names are allowed: "{method}"',
                    )
            if paths and methods != ["POST"]:
                inventory.report(
                    "SHM0102",
                    policy,
                    f"gRPC paths {paths} must be allowed with methods [POST] only, not {methods}",
                )


def _namespaces_with_workloads(inventory: Inventory) -> set[str]:
    return {w.namespace for w in inventory.workloads}


def deny_all_baseline(inventory: Inventory) -> None:
    """SHM0103 for a namespace without the allow-nothing baseline (an ALLOW policy with
    `spec: {}`), the one thing that makes a forgotten workload closed rather than open."""
    baselines = [
        p
        for p in authorization_policies(inventory, skip_invalid=True)
        if p.action is Action.ALLOW and not p.rules and not p.selector and not p.target_refs and not p.dry_run
    ]
    for namespace in _namespaces_with_workloads(inventory):
        if not any(p.namespace in (namespace, ROOT_NAMESPACE) for p in baselines):
            inventory.report(
                "SHM0103",
                namespace_resource(namespace),
                f"namespace {namespace} has no deny-all AuthorizationPolicy (spec: {{}})",
            )


def strict_mtls(inventory: Inventory) -> None:
    """SHM0104 for a namespace whose workloads accept plaintext: no namespace-wide (or
    mesh-wide) PeerAuthentication in STRICT mode."""
    for namespace in _namespaces_with_workloads(inventory):
        strict = [
            p
            for p in inventory.of_kind("PeerAuthentication")
            if p.namespace in (namespace, ROOT_NAMESPACE)
            and not p.spec.get("selector")
            and (p.spec.get("mtls") or {}).get("mode") == "STRICT"
        ]
        if not strict:
            inventory.report(
                "SHM0104",
                namespace_resource(namespace),
                f"namespace {namespace} has no STRICT PeerAuthentication",
            )


ANALYZERS = (
    policy_validation,
    source_namespaces,
    source_principals,
    operation_paths_and_methods,
    deny_all_baseline,
    strict_mtls,
)
