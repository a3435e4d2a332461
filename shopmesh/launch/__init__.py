"""Starting the declared services, the one way the project does it.

- `service`: one service as a process (`ServiceProcess`), its environment derived from its
  declaration (`service_environment`): addresses, database, its dependencies' targets, its seed;
- `stack`: every declared service on loopback, wired together (`Stack`): `scripts/up --plain`,
  `scripts/bench` and the tests' stacks;
- `readiness`: the one readiness wait (`wait_serving`), free ports, TCP checks;
- `processes`: the process primitive (`ManagedProcess`) that cannot outlive its starter;
- `demo`: the grpcurl lines a person can try.

The local mesh (shopmesh.localmesh) starts each pod's service through `ServiceProcess` too.
"""
