"""Fixtures for the contract tests: the tools the dev extra installs beside the interpreter."""

from __future__ import annotations

import shutil
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def buf() -> str:
    """The buf CLI from the `buf-bin` wheel (fully offline)."""
    found = shutil.which("buf", path=sysconfig.get_path("scripts"))
    assert found, "buf not installed beside this interpreter: install the dev extra"
    return found
