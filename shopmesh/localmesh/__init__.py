"""The local mesh: istio/ and k8s/ enforced for real on one machine, with proxyless gRPC xDS.

What istiod, Envoy and the cluster do for a pod, split the same way here:

- `ca`: a certificate authority issuing short-lived SPIFFE certificates, one per pod
  (istiod's CA + each pod's istio-agent and its rotation), recording which pod holds which;
- `translate`: the rendered Kubernetes/Istio objects → xDS resources, rule by rule as istiod's
  proxyless generator (pilot/pkg/networking/grpcgen) and its authz builder do it;
- `controlplane`: an ADS (state-of-the-world v3) server that serves them and pushes edits live;
- `sidecar`: one per workload instance, an xDS-enabled gRPC server on the instance's own
  loopback address (its "pod IP"), terminating mTLS and RBAC in front of the unchanged service;
- `ingress`: the ingress gateway, plaintext in, mTLS into the mesh;
- `istiostats`, `peers`: Istio's standard metrics, recorded by both proxies and served at
  `/stats/prometheus`, each call's peer found by its certificate or proxy id;
- `supervisor`: starts and stops all of it (`scripts/up`, `shopmesh mesh up`), with `settings`
  (what runs where), `pods` (what each pod's service is given), `monitoring` (the Prometheus
  that scrapes it) and `report` (what the user reads).

Every process is a shopmesh.launch ManagedProcess; each pod's service is started as the launcher
starts any service.
"""
