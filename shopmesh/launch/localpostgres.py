"""The local run's PostgreSQL (`scripts/up --postgres`): one server, a database and a role per
service, as the cluster has them (k8s/base/postgres/10-shopmesh-databases.sh), and outages of
one service's database on demand (`shopmesh mesh stop-db`).

    server = LocalPostgres(Path("var/mesh/db/postgresql"), durable=True, log_file=...)
    urls = server.start(["order", "inventory", "payment"])   # {service: its asyncpg URL}
    ...
    server.stop()

The cluster lives in `directory` and is kept from one run to the next, like the SQLite files:
`initdb` runs once, each start ensures every service's role and database (a service declared
since gets its own), gives each role a fresh password (the URLs hold it; they are written only
to the run's private record, shopmesh.launch.localdatabases) and lifts any outage a previous run
left. The server is a child of the run, as its services are (shopmesh.launch.processes): it stops
with the run, even a killed one.

Durability: `durable` (what `scripts/up --postgres` runs) keeps PostgreSQL's defaults, fsync and
full-page writes on. The data outlives runs and OS crashes, and with fsync off an OS crash can
corrupt the whole cluster, not just lose the last commits. What that costs a laptop run is
commit latency. Tests turn it off (shopmesh.launch.postgres says why).

An outage (`set_available(service, False)`) is PostgreSQL refusing that service's role:
`ALTER DATABASE … CONNECTION LIMIT 0`, then every session on that database ended
(`pg_terminate_backend`). The service sees what it sees when a server runs out of connection
slots: `too many connections` (SQLSTATE 53300) on every connect, `terminating connection due to
administrator command` (57P01) on the sessions it had; both mean "not reachable now", which it
answers UNAVAILABLE and reports NOT_SERVING. Superusers are exempt from the limit, so an
operator can still look inside. `ALLOW_CONNECTIONS false` would refuse with 55000 (object not in
prerequisite state), a class that otherwise means a bug in the caller; the limit keeps the
outage's errors in the class real outages produce. The other services' databases are untouched.
"""

from __future__ import annotations

import re
import secrets
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from shopmesh.launch.ports import free_port
from shopmesh.launch.postgres import (
    BIN,
    initdb,
    psql,
    require_installed,
    run_as_server_user,
    server_directory,
    server_options,
    server_user,
)
from shopmesh.launch.processes import ManagedProcess

#: A service's name is its role's and its database's (double-quoted: names may hold '-').
_SERVICE = re.compile(r"[a-z][a-z0-9-]{0,62}")
START_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 30.0
#: Sessions are ended until none is left: one may have passed the connection check just
#: before the limit took effect and not be listed yet.
_TERMINATION_ROUNDS = 20
_TERMINATION_PAUSE_SECONDS = 0.05


def _identifier(service: str) -> str:
    if not _SERVICE.fullmatch(service):
        raise ValueError(f"{service!r} is not a service name (lower case, digits, '-')")
    return f'"{service}"'


def _literal(service: str) -> str:
    _identifier(service)  # validated: no quote can be in it
    return f"'{service}'"


@dataclass(frozen=True)
class ServerAddress:
    """Where a running local PostgreSQL answers: its Unix socket's directory (superuser access,
    for the `postgres` OS user and root only) and its TCP port on 127.0.0.1 (the services')."""

    socket_directory: Path
    port: int

    def url(self, service: str, password: str) -> str:
        return f"postgresql+asyncpg://{service}:{password}@127.0.0.1:{self.port}/{service}"

    def sql(self, statements: str, database: str = "postgres") -> str:
        """`statements` as the superuser (shopmesh.launch.postgres.psql)."""
        return psql(self.socket_directory, self.port, statements, database=database)

    def set_available(self, service: str, available: bool) -> int:
        """Opens or closes `service`'s database to its role (see the module's docstring); when
        closing, the number of its sessions that were ended."""
        name = _identifier(service)
        if available:
            self.sql(f"ALTER DATABASE {name} CONNECTION LIMIT -1;")
            return 0
        self.sql(f"ALTER DATABASE {name} CONNECTION LIMIT 0;")
        ended = 0
        for round_ in range(_TERMINATION_ROUNDS):
            ended += int(
                self.sql(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    f"WHERE datname = {_literal(service)} AND pid <> pg_backend_pid();"
                )
                or 0
            )
            left = int(
                self.sql(f"SELECT count(*) FROM pg_stat_activity WHERE datname = {_literal(service)};") or 0
            )
            if left == 0 and round_ >= 1:
                break
            time.sleep(_TERMINATION_PAUSE_SECONDS)
        return ended

    def available(self, service: str) -> bool:
        """False while `shopmesh mesh stop-db` holds the database closed."""
        limit = self.sql(f"SELECT datconnlimit FROM pg_database WHERE datname = {_literal(service)};")
        if not limit:
            raise LookupError(f"no database {service} on this server")
        return int(limit) != 0


