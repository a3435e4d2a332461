"""scripts/lib/packages.sh: the scripts install Debian's postgresql and prometheus packages only
when they are missing, and say what to do when they cannot.

The checks run for real. The install path runs against stand-ins for apt-get (and sudo) in a
PATH of their own: uninstalling the real packages from a shared machine to test it is not an
option, and what matters here is what the script does with apt-get's answer."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # runs scripts/lib/packages.sh

ROOT = Path(__file__).resolve().parents[2]
LIBRARY = ROOT / "scripts" / "lib" / "packages.sh"
ENSURE_PROMETHEUS = 'ensure_debian_package prometheus "the local mesh\'s Prometheus" has_prometheus'


def _bash(script: str, path: str | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ) if path is None else {"PATH": path, "HOME": os.environ.get("HOME", "/")}
    return subprocess.run(
        ["/bin/bash", "-c", f'set -euo pipefail; source "{LIBRARY}"; {script}'],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def _stand_ins(directory: Path, apt_get: str) -> str:
    """A PATH holding only a fake apt-get (with `apt_get` as its body), sudo and env."""
    directory.mkdir()
    (directory / "apt-get").write_text(f'#!/bin/bash\necho "apt-get $*" >> "{directory}/calls"\n{apt_get}\n')
    (directory / "sudo").write_text('#!/bin/bash\nexec "$@"\n')
    for name in ("apt-get", "sudo"):
        (directory / name).chmod(0o755)
    (directory / "env").symlink_to("/usr/bin/env")
    return str(directory)


def test_the_checks_find_what_this_machine_has() -> None:
    for check in ("has_prometheus", "has_postgresql_server"):
        assert _bash(check).returncode == 0, check
    assert _bash(ENSURE_PROMETHEUS).stderr == ""  # present: nothing installed, nothing said


def test_a_missing_package_is_installed_and_checked_again(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    installs = (
        '[ "$1" = install ] && for tool in prometheus promtool; do'
        f' printf "#!/bin/sh\\n" > "{bin_dir}/$tool"; /bin/chmod +x "{bin_dir}/$tool"; done; exit 0'
    )
    result = _bash(ENSURE_PROMETHEUS, _stand_ins(bin_dir, installs))
    assert result.returncode == 0, result.stderr
    assert result.stderr == "installing prometheus (the local mesh's Prometheus)\n"
    assert (bin_dir / "calls").read_text().splitlines() == [
        "apt-get update -qq",
        "apt-get install -y -qq prometheus",
    ]


def test_an_uninstallable_package_fails_with_what_to_do(tmp_path: Path) -> None:
    refuses = 'echo "E: Unable to locate package $4" >&2; [ "$1" = install ] && exit 100; exit 0'
    result = _bash(ENSURE_PROMETHEUS, _stand_ins(tmp_path / "bin", refuses))
    assert result.returncode == 1
    assert result.stderr.splitlines()[0] == "installing prometheus (the local mesh's Prometheus)"
    assert "E: Unable to locate package prometheus" in result.stderr
    assert result.stderr.splitlines()[-1] == (
        "cannot install prometheus with apt-get (its error is above); install it, then retry"
    )


def test_installed_but_still_missing_is_an_error(tmp_path: Path) -> None:
    result = _bash(ENSURE_PROMETHEUS, _stand_ins(tmp_path / "bin", "exit 0"))
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1].startswith(
        "apt-get installed prometheus, but it is still not found"
    )


def test_no_apt_get_is_named(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    result = _bash(ENSURE_PROMETHEUS, str(empty))
    assert result.returncode == 1
    assert (
        result.stderr.splitlines()[-1]
        == "cannot install prometheus: no apt-get here; install it with your package manager"
    )
