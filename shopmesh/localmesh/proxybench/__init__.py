"""What a relayed call costs the mesh's proxies: CPU per call, and the latency each hop adds.

    python -m shopmesh.localmesh.proxybench [--calls 3000] [--concurrency 1 4 16] [--size 64]
                                            [--rate CALLS_PER_SECOND] [--profile DIR]
                                            [--telemetry on|off|compare] [--rounds 3]
                                            [--state DIR] [--json]

Starts, on loopback and under a temporary directory, a real control plane, the cheapest app
there is (a grpc.aio echo of raw bytes: peers.py), its sidecar and the ingress gateway — the
very modules the local mesh runs — with STRICT mTLS and an AuthorizationPolicy in force
(rig.py). Then, at each concurrency, the same unary calls go three ways, each from a load
process of its own (peers.py), and each run is measured (measure.py):

    direct   client ─plaintext→ echo
    sidecar  client (xDS, mTLS as a mesh identity) → sidecar → echo
    ingress  client ─plaintext→ ingress ─(xDS, mTLS)→ sidecar → echo

CPU per call is each process's utime + stime (/proc/<pid>/stat) over the measured calls,
divided by their number: the sidecar's in the `sidecar` run, the ingress's in the `ingress`
run. The latency a hop adds is the difference of the percentiles: sidecar minus direct for the
sidecar, ingress minus sidecar for the ingress. Everything shares the machine's cores, the load
processes included: CPU times are the robust figures, latencies move with whatever else runs.
A relay does at least what one gRPC server and one gRPC client do per call: the echo's and the
direct load's CPU per call in the same run give that floor. Per-call CPU also grows as calls
get sparser (every call then wakes sleeping threads): `--rate` paces the calls.
`--profile DIR` records each proxy with py-spy and `perf stat` (when installed) during its run.
The proxies record and serve Istio's metrics as in the mesh (`--telemetry on`); `--telemetry
compare` runs a rig with and one without them side by side and alternates between them, to
give what the metrics cost each proxy per call (telemetry.py). Every report ends with that cost
measured in-process (recording a call, rendering a scrape), which no other work disturbs.
"""