class LocalPostgres:
    def __init__(self, directory: Path, *, durable: bool, log_file: Path) -> None:
        self.directory = directory
        self.data = directory / "data"
        self.durable = durable
        self.log_file = log_file
        self.process: ManagedProcess | None = None
        self.address: ServerAddress | None = None

    def start(self, services: Sequence[str], timeout: float = START_TIMEOUT_SECONDS) -> dict[str, str]:
        """Starts the server (making its cluster on first use) and readies a role and a database
        per service; each service's URL. PostgresMissing if no server is installed."""
        require_installed()
        for service in services:
            _identifier(service)
        try:
            return self._start(services, timeout)
        except subprocess.CalledProcessError as error:  # initdb or psql: say which, and why
            self.stop()
            reason = " ".join((error.stderr or "").split("--- server log ---")[0].split())
            raise RuntimeError(
                f"PostgreSQL in {self.directory}: {Path(error.cmd[4]).name} failed: {reason}"
            ) from None
        except BaseException:
            self.stop()
            raise

    def _start(self, services: Sequence[str], timeout: float) -> dict[str, str]:
        server_directory(self.directory)
        try:
            run_as_server_user("test", "-w", self.directory, cwd=Path("/"))
        except subprocess.CalledProcessError:
            raise RuntimeError(
                f"the {server_user()} OS user, which runs PostgreSQL, cannot reach {self.directory} "
                "(a directory above it is private to its owner): give the server a directory it can reach"
            ) from None
        self._check_version()
        if not (self.data / "PG_VERSION").exists():
            initdb(self.data, cwd=self.directory, sync=self.durable)
        address = ServerAddress(self.directory, free_port())
        # If the run dies, the parent-death signal (SIGTERM) is PostgreSQL's smart shutdown: it
        # ends once the run's services, which die with it too, have disconnected.
        self.process = ManagedProcess(
            "postgresql",
            [
                str(BIN / "postgres"),
                "-D",
                str(self.data),
                *server_options(self.directory, address.port, durable=self.durable),
            ],
            {"LC_ALL": "C", "PATH": "/usr/bin:/bin"},
            self.log_file,
            self.directory,
            user=server_user(),
        ).start()
        self._wait_ready(timeout)
        self.address = address
        return self._ready_databases(address, services)

    def stop(self) -> None:
        """A fast shutdown (sessions ended, a checkpoint written); SIGKILL if it lingers."""
        if self.process is not None:
            self.process.signal(signal.SIGINT)
            self.process.stop(STOP_TIMEOUT_SECONDS)
            self.process = None
        self.address = None

    def _check_version(self) -> None:
        made_by = self.data / "PG_VERSION"
        installed = BIN.parent.name
        if made_by.exists() and made_by.read_text().strip() != installed:
            raise RuntimeError(
                f"{self.directory} holds a PostgreSQL {made_by.read_text().strip()} cluster, but "
                f"{installed} is installed: remove the directory (its data goes with it) or install "
                f"PostgreSQL {made_by.read_text().strip()}"
            )

    def _wait_ready(self, timeout: float) -> None:
        """Until the server accepts connections: its postmaster.pid says "ready" (PostgreSQL
        writes it there once recovery is over and connections are let in)."""
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.process.running():
                raise RuntimeError(f"PostgreSQL exited ({self.process.returncode()}):\n{self.process.logs()}")
            try:
                lines = (self.data / "postmaster.pid").read_text().splitlines()
            except OSError:
                lines = []
            if len(lines) >= 8 and lines[7].strip() == "ready" and lines[0].strip() == str(self.process.pid):
                return
            time.sleep(0.05)
        raise RuntimeError(f"PostgreSQL did not get ready within {timeout:g}s:\n{self.process.logs()}")

    def _ready_databases(self, address: ServerAddress, services: Sequence[str]) -> dict[str, str]:
        """Every service's role (with a fresh password) and database, as the cluster's init
        script makes them: owned by the role, closed to PUBLIC, and open (no outage left)."""
        existing = set(address.sql("SELECT datname FROM pg_database;").split())
        roles = set(address.sql("SELECT rolname FROM pg_roles;").split())
        passwords = {service: secrets.token_hex(16) for service in services}
        statements = []
        for service in services:
            name = _identifier(service)
            if service not in roles:
                statements.append(f"CREATE ROLE {name} LOGIN;")
            statements.append(f"ALTER ROLE {name} WITH LOGIN PASSWORD '{passwords[service]}';")
            if service not in existing:
                statements.append(f"CREATE DATABASE {name} OWNER {name};")
            statements.append(f"REVOKE ALL ON DATABASE {name} FROM PUBLIC;")
            statements.append(f"ALTER DATABASE {name} CONNECTION LIMIT -1;")
        address.sql("\n".join(statements))
        return {service: address.url(service, passwords[service]) for service in services}
