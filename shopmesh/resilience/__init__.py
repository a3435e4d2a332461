"""Benchmarks of resilience, each with a report: the soak (`scripts/soak`: steady load through
the local mesh's ingress, every process's memory and open files sampled) and the fuzz
(`scripts/fuzz`: malformed requests, metadata and HTTP/2 frames at the ingress and at each
service). `mesh` is where they start a local mesh of their own, `load` the steady orders,
`sampling` the per-process samples and the growth verdict.
"""
