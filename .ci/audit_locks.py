"""pip-audit of both hashed locks (runtime and dev/test): fails on a known vulnerability, skips with a warning
when the advisory source cannot be reached (CI must not fail offline). Run by .ci/run; `python .ci/audit_locks.py`."""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOCKS = (ROOT / "requirements" / "runtime.txt", ROOT / "requirements" / "lock.txt")
# What pip-audit prints when the vulnerability service is unreachable (its ConnectionError and the
# requests/urllib3 errors beneath it); anything else that stops it is a real failure.
UNREACHABLE = ("Tip: your network may be blocking this service", "ConnectionError", "Max retries exceeded",
               "NameResolutionError", "Temporary failure in name resolution", "timed out", "Network is unreachable",
               "Failed to establish a new connection", "ConnectTimeout", "ReadTimeout", "ProxyError", "SSLError")

Runner = Callable[[Sequence[str]], "subprocess.CompletedProcess[str]"]

OK, VULNERABLE, SKIPPED, BROKEN = "ok", "vulnerable", "skipped", "broken"


def _run(argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=600, check=False)


def audit(lock: Path, run: Runner = _run) -> tuple[str, str]:
    """(outcome, detail) for one lock: ok, vulnerable (the findings), skipped (unreachable) or broken."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "audit.json"
        # Hashed locks: no resolution and no pip (nothing installed), exactly the pinned files are audited.
        proc = run([sys.executable, "-m", "pip_audit", "-r", str(lock), "--require-hashes", "--disable-pip",
                    "--progress-spinner", "off", "--timeout", "15", "-f", "json", "-o", str(report)])
        findings = _findings(report)
        audited, unaudited = _coverage(report)
    if findings:
        return VULNERABLE, "\n".join(findings)
    if proc.returncode == 0 and unaudited and not audited:
        # A mirror or proxy that knows none of the packages: nothing was checked, which is not a pass.
        return SKIPPED, f"the advisory source knew none of the {unaudited} packages"
    if proc.returncode == 0:
        return OK, "no known vulnerabilities" + (f" ({unaudited} packages not audited)" if unaudited else "")
    if any(marker in proc.stderr for marker in UNREACHABLE):
        return SKIPPED, "the advisory source is unreachable"
    return BROKEN, proc.stderr.strip()[-2000:]


def _findings(report: Path) -> list[str]:
    if not report.exists():
        return []
    doc = json.loads(report.read_text() or "{}")
    found = []
    for dep in doc.get("dependencies", []):
        for v in dep.get("vulns") or []:
            fixes = ", ".join(v.get("fix_versions") or []) or "none"
            found.append(f"{dep['name']} {dep.get('version', '?')}: {v['id']} (fix: {fixes})")
    return found


def _coverage(report: Path) -> tuple[int, int]:
    """(packages audited, packages pip-audit skipped, e.g. not found at the advisory source)."""
    if not report.exists():
        return 0, 0
    deps = json.loads(report.read_text() or "{}").get("dependencies", [])
    skipped = sum(1 for d in deps if d.get("skip_reason"))
    return len(deps) - skipped, skipped


def main(run: Runner = _run) -> int:
    status = 0
    for lock in LOCKS:
        outcome, detail = audit(lock, run)
        name = lock.relative_to(ROOT)
        if outcome == SKIPPED:
            print(f"audit: WARNING: {name} not audited: {detail}", file=sys.stderr)
        elif outcome == OK:
            print(f"audit: {name}: {detail}")
        else:
            print(f"audit: {name}: {outcome}:\n{detail}", file=sys.stderr)
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
