""".ci/audit_locks.py: a found vulnerability fails CI; an unreachable advisory source only warns."""
from __future__ import annotations

import importlib.util
import json
import subprocess
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("audit_locks", ROOT / ".ci" / "audit_locks.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


audit_locks = _module()


def _fake(rc: int, report: dict[str, object] | None, stderr: str = "") -> object:
    def run(argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
        assert "--require-hashes" in argv and "--disable-pip" in argv
        if report is not None:
            Path(argv[argv.index("-o") + 1]).write_text(json.dumps(report))
        return subprocess.CompletedProcess(list(argv), rc, "", stderr)
    return run


VULN = {"dependencies": [{"name": "jinja2", "version": "3.0.0",
                          "vulns": [{"id": "GHSA-xxxx", "fix_versions": ["3.1.6"]}]},
                         {"name": "httpx", "version": "0.28.1", "vulns": []}]}
CLEAN = {"dependencies": [{"name": "httpx", "version": "0.28.1", "vulns": []}]}
UNKNOWN = {"dependencies": [{"name": "httpx", "skip_reason": "Dependency not found on PyPI"}]}


@pytest.mark.parametrize(("rc", "report", "stderr", "outcome"), [
    (1, VULN, "Found 1 known vulnerability", "vulnerable"),
    (0, CLEAN, "", "ok"),
    (1, None, "ConnectionError: HTTPSConnectionPool ... Tip: your network may be blocking this service", "skipped"),
    (0, UNKNOWN, "", "skipped"),
    (1, None, "invalid requirements input: foo", "broken"),
])
def test_outcomes(rc: int, report: dict[str, object] | None, stderr: str, outcome: str) -> None:
    got, detail = audit_locks.audit(ROOT / "requirements" / "runtime.txt", _fake(rc, report, stderr))
    assert got == outcome
    if outcome == "vulnerable":
        assert detail == "jinja2 3.0.0: GHSA-xxxx (fix: 3.1.6)"


def test_both_locks_are_audited_and_only_findings_fail(capsys: pytest.CaptureFixture[str]) -> None:
    assert {p.name for p in audit_locks.LOCKS} == {"runtime.txt", "lock.txt"}
    assert audit_locks.main(_fake(1, None, "Max retries exceeded")) == 0
    assert "WARNING" in capsys.readouterr().err
    assert audit_locks.main(_fake(1, VULN)) == 1
