"""The bench's report: the targets of issue 9 against what a run measured, and its text form."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Figure = Callable[[dict[str, Any], float], float]  # (a backend's results, echo calls/s) -> value


def _created(run: dict[str, Any], concurrency: int) -> dict[str, Any]:
    created: dict[str, Any] = run["CreateOrder"][f"c{concurrency}"]
    return created


#: The targets measured on each backend: figure, "<=" or ">=", the bound, how to read it.
STACK_TARGETS: list[tuple[str, str, float, Figure]] = [
    (
        "CPU per order, three services, c16 (ms)",
        "<=",
        9,
        lambda r, e: _created(r, 16)["server_cpu_ms"]["total"],
    ),
    ("orders/s, c16", ">=", 150, lambda r, e: _created(r, 16)["per_second"]),
    ("orders/s / echo calls/s, c16", ">=", 0.045, lambda r, e: _created(r, 16)["per_second"] / e),
    ("CreateOrder p99, c16 (ms)", "<=", 150, lambda r, e: _created(r, 16)["latency_ms"]["p99"]),
    ("CreateOrder p99, c4 (ms)", "<=", 40, lambda r, e: _created(r, 4)["latency_ms"]["p99"]),
    (
        "GetProduct server CPU per call (ms)",
        "<=",
        0.8,
        lambda r, e: r["GetProduct"]["server_cpu_ms"]["total"],
    ),
    ("GetProduct calls/s / echo calls/s", ">=", 0.5, lambda r, e: r["GetProduct"]["per_second"] / e),
    ("GetOrder calls/s / echo calls/s", ">=", 0.5, lambda r, e: r["GetOrder"]["per_second"] / e),
    ("idle RSS, largest service (MiB)", "<=", 60, lambda r, e: max(r["idle_rss_mib"].values())),
]


def _met(value: float, relation: str, bound: float) -> bool:
    return value <= bound if relation == "<=" else value >= bound


def targets(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target figure, what this run measured (SQLite; PostgreSQL beside it), and whether it
    is met. Rows whose figure was not measured (another concurrency, no --mesh) are left out."""
    echo = report["echo"]["per_second"]
    rows: list[dict[str, Any]] = []
    for figure, relation, bound, read in STACK_TARGETS:
        measured = {}
        for backend in ("sqlite", "postgresql"):
            try:
                measured[backend] = round(read(report[backend], echo), 3)
            except (KeyError, TypeError, ZeroDivisionError):
                continue
        if "sqlite" in measured:
            met = _met(measured["sqlite"], relation, bound)
            rows.append({"figure": figure, "target": f"{relation} {bound}", **measured, "met": met})

    def row(figure: str, relation: str, bound: float, value: float, *, resolved: bool = True) -> None:
        rows.append(
            {
                "figure": figure,
                "target": f"{relation} {bound}",
                "sqlite": value,
                "met": _met(value, relation, bound) if resolved else None,
            }
        )

    up = report["up_plain_seconds"]
    row("scripts/up --plain ready, warm (s)", "<=", 1.2, up["warm"])
    row("scripts/up --plain ready, cold (s)", "<=", 1.2, up["cold"])
    mesh = report.get("mesh")
    if mesh is not None:
        row("orders/s through the mesh", ">=", 100, mesh["orders"]["orders_per_second"])
        for proxies in mesh["proxies"]:
            c = proxies["concurrency"]
            for proxy in ("sidecar", "ingress"):
                row(f"{proxy} CPU per relayed call, c{c} (ms)", "<=", 0.5, proxies[f"{proxy}_cpu_ms"])
                if c == 4:
                    # A hop is the difference of two runs' percentiles: below zero, the machine's
                    # noise was larger than the hop, and the run says nothing about the target.
                    hop = proxies[f"{proxy}_hop_ms"]["p90"]
                    row(f"{proxy} hop p90, c4 (ms)", "<=", 1, hop, resolved=hop >= 0)
    return rows


