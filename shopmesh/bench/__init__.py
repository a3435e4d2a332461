"""`scripts/bench`: what one machine does with the stack, set against grpc.aio's own ceiling.

    python -m shopmesh.bench [--orders 1500] [--calls 3000] [--concurrency 16 4] [--postgres]
                             [--mesh] [--max-seconds 120] [--product ID] [--state DIR] [--json]

One run, one machine, in this order (each phase after unmeasured warm-up calls):

1. the ceiling: a bare grpc.aio unary echo on the services' event loop (shopmesh.launch.echo),
   `--calls` calls at the first `--concurrency`: calls/s and the server's CPU per call;
2. `scripts/up --plain` itself (shopmesh.localrun) on fresh databases (cold: they are migrated)
   and again on the same files (warm): seconds until it says it is up;
3. the plain stack (shopmesh.launch.stack: order, inventory and payment as processes on free
   loopback ports, each on its own SQLite file): each service's idle memory, the read path
   (`--calls` GetProduct; GetOrder of the orders made) and CreateOrder (`--orders` at each
   `--concurrency`; one unit of `--product`, tok_visa, a fresh request_id each);
4. `--postgres`: the same stack and phases on a PostgreSQL of its own (shopmesh.launch.postgres,
   fsync on);
5. `--mesh`: the local mesh's proxies (shopmesh.localmesh.proxybench: CPU per relayed call and
   the latency each hop adds, at each concurrency) and CreateOrder through the canary mesh's
   ingress (at the first concurrency).

CPU per call is each process's utime + stime (/proc/<pid>/stat) over the measured calls: robust
to other work on the machine, unlike rates and latencies, which move with it (the load average
is reported at start and end). The load generator is this process, on the same cores. Every
process the bench starts is stopped at the end, on Ctrl-C and SIGTERM too.
"""

from shopmesh.bench.measure import cpu_seconds, machine, proc_status, top_up_stock

__all__ = ["cpu_seconds", "machine", "proc_status", "top_up_stock"]
