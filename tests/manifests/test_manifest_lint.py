"""`shopmesh lint`: the repository passes; each broken manifest of the corpus (one mistake
each) yields exactly its expected code."""

from __future__ import annotations

import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from shopmesh.cli import main
from shopmesh.manifests.linter import applied, lint_inventory
from shopmesh.manifests.messages import CATALOG
from shopmesh.manifests.render import Stack

CORPUS = Path(__file__).parent / "corpus"
CASES = sorted(p.name for p in CORPUS.iterdir() if (p / "kustomization.yaml").is_file())


@pytest.mark.slow  # kubectl kustomize
def test_repository_passes_lint(repository: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["lint", str(repository)]) == 0
    captured = capsys.readouterr()
    assert captured.out == "", "the repository should have no finding at all"
    for stack in ("default", "canary", "flagger", "monitoring"):
        assert f"stack {stack} " in captured.err


@pytest.fixture(scope="session")
def corpus_renders() -> dict[str, list[dict[str, Any]]]:
    """Every case rendered once, a few kustomize processes at a time (they mostly wait)."""
    with ThreadPoolExecutor(max_workers=4) as pool:
        renders = pool.map(lambda case: Stack(case, (CORPUS / case,)).render(), CASES)
        return dict(zip(CASES, renders, strict=True))


@pytest.mark.parametrize("case", CASES)
def test_corpus_case_yields_its_code(case: str, corpus_renders: dict[str, list[dict[str, Any]]]) -> None:
    expected = case.split("-", 1)[0]
    assert expected in CATALOG, f"corpus case {case} names an unknown code"
    findings = lint_inventory(applied(corpus_renders[case]))
    assert findings, f"{case}: no finding"
    assert {finding.code for finding in findings} == {expected}, "\n".join(map(str, findings))
    # A case whose look-alikes must stay silent lists its exact findings: what is reported
    # and, by omission, what is not.
    exact = CORPUS / case / "findings.txt"
    if exact.is_file():
        lines = [line for line in exact.read_text(encoding="utf-8").splitlines() if line and line[0] != "#"]
        assert [str(finding) for finding in findings] == lines


@pytest.mark.slow  # kubectl kustomize
def test_lint_line_format_and_exit_status(capsys: pytest.CaptureFixture[str]) -> None:
    case = CORPUS / "IST0101-virtualservice-unknown-host"
    assert main(["lint", "--stack", str(case)]) == 1
    [line] = capsys.readouterr().out.splitlines()
    assert (
        line == "IST0101 error VirtualService/shop/payment: "
        'Referenced host not found: "paymnt.shop.svc.cluster.local"'
    )


@pytest.mark.slow  # kubectl kustomize
def test_info_findings_do_not_fail(capsys: pytest.CaptureFixture[str]) -> None:
    # IST0102 is Info upstream: reported, but not an error.
    assert main(["lint", "--stack", str(CORPUS / "IST0102-namespace-not-injected")]) == 0
    assert capsys.readouterr().out.startswith("IST0102 info Namespace//shop: ")


def test_unrenderable_directory_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["lint", str(tmp_path)]) == 2
    assert "neither k8s/kustomization.yaml nor istio/kustomization.yaml" in capsys.readouterr().err


def test_every_code_of_the_catalog_is_exercised_or_listed_as_not() -> None:
    exercised = {case.split("-", 1)[0] for case in CASES}
    # Codes without a corpus case (test_manifest_analyzers.py runs their analyzers alone):
    # each one's mistake necessarily trips another code too
    # (IST0113 disabling mTLS also breaks our ISTIO_MUTUAL rule; KIA0102 a bad method also
    # breaks POST-only; KIA1301 needs a workload outside any policy, which the deny-all
    # baseline prevents).
    not_exercised = {"IST0113", "KIA0102", "KIA1301"}
    assert set(CATALOG) == exercised | not_exercised


@pytest.mark.slow  # kubectl kustomize
def test_lint_reads_the_given_project_and_names_the_stack_of_a_finding(
    repository: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A copy of the project whose canary overlay alone routes to a subset that does not exist:
    # lint must read this copy (not the installed package's) and say which stack breaks.
    for part in ("k8s", "istio"):
        shutil.copytree(repository / part, tmp_path / part)
    routes = tmp_path / "istio" / "overlays" / "canary" / "order-routes.yaml"
    routes.write_text(
        routes.read_text(encoding="utf-8").replace("subset: v2", "subset: v3"), encoding="utf-8"
    )
    assert main(["lint", str(tmp_path)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines
    assert all(line.startswith("IST0101 error VirtualService/shop/") for line in lines)
    assert all(line.endswith("(stack canary)") for line in lines)
