"""The contracts are linted, formatted and checked for breaking changes with buf."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # runs buf

BASELINE = "proto/breaking-baseline.binpb"


def run_buf(buf: str, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([buf, *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False)


def test_lint_standard_passes(buf: str, root: Path) -> None:
    result = run_buf(buf, root, "lint")
    assert result.returncode == 0, result.stdout + result.stderr


def test_format_is_clean(buf: str, root: Path) -> None:
    result = run_buf(buf, root, "format", "--exit-code", "-d")
    assert result.returncode == 0, "buf format would change:\n" + result.stdout + result.stderr


def test_no_breaking_change_against_baseline(buf: str, root: Path) -> None:
    result = run_buf(buf, root, "breaking", "--against", BASELINE)
    assert result.returncode == 0, result.stdout + result.stderr


def copy_contracts(root: Path, to: Path) -> Path:
    shutil.copytree(root / "proto", to / "proto")
    shutil.copy(root / "buf.yaml", to / "buf.yaml")
    return to


def test_breaking_check_bites_on_a_changed_field_type(buf: str, root: Path, tmp_path: Path) -> None:
    work = copy_contracts(root, tmp_path)
    order_proto = work / "proto/shop/order/v1/order.proto"
    text = order_proto.read_text()
    assert "  int32 quantity = 2;" in text
    order_proto.write_text(text.replace("  int32 quantity = 2;", "  int64 quantity = 2;", 1))

    result = run_buf(buf, work, "breaking", "--against", BASELINE)

    assert result.returncode != 0
    assert 'changed type from "int32" to "int64"' in result.stdout + result.stderr


def test_lint_bites_on_an_unprefixed_enum_value(buf: str, root: Path, tmp_path: Path) -> None:
    work = copy_contracts(root, tmp_path)
    order_proto = work / "proto/shop/order/v1/order.proto"
    order_proto.write_text(order_proto.read_text().replace("ORDER_STATUS_FAILED = 5", "FAILED = 5"))

    result = run_buf(buf, work, "lint")

    assert result.returncode != 0
    assert '"FAILED" should be prefixed with "ORDER_STATUS_"' in result.stdout
