"""The record a local run leaves of its databases, and what `shopmesh check` and `shopmesh mesh
stop-db`/`start-db` make of it, without starting anything (tests/localmesh/test_postgres_mode.py
runs the real thing)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from shopmesh.check.reading import DatabaseUrls, Unreadable
from shopmesh.cli import main
from shopmesh.launch.localdatabases import DatabasesRecord, LocalDatabases, Owner
from shopmesh.launch.localpostgres import ServerAddress

SERVICES = ("order", "inventory", "payment")


def postgres_record(owner: Owner, port: int = 5999) -> DatabasesRecord:
    server = ServerAddress(Path("/nonexistent/socket"), port)
    return DatabasesRecord("postgresql", {s: server.url(s, "secret") for s in SERVICES}, owner, server)


def a_finished_process() -> Owner:
    """An owner that no longer runs: this process, started at another moment."""
    me = Owner.this_process()
    return Owner(me.pid, me.started + 1)


def test_an_sqlite_run_records_its_files_privately(tmp_path: Path) -> None:
    databases = LocalDatabases(tmp_path, None, log_file=tmp_path / "unused.log")
    urls = databases.open(list(SERVICES))
    assert urls == {s: f"sqlite+aiosqlite:///{tmp_path / f'{s}.db'}" for s in SERVICES}
    assert databases.service_settings == {}
    record = DatabasesRecord.read(tmp_path)
    assert record is not None
    assert record.engine == "sqlite"
    assert record.urls == urls
    assert record.running  # this process
    assert (tmp_path / "databases.json").stat().st_mode & 0o777 == 0o600


def test_a_record_round_trips_and_a_reused_pid_is_not_the_run(tmp_path: Path) -> None:
    postgres_record(Owner.this_process()).write(tmp_path)
    record = DatabasesRecord.read(tmp_path)
    assert record == postgres_record(Owner.this_process())
    assert record is not None
    assert record.running
    assert not a_finished_process().alive()
    assert not Owner(2**22 + 1, 0).alive()  # above pid_max's default: no such process


def test_two_runs_never_share_databases(tmp_path: Path) -> None:
    another_run = Owner.of(os.getppid())  # a process that runs, not this one
    assert another_run is not None
    postgres_record(another_run).write(tmp_path)
    with pytest.raises(RuntimeError, match=f"is in use by another run \\(pid {os.getppid()}\\)"):
        LocalDatabases(tmp_path, None, log_file=tmp_path / "unused.log").open(list(SERVICES))


def test_a_damaged_record_is_said_to_be_so(tmp_path: Path) -> None:
    (tmp_path / "databases.json").write_text('{"engine": "sqlite"}')
    with pytest.raises(ValueError, match="is not a databases record"):
        DatabasesRecord.read(tmp_path)
    with pytest.raises(Unreadable, match="is not a databases record"):
        DatabaseUrls.of_run(tmp_path)


def test_check_reads_the_runs_databases_and_says_when_its_postgresql_has_stopped(tmp_path: Path) -> None:
    assert DatabaseUrls.of_run(tmp_path) == DatabaseUrls.sqlite_files(tmp_path)  # no record: files
    postgres_record(Owner.this_process()).write(tmp_path)
    assert DatabaseUrls.of_run(tmp_path).inventory.endswith("@127.0.0.1:5999/inventory")
    postgres_record(a_finished_process()).write(tmp_path)
    with pytest.raises(Unreadable, match="which has stopped: start it again"):
        DatabaseUrls.of_run(tmp_path)


def stop_db(
    capsys: pytest.CaptureFixture[str], directory: Path, service: str = "inventory"
) -> tuple[int, str]:
    status = main(["mesh", "stop-db", service, "--databases", str(directory)])
    captured = capsys.readouterr()
    assert captured.out == ""
    return status, captured.err.strip()


def test_stop_db_without_a_running_mesh(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, error = stop_db(capsys, tmp_path)
    assert status == 1
    assert error.startswith("shopmesh mesh stop-db: no mesh is running")
    postgres_record(a_finished_process()).write(tmp_path)  # the last run ended
    assert stop_db(capsys, tmp_path) == (status, error)


def test_stop_db_on_an_sqlite_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    LocalDatabases(tmp_path, None, log_file=tmp_path / "unused.log").open(list(SERVICES))
    status, error = stop_db(capsys, tmp_path)
    assert status == 1
    assert error == (
        f"shopmesh mesh stop-db: the run on {tmp_path} (pid {os.getpid()}) uses sqlite, not "
        "PostgreSQL: restart it with scripts/up --postgres"
    )


def test_start_db_of_an_unknown_service(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    postgres_record(Owner.this_process()).write(tmp_path)
    assert main(["mesh", "start-db", "shipping", "--databases", str(tmp_path)]) == 1
    assert capsys.readouterr().err.strip() == (
        "shopmesh mesh start-db: unknown service 'shipping': "
        "the run's databases are order, inventory, payment"
    )
