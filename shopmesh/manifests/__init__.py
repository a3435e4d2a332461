"""The manifests as data: render k8s/ and istio/ with kustomize, validate every object against
its real schema, analyse the whole like `istioctl analyze` and Kiali would, compute the
authorization matrix and draw the topology.

Modules: `render` (kustomize, stacks), `model` (the rendered objects and their workloads),
`messages` (every finding code and what it means), `schema`, `analyzers/`, `linter`
(all of it for `shopmesh lint`), `authz` (Istio's evaluation of AuthorizationPolicies),
`topology` (the SVG).
"""
