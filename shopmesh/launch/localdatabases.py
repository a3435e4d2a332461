"""The databases of a local run, and where other commands find them.

A run (`scripts/up`, `scripts/up --plain`) opens its databases before its services start and
closes them after they stop:

    databases = LocalDatabases(Path("var/mesh/db"), PostgresMode(), log_file=...)  # or None: SQLite
    urls = databases.open(["order", "inventory", "payment"])   # {service: SHOPMESH_DATABASE_URL}
    ...
    databases.close()

SQLite (the default): a file `<directory>/<service>.db` per service. PostgreSQL (`--postgres`):
one local server in `<directory>/postgresql` with a database per service
(shopmesh.launch.localpostgres).

Either way the run writes `<directory>/databases.json`, readable by its user alone (it holds the
passwords): which engine, each service's URL, the run's process and, for PostgreSQL, the server's
address. `shopmesh check` reads the URLs from it, `shopmesh mesh stop-db` the server's address.
It stays after the run: the databases are still there (a stopped server included, which the
next run starts again), and the record says so.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from shopmesh.launch.localpostgres import LocalPostgres, ServerAddress
from shopmesh.launch.service import sqlite_url

RECORD = "databases.json"
SQLITE, POSTGRESQL = "sqlite", "postgresql"


@dataclass(frozen=True)
class PostgresMode:
    """`scripts/up --postgres`: the server's directory (default `<databases directory>/postgresql`;
    the `postgres` OS user must be able to reach it) and its durability (localpostgres says why
    `scripts/up` keeps fsync on)."""

    directory: Path | None = None
    durable: bool = True


@dataclass(frozen=True)
class Owner:
    """The process that runs the databases. Its start time tells it from a later process that
    got the same pid."""

    pid: int
    started: int  # clock ticks after boot: /proc/<pid>/stat's 22nd field

    @classmethod
    def of(cls, pid: int) -> Owner | None:
        """The process `pid` as it runs now; None if none does."""
        started = _start_time(pid)
        return None if started is None else cls(pid, started)

    @classmethod
    def this_process(cls) -> Owner:
        return cls(os.getpid(), _start_time(os.getpid()) or 0)

    def alive(self) -> bool:
        return _start_time(self.pid) == self.started


def _start_time(pid: int) -> int | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return None if fields[0] == "Z" else int(fields[19])


@dataclass(frozen=True)
class DatabasesRecord:
    engine: str  # SQLITE or POSTGRESQL
    urls: dict[str, str]
    owner: Owner
    server: ServerAddress | None = None  # PostgreSQL's

    def write(self, directory: Path) -> None:
        path = directory / RECORD
        content = {
            "engine": self.engine,
            "urls": self.urls,
            "owner": {"pid": self.owner.pid, "started": self.owner.started},
            "server": None
            if self.server is None
            else {"socket_directory": str(self.server.socket_directory), "port": self.server.port},
        }
        temporary = path.with_suffix(".tmp")
        temporary.unlink(missing_ok=True)
        # Created private, then moved into place: the passwords are never readable by others.
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as output:
            json.dump(content, output, indent=2)
        temporary.replace(path)

    @classmethod
    def read(cls, directory: Path) -> DatabasesRecord | None:
        """The record of the last run on `directory`, or None if none was written (a run from
        before records, or none yet). ValueError if it cannot be understood."""
        try:
            content = json.loads((directory / RECORD).read_text())
        except FileNotFoundError:
            return None
        except (OSError, json.JSONDecodeError) as error:
            raise ValueError(f"{directory / RECORD} is unreadable: {error}") from None
        try:
            server = content["server"]
            return cls(
                engine=str(content["engine"]),
                urls={str(name): str(url) for name, url in content["urls"].items()},
                owner=Owner(int(content["owner"]["pid"]), int(content["owner"]["started"])),
                server=None
                if server is None
                else ServerAddress(Path(server["socket_directory"]), int(server["port"])),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise ValueError(f"{directory / RECORD} is not a databases record ({error!r})") from None

    @property
    def running(self) -> bool:
        """Whether the run that wrote it still runs (and so its PostgreSQL, if it has one)."""
        return self.owner.alive()


class LocalDatabases:
    def __init__(self, directory: Path, postgresql: PostgresMode | None, *, log_file: Path) -> None:
        self.directory = directory
        self.mode = postgresql
        self.server: LocalPostgres | None = None
        if postgresql is not None:
            self.server = LocalPostgres(
                postgresql.directory or directory / "postgresql",
                durable=postgresql.durable,
                log_file=log_file,
            )
        self.urls: dict[str, str] = {}

    @property
    def engine(self) -> str:
        return SQLITE if self.server is None else POSTGRESQL

    def open(self, services: Sequence[str]) -> dict[str, str]:
        """Each service's database URL, its server started if it has one; records them.
        RuntimeError if another run still runs on the same databases."""
        self.directory.mkdir(parents=True, exist_ok=True)
        try:
            previous = DatabasesRecord.read(self.directory)
        except ValueError:
            previous = None  # damaged: this run's record replaces it
        if previous is not None and previous.running and previous.owner.pid != os.getpid():
            raise RuntimeError(
                f"{self.directory} is in use by another run (pid {previous.owner.pid}): stop it, "
                "or give this one a --state of its own"
            )
        if self.server is None:
            self.urls = {service: sqlite_url(self.directory / f"{service}.db") for service in services}
        else:
            self.urls = self.server.start(services)
        DatabasesRecord(
            self.engine,
            self.urls,
            Owner.this_process(),
            None if self.server is None else self.server.address,
        ).write(self.directory)
        return dict(self.urls)

    @property
    def service_settings(self) -> Mapping[str, str]:
        """SHOPMESH_* settings every service needs on these databases: on PostgreSQL its
        migrations at start (SQLite's default), as the cluster runs `shopmesh migrate` in an init
        container before the service."""
        return {} if self.server is None else {"SHOPMESH_MIGRATE_ON_START": "true"}

    def close(self) -> None:
        """Stops the server, if any (after the services: nothing is left using it)."""
        if self.server is not None:
            self.server.stop()

    def describe(self) -> str:
        """Where the databases are, in one line (the run's report)."""
        names = ", ".join(self.urls)
        if self.server is None:
            return f"SQLite files {self.directory}/<service>.db ({names})"
        address = self.server.address
        port = f"127.0.0.1:{address.port}" if address is not None else "(stopped)"
        return (
            f"PostgreSQL {port}, data in {self.server.data}: a database and a role per service "
            f"({names}); URLs in {self.directory / RECORD}"
        )


class NoRunningDatabases(RuntimeError):
    """What `shopmesh mesh stop-db` / `start-db` cannot act on, said in one line."""


def running_postgres(directory: Path) -> tuple[DatabasesRecord, ServerAddress]:
    """The record and server of a run on PostgreSQL that still runs on `directory`;
    NoRunningDatabases naming what is there instead."""
    try:
        record = DatabasesRecord.read(directory)
    except ValueError as error:
        raise NoRunningDatabases(str(error)) from None
    if record is None or not record.running:
        raise NoRunningDatabases(
            f"no mesh is running (no run of scripts/up on {directory}; start one: scripts/up --postgres)"
        )
    if record.engine != POSTGRESQL or record.server is None:
        raise NoRunningDatabases(
            f"the run on {directory} (pid {record.owner.pid}) uses {record.engine}, not PostgreSQL: "
            "restart it with scripts/up --postgres"
        )
    return record, record.server