def render(report: dict[str, Any]) -> str:
    facts, echo = report["machine"], report["echo"]
    lines = [
        f"shopmesh bench, {report['date']}: {facts['nproc']} CPUs ({facts['cpu_model']}), "
        f"{facts['memory_gib']} GiB, Python {facts['python']}; "
        f"load average {facts['load_average_at_start']} at start, "
        f"{facts['load_average_at_end']} at end",
        f"ceiling, a bare grpc.aio echo at c{echo['concurrency']}: {echo['per_second']} calls/s "
        f"(the faster of {echo['per_second_each_run']} at start and end), "
        f"server CPU {echo['server_cpu_ms']['total']} ms/call, {_latency(echo)}",
        f"scripts/up --plain ready: warm {report['up_plain_seconds']['warm']} s, "
        f"cold {report['up_plain_seconds']['cold']} s (fresh databases, migrated first)",
    ]
    for backend, title in (("sqlite", "SQLite"), ("postgresql", "PostgreSQL (fsync on)")):
        run = report.get(backend)
        if run is None:
            continue
        idle = ", ".join(f"{name} {mib}" for name, mib in run["idle_rss_mib"].items())
        lines += [
            "",
            f"{title}: stack serving {run['stack_start_seconds']} s after its start; idle RSS MiB: {idle}",
        ]
        for method in ("GetProduct", "GetOrder"):
            if method in run:
                calls = run[method]
                ratio = calls["per_second"] / echo["per_second"]
                lines.append(
                    f"  {method:<11} c{calls['concurrency']:<3} {calls['per_second']:>7} calls/s "
                    f"({ratio:.3f} x echo), server CPU {calls['server_cpu_ms']['total']} ms/call"
                    f"{_database(calls)}, {_latency(calls)}{_errors(calls)}"
                )
        for name, created in run["CreateOrder"].items():
            cpu = ", ".join(
                f"{service} {ms}" for service, ms in created["server_cpu_ms"].items() if service != "total"
            )
            lines.append(
                f"  CreateOrder {name:<4} {created['per_second']:>7} orders/s "
                f"({created['per_second'] / echo['per_second']:.4f} x echo), "
                f"CPU {created['server_cpu_ms']['total']} ms/order ({cpu}){_database(created)}, "
                f"{_latency(created)}, {created['outcomes']}{_errors(created)}"
            )
        after = ", ".join(
            f"{name} {usage['rss_mib']} (peak {usage['peak_rss_mib']})"
            for name, usage in run["rss_after_mib"].items()
        )
        lines.append(f"  RSS after the load, MiB: {after}")
    mesh = report.get("mesh")
    if mesh is not None:
        lines += [
            "",
            "local mesh: CPU per relayed call (ms) and what each hop adds to the latency (p50/p90 ms)",
        ]
        for row in mesh["proxies"]:
            side, edge = row["sidecar_hop_ms"], row["ingress_hop_ms"]
            lines.append(
                f"  c{row['concurrency']:<3} floor {row['server_plus_client_cpu_ms']}  "
                f"sidecar {row['sidecar_cpu_ms']} (+{side['p50']}/{side['p90']})  "
                f"ingress {row['ingress_cpu_ms']} (+{edge['p50']}/{edge['p90']})"
            )
        orders = mesh["orders"]
        lines.append(
            f"  CreateOrder through the ingress, c{orders['concurrency']}: "
            f"{orders['orders_per_second']} orders/s, latency {orders['latency_ms']} ms, "
            f"{orders['outcomes']}; CPU per order: proxies {orders['proxies_cpu_ms_per_order']} ms, "
            f"apps {orders['apps_cpu_ms_per_order']} ms"
        )
    lines += ["", f"{'target':<44} {'goal':>9} {'SQLite':>9} {'PostgreSQL':>11}  met"]
    for row in report["targets"]:
        lines.append(
            f"{row['figure']:<44} {row['target']:>9} {row['sqlite']:>9} {row.get('postgresql', ''):>11}  "
            f"{_verdict(row['met'])}"
        )
    lines.append(f"rerun: {report['command']}")
    return "\n".join(lines)


def _latency(calls: dict[str, Any]) -> str:
    latency = calls["latency_ms"]
    return f"p50 {latency['p50']} p90 {latency['p90']} p99 {latency['p99']} max {latency['max']} ms"


def _database(calls: dict[str, Any]) -> str:
    database = calls.get("database_cpu_ms")
    return "" if database is None else f" + PostgreSQL's {database} ms"


def _errors(calls: dict[str, Any]) -> str:
    return f", errors {calls['errors']}" if calls["errors"] else ""


def _verdict(met: bool | None) -> str:
    return "noise" if met is None else "yes" if met else "NO"
