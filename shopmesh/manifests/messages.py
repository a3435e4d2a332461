"""Every code `shopmesh lint` reports, and what it means.

IST codes are Istio's own (istio/istio pkg/config/analysis/msg/messages.yaml) with the same
meaning and level; KIA codes are Kiali's (kiali/kiali models/istio_validation.go); SHM codes are
ours, for what only this project can check (it knows proto/ and its design).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Level(StrEnum):
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


@dataclass(frozen=True)
class Message:
    code: str
    name: str
    level: Level


def _catalog(*messages: Message) -> dict[str, Message]:
    return {message.code: message for message in messages}


E, W, INFO = Level.ERROR, Level.WARNING, Level.INFO

CATALOG: dict[str, Message] = _catalog(
    # Istio (levels as upstream).
    Message("IST0101", "ReferencedResourceNotFound", E),
    Message("IST0102", "NamespaceNotInjected", INFO),
    Message("IST0106", "SchemaValidationError", E),
    Message("IST0110", "ConflictingSidecarWorkloadSelectors", E),
    Message("IST0111", "MultipleSidecarsWithoutWorkloadSelectors", E),
    Message("IST0112", "VirtualServiceDestinationPortSelectorRequired", E),
    Message("IST0113", "MTLSPolicyConflict", E),
    Message("IST0118", "PortNameIsNotUnderNamingConvention", INFO),
    Message("IST0127", "NoMatchingWorkloadsFound", W),
    Message("IST0132", "VirtualServiceHostNotFoundInGateway", W),
    Message("IST0143", "LocalhostListener", E),
    Message("IST0144", "InvalidApplicationUID", W),
    Message("IST0157", "InvalidTelemetryProvider", W),
    Message("IST0160", "MultipleTelemetriesWithoutWorkloadSelectors", E),
    Message("IST0173", "DestinationRuleSubsetNotSelectPods", E),
    Message("IST0174", "UnknownDestinationRuleHost", W),
    # Kiali.
    Message("KIA0102", "Only HTTP methods and fully-qualified gRPC names are allowed", W),
    Message("KIA0106", "Service Account not found for this principal", E),
    Message("KIA1004", "This host has no matching entry in the service registry", W),
    Message("KIA1301", "This workload is not covered by any authorization policy", W),
    # Ours.
    Message("SHM0001", "KubernetesSchemaValidationError", E),
    Message("SHM0101", "AuthorizationPathNotInProto", E),
    Message("SHM0102", "GrpcOperationNotPostOnly", E),
    Message("SHM0103", "NoDenyAllBaseline", E),
    Message("SHM0104", "MtlsNotStrict", E),
    Message("SHM0201", "RetriedNonIdempotentMethod", E),
    Message("SHM0202", "DestinationRuleIncomplete", E),
    Message("SHM0203", "SidecarEgressMissesDependency", E),
    Message("SHM0204", "NetworkPolicyBlocksAllowedCall", E),
    Message("SHM0205", "NetworkPolicyAllowsUndeclaredCall", W),
    Message("SHM0206", "NoDefaultDenyNetworkPolicy", E),
    Message("SHM0207", "IngressRouteExposesDeniedMethod", W),
    Message("SHM0208", "IngressAllowedMethodNotRouted", W),
    Message("SHM0301", "ContainerNotHardened", E),
    Message("SHM0302", "MissingGrpcProbe", E),
    Message("SHM0303", "MissingResources", E),
    Message("SHM0304", "MissingAppVersionLabels", E),
    Message("SHM0305", "GracePeriodShorterThanDrain", E),
    Message("SHM0306", "ServiceAccountNotDedicated", E),
    Message("SHM0307", "GrpcPortWithoutAppProtocol", E),
    Message("SHM0308", "MissingPrometheusAnnotations", W),
    Message("SHM0309", "CommittedSecret", E),
    Message("SHM0400", "CanaryCannotRun", E),
    Message("SHM0401", "CanaryServiceRoutedByHand", E),
    Message("SHM0402", "GrpcCanaryJudgedByHttpStatus", E),
    Message("SHM0403", "CanaryWithoutLoad", W),
)
