"""A real PostgreSQL of our own (the newest version Debian's packages installed): its own cluster
in a temporary directory, on a free loopback port. The tests' `postgres` fixtures and
`scripts/bench --postgres` start it this way; the functions below are shared with the local
run's server (shopmesh.launch.localpostgres).

initdb and pg_ctl refuse to run as root, so as root they run as the `postgres` OS user, in a
directory made by tempfile and handed to that user (a test's tmp_path is not readable by it);
any other user runs them as itself. fsync is off: the data only has to outlive the session that
started it (not an OS crash), and it starts in well under a second. synchronous_commit stays on:
`stop("immediate")` is a crash of the server, and a commit it has acknowledged must survive that
like in production.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import secrets
import shutil
import subprocess
import tempfile
from pathlib import Path

from shopmesh.launch.ports import free_port

OS_USER = "postgres"
_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")


def _newest_installation() -> Path:
    """Debian's newest PostgreSQL server (`/usr/lib/postgresql/<major>/bin`); 15's path if none."""
    installed = [path.parent for path in Path("/usr/lib/postgresql").glob("*/bin/postgres")]
    numbered = [path for path in installed if path.parent.name.isdigit()]
    return max(numbered, key=lambda path: int(path.parent.name), default=Path("/usr/lib/postgresql/15/bin"))


BIN = _newest_installation()


class PostgresMissing(RuntimeError):
    """No PostgreSQL server is installed; the message says what to do, in one line."""


def require_installed() -> None:
    if not (BIN / "postgres").exists():
        raise PostgresMissing(
            "PostgreSQL is not installed (no /usr/lib/postgresql/<version>/bin/postgres): "
            "apt-get install postgresql"
        )


def server_user() -> str | None:
    """Whom the server runs as: the `postgres` OS user when this is root (initdb and pg_ctl
    refuse root), else None: this user, who owns the cluster then."""
    return OS_USER if os.geteuid() == 0 else None


def run_as_server_user(
    *command: object, cwd: Path, log: Path | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Runs a PostgreSQL program as the server's user (server_user); CalledProcessError with its
    output and the server log's tail (`log`) if it fails."""
    user = server_user()
    result = subprocess.run(
        [*(("runuser", "-u", user, "--") if user else ()), *map(str, command)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        env={**os.environ, "LC_ALL": "C"},
        input=stdin,
        check=False,
    )
    if result.returncode != 0:
        tail = log.read_text(errors="replace")[-3000:] if log is not None and log.exists() else ""
        raise subprocess.CalledProcessError(
            result.returncode, result.args, result.stdout, f"{result.stderr}\n--- server log ---\n{tail}"
        )
    return result


def server_directory(directory: Path) -> None:
    """Makes `directory` (its cluster, socket and log) the server user's, private to it."""
    directory.mkdir(parents=True, exist_ok=True)
    user = server_user()
    if user is not None:
        shutil.chown(directory, user, user)
    directory.chmod(0o700)


def initdb(data: Path, *, cwd: Path, sync: bool) -> None:
    """A new cluster in `data`: local (socket) connections trusted, TCP ones by password, as
    the cluster's services connect. `sync` False skips flushing it to disk (a test's)."""
    run_as_server_user(
        BIN / "initdb",
        "-D", data, "-U", OS_USER, "-E", "UTF8", "--locale=C",
        "--auth-local=trust", "--auth-host=scram-sha-256", *(() if sync else ("--no-sync",)),
        cwd=cwd,
    )  # fmt: skip


def server_options(socket_directory: Path, port: int, *, durable: bool) -> list[str]:
    """The server's settings: TCP on loopback only, its socket in `socket_directory`, enough
    connections for every pool of a mesh; without `durable`, no fsync (see the module)."""
    options = [
        "-k", str(socket_directory), "-p", str(port),
        "-c", "listen_addresses=127.0.0.1", "-c", "max_connections=200",
    ]  # fmt: skip
    if not durable:
        options += ["-c", "fsync=off", "-c", "full_page_writes=off"]
    return options


def psql(socket_directory: Path, port: int, statements: str, *, database: str = "postgres") -> str:
    """Runs `statements` as the superuser (`postgres`, as initdb names it) over the Unix socket,
    each in its own transaction (so CREATE DATABASE may be among them), stopping at the first
    error; their output, tuples only."""
    result = run_as_server_user(
        BIN / "psql", "-h", socket_directory, "-p", str(port), "-U", OS_USER, "-d", database,
        "-v", "ON_ERROR_STOP=1", "-X", "-A", "-t", "-q", "-f", "-",
        cwd=socket_directory, stdin=statements,
    )  # fmt: skip
    return result.stdout.strip()


def unique_name(prefix: str) -> str:
    """A database/role name no one else uses, e.g. "payment_1a2b3c4d"."""
    return f"{prefix}_{secrets.token_hex(4)}"


class PostgresServer:
    """`create_database(name)` gives each user (a test, a benchmark run) its own database and
    role; `stop()`/`start()` take the server down and back up on the same data and port
    (database outage tests)."""

    def __init__(self, *, durable: bool = False) -> None:
        """`durable`: fsync and full-page writes on, as in production (a benchmark's numbers);
        off by default, for tests (see the module's docstring)."""
        self.durable = durable
        self.directory = Path(tempfile.mkdtemp(prefix="shopmesh-pg-"))
        server_directory(self.directory)
        self.data = self.directory / "data"
        self.log = self.directory / "server.log"
        self.port = free_port()
        self.running = False
        self._passwords: dict[str, str] = {}
        atexit.register(self.close)  # also if the session ends without running finalizers
        initdb(self.data, cwd=self.directory, sync=False)

    def start(self) -> None:
        options = " ".join(server_options(self.directory, self.port, durable=self.durable))
        self._run(BIN / "pg_ctl", "-D", self.data, "-l", self.log, "-o", options, "-w", "-t", "30", "start")
        self.running = True

    @property
    def pid(self) -> int | None:
        """The server's (postmaster's) process id while it runs; its backends are its children."""
        try:
            return int((self.data / "postmaster.pid").read_text().split()[0]) if self.running else None
        except (OSError, ValueError, IndexError):
            return None

    def stop(self, mode: str = "fast") -> None:
        """`fast` disconnects clients cleanly; `immediate` is a crash (no shutdown checkpoint)."""
        self._run(BIN / "pg_ctl", "-D", self.data, "-m", mode, "-w", "-t", "30", "stop")
        self.running = False

    def create_database(self, name: str) -> str:
        """A fresh database owned by a fresh role of the same name; its SQLAlchemy asyncpg URL."""
        if not _NAME.fullmatch(name) or name in self._passwords:
            raise ValueError(f"database name {name!r} is not a new lower-case identifier")
        password = secrets.token_hex(12)
        self.sql(f"CREATE ROLE {name} LOGIN PASSWORD '{password}'")
        self.sql(f"CREATE DATABASE {name} OWNER {name}")
        self.sql(f"REVOKE ALL ON DATABASE {name} FROM PUBLIC")
        self._passwords[name] = password
        return self.url(name)

    def url(self, name: str) -> str:
        return f"postgresql+asyncpg://{name}:{self._passwords[name]}@127.0.0.1:{self.port}/{name}"

    def sql(self, statement: str, database: str = "postgres") -> str:
        """Run one statement as the superuser (over the Unix socket); its output, tuples only."""
        return psql(self.directory, self.port, statement, database=database)

    def close(self) -> None:
        """Stop (if running) and delete everything; safe to call twice and after failures."""
        if self.running:
            with contextlib.suppress(subprocess.CalledProcessError):
                self.stop("immediate")
        shutil.rmtree(self.directory, ignore_errors=True)

    def _run(self, *command: object) -> subprocess.CompletedProcess[str]:
        return run_as_server_user(*command, cwd=self.directory, log=self.log)
