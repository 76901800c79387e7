"""Every headline figure of the product in one run, each beside its reference measured in the same run.

    .venv/bin/python bench/run_all.py [--only NAME ...] [--pairs 3] [--budget 570] [--pg-url URL] [--redis-url URL]

Runs each benchmark of bench/ as a subprocess with a timeout (streaming its output), reads the
`RESULT {json}` line it ends with, and prints one table: figure, value, reference, target, pass/fail,
with the date and the machine. A benchmark that fails, times out or prints no RESULT line shows its
error in the table; the others still run. The Celery ceiling and the end-to-end run take turns
`--pairs` times and figure (1) is the ratio of their medians. Each benchmark starts its own PostgreSQL
cluster and redis-server (tests/harness) and removes them after, unless --pg-url / --redis-url name
servers to use (passed on to every benchmark); the machine's own services are never touched.

Exit status: 0 when every benchmark produced its figures (targets missed or not), 1 otherwise.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
Result = dict[str, Any]


@dataclass
class Bench:
    name: str
    script: str
    timeout: float
    args: list[str] = field(default_factory=list)


# The ceiling and the end-to-end run sit next to each other so both meet the machine in the same state,
# and both run 1,500 chains (the ceiling's default): a run of 300 users is over in ~15 s, so the workers'
# start (connections, TLS, tokens) and the last users' wait for a reconciler tick weighed a tenth of it.
BENCHES = [
    Bench("ceiling", "celery_ceiling.py", 120),
    Bench("e2e", "provision_throughput.py", 300, ["--users", "1500", "--tenants", "5"]),
    Bench("throttling", "ms_client_throttling.py", 90),
    Bench("api", "api_accept.py", 180),
    Bench("sync", "sync_full.py", 150),
    Bench("mailbox", "mailbox_wait.py", 330),
]
PAIRED = ("ceiling", "e2e")


@dataclass
class Outcome:
    result: Result | None = None
    error: str | None = None
    seconds: float = 0.0


@dataclass
class Row:
    figure: str
    value: str
    reference: str
    target: str
    ok: bool | None  # None: no verdict (the benchmark failed)


def run(bench: Bench, timeout: float, services: list[str]) -> Outcome:
    """Run one benchmark, stream its output indented, return its RESULT (or why there is none)."""
    cmd = [sys.executable, str(ROOT / "bench" / bench.script), *bench.args, *services]
    print(f"\n=== {bench.name}: {' '.join(Path(c).name if i < 2 else c for i, c in enumerate(cmd))} "
          f"(timeout {timeout:.0f} s)", flush=True)
    started = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
                            start_new_session=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    lines: list[str] = []

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))
            print(f"  | {line}", end="", flush=True)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    timed_out = False
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        _stop(proc)
    reader.join(timeout=10)
    seconds = time.monotonic() - started
    result = next((json.loads(line[len("RESULT "):]) for line in reversed(lines) if line.startswith("RESULT ")),
                  None)
    if timed_out:
        return Outcome(result, f"timed out after {timeout:.0f} s", seconds)
    if result is None:
        tail = " / ".join(line.strip() for line in lines[-3:] if line.strip())
        return Outcome(None, f"exit {proc.returncode}, no RESULT line: {tail[-300:]}", seconds)
    return Outcome(result, None, seconds)


def _stop(proc: subprocess.Popen[str]) -> None:
    """SIGINT first (the benchmark's finally blocks stop its workers and drop its database), then SIGKILL."""
    for sig, grace in ((signal.SIGINT, 30), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            continue


# -- the table ---------------------------------------------------------------------------------------------------
def _rounds(res: dict[str, Outcome], name: str) -> list[Outcome]:
    return [o for n, o in res.items() if n == name or n.startswith(f"{name}#")]


# Issue 19: on the public-API path (a Celery task per step, Core and ORM statements) figure (1) stays
# >= 0.3 x the raw ceiling; the bypasses that once made 0.4 are gone.
E2E_TARGET = 0.3


def _rows_e2e(res: dict[str, Outcome]) -> list[Row]:
    e2es, ceilings = _rounds(res, "e2e"), _rounds(res, "ceiling")
    if not e2es or not ceilings or not all(o.result for o in (*e2es, *ceilings)):
        why = "; ".join(f"{'e2e' if o in e2es else 'ceiling'}: {o.error}" for o in (*e2es, *ceilings) if o.error)
        return [Row("(1) users provisioned/s end to end", "ERROR", why or "not run", f">= {E2E_TARGET} x ceiling",
                    None)]
    es = [o.result for o in e2es if o.result]
    cs = [o.result for o in ceilings if o.result]
    users = statistics.median(e["users_per_s"] for e in es)
    chains = statistics.median(c["chains_per_s"] for c in cs)
    ratio = users / chains if chains else 0.0
    ok = ratio >= E2E_TARGET and all(e["succeeded"] == e["users"] for e in es)
    c, e = cs[0], es[0]
    each = ", ".join(f"{a['users_per_s'] / b['chains_per_s']:.2f}" for a, b in zip(es, cs, strict=False)
                     if b["chains_per_s"])
    return [Row("(1) users provisioned/s end to end",
                f"{users:.1f} users/s ({e['succeeded']}/{e['users']} users a run, median of {len(es)}) "
                f"= {ratio:.2f} x ceiling (each pair: {each})",
                f"Celery ceiling {chains:.0f} chains/s of {c.get('links', 6)} no-op tasks, median of {len(cs)} "
                f"({c['workers']} x -P {c['pool']} -c {c['concurrency']} both)",
                f">= {E2E_TARGET} x ceiling", ok)]


def _rows_throttling(o: Outcome) -> list[Row]:
    r = o.result
    if not r:
        return [Row("(2) Microsoft call rate under throttling", "ERROR", o.error or "", ">= 0.9, 0 violations", None)]
    return [Row("(2) Microsoft call rate under throttling",
                f"{r['achieved_rate']:.1f} calls/s = {r['share']:.2f} of allowed, "
                f"{r['retry_after_violations']} violations, {r['throttled']} x 429",
                f"emulator allows {r['allowed_rate']:.0f} calls/s per tenant",
                ">= 0.9 of allowed, 0 violations", r["share"] >= 0.9 and r["retry_after_violations"] == 0)]


def _rows_mailbox(o: Outcome) -> list[Row]:
    r = o.result
    if not r:
        return [Row("(3) mailbox wait, 1,000 users", "ERROR", o.error or "", "< 120 s, all done", None)]
    return [Row("(3) mailbox wait, 1,000 users",
                f"{r['wall_s']:.0f} s to all aliases ({r['succeeded']}/{r['users']} succeeded)",
                "mailboxes take 20 s (a tenant's first 60 s); 4 slots",
                f"< {r['target_s']:.0f} s, all done", r["wall_s"] < r["target_s"] and r["succeeded"] == r["users"])]


def _rows_api(o: Outcome) -> list[Row]:
    r = o.result
    if not r:
        return [Row("(4) API accept rate and p99", "ERROR", o.error or "", ">= 400/s; p99 <= 50 ms", None)]
    return [
        Row("(4) API accepts/s (50 clients)", f"{r['rate_50']:.0f} requests/s (p99 {r['p99_50_ms']:.0f} ms)",
            f"CPU-bound ceiling {r['cpu_ceiling_rate']:.0f}/s (CPU per request)", ">= 400/s",
            r["rate_50"] >= 400),
        Row("(4) API p99 (8 clients)", f"{r['p99_8_ms']:.0f} ms at {r['rate_8']:.0f} requests/s", "-",
            "<= 50 ms", r["p99_8_ms"] <= 50),
        Row("(4) API bulk call, 1,000 users", f"{r['bulk_1000_s']:.2f} s (status {r['bulk_status']})", "-",
            "<= 2 s", r["bulk_1000_s"] <= 2 and r["bulk_status"] == 202),
    ]


def _rows_sync(o: Outcome) -> list[Row]:
    r = o.result
    if not r:
        return [Row("(5) sync time and peak memory", "ERROR", o.error or "", "<= 15 s, <= 300 MB", None)]
    ok = r["full_state"] == "succeeded"
    return [
        Row(f"(5) full sync, {r['users']:,} users", f"{r['full_s']:.1f} s ({r['full_state']})", "-", "<= 15 s",
            ok and r["full_s"] <= 15),
        Row("(5) full sync peak memory", f"+{r['rss_growth_mb']:.0f} MB RSS growth",
            f"process peak {r['process_peak_mb']:.0f} MB", "<= 300 MB", ok and r["rss_growth_mb"] <= 300),
        Row("(5) delta sync, 100 changes", f"{r['delta_s']:.2f} s ({r['delta_state']})", "-", "<= 1 s",
            r["delta_state"] == "succeeded" and r["delta_s"] <= 1),
    ]


def rows(res: dict[str, Outcome]) -> list[Row]:
    builders: list[tuple[str, Callable[[Outcome], list[Row]]]] = [
        ("throttling", _rows_throttling), ("mailbox", _rows_mailbox), ("api", _rows_api), ("sync", _rows_sync)]
    out = _rows_e2e(res) if any(_rounds(res, name) for name in PAIRED) else []
    for name, build in builders:
        if name in res:
            out += build(res[name])
    return out


def machine() -> str:
    model = "unknown CPU"
    with contextlib.suppress(OSError, StopIteration):
        model = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                     if line.startswith("model name"))
    nproc = subprocess.run(["nproc"], capture_output=True, text=True, check=False).stdout.strip() or os.cpu_count()
    mem = ""
    try:
        kib = int(next(line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines()
                       if line.startswith("MemTotal")))
        mem = f", {kib / 2**20:.0f} GiB RAM"
    except (OSError, StopIteration, ValueError):
        pass
    return f"nproc {nproc}, {model}{mem}, {platform.system()} {platform.release()}, Python {platform.python_version()}"


def revision() -> str:
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                          check=False).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True,
                           check=False).stdout.strip()
    return (head or "unknown") + (" (uncommitted changes)" if dirty else "")


def table(items: list[Row]) -> str:
    header = ("figure", "value", "reference (same run)", "target", "result")
    cells = [header] + [(r.figure, r.value, r.reference, r.target,
                         "ERROR" if r.ok is None else "pass" if r.ok else "FAIL") for r in items]
    widths = [max(len(c[i]) for c in cells) for i in range(len(header))]
    line = "+-" + "-+-".join("-" * w for w in widths) + "-+"
    out = [line, "| " + " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + " |", line]
    out += ["| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |" for row in cells[1:]]
    return "\n".join([*out, line])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--only", nargs="*", choices=[b.name for b in BENCHES], help="run only these")
    parser.add_argument("--pairs", type=int, default=3, help="runs of the ceiling and the end-to-end benchmark, "
                        "taking turns; figure (1) takes the median of each (default 3)")
    parser.add_argument("--budget", type=float, default=570.0, help="seconds for the whole run (each benchmark "
                        "gets at most what is left)")
    parser.add_argument("--pg-url", help="a PostgreSQL superuser URL for every benchmark, instead of a private "
                        "cluster each (e.g. postgresql+psycopg://postgres@127.0.0.1:5432/postgres)")
    parser.add_argument("--redis-url", help="a Redis server for every benchmark, instead of a private one each "
                        "(e.g. redis://127.0.0.1:6379; each flushes the dbs it uses)")
    args = parser.parse_args()
    services = [*(["--pg-url", args.pg_url] if args.pg_url else []),
                *(["--redis-url", args.redis_url] if args.redis_url else [])]
    started_at = datetime.now(UTC)
    started = time.monotonic()
    outcomes: dict[str, Outcome] = {}
    plan = [bench for bench in BENCHES if not args.only or bench.name in args.only]
    # Figure (1) is a ratio of two runs on a machine whose speed wanders (on this VM the ceiling alone
    # moved between 163 and 210 chains/s within the hour): the ceiling and the end-to-end run take
    # turns, `--pairs` times, and the figure is the median of each.
    paired = [b for b in plan if b.name in PAIRED]
    runs = [(f"{b.name}#{i + 1}" if args.pairs > 1 else b.name, b) for i in range(args.pairs) for b in paired]
    runs += [(b.name, b) for b in plan if b.name not in PAIRED]
    for name, bench in runs:
        left = args.budget - (time.monotonic() - started)
        if left < 20:
            outcomes[name] = Outcome(None, "skipped: the run's time budget is spent")
            continue
        outcomes[name] = run(bench, min(bench.timeout, left), services)
        o = outcomes[name]
        print(f"=== {name}: {'ok' if o.error is None else o.error} ({o.seconds:.0f} s)", flush=True)
    total = time.monotonic() - started
    items = rows(outcomes)
    print(f"\nm365-provisioner benchmarks, {started_at:%Y-%m-%d %H:%M} UTC, revision {revision()}")
    print(f"machine: {machine()}")
    print(table(items))
    print("benchmark time: " + ", ".join(f"{n} {o.seconds:.0f} s" for n, o in outcomes.items())
          + f"; total {total:.0f} s")
    for name, o in outcomes.items():
        if o.error:
            print(f"error in {name}: {o.error}")
    print("RESULT " + json.dumps({"date": started_at.isoformat(timespec="seconds"), "machine": machine(),
                                  "total_s": round(total, 1),
                                  "figures": [r.__dict__ for r in items],
                                  "benchmarks": {n: {"result": o.result, "error": o.error,
                                                     "seconds": round(o.seconds, 1)} for n, o in outcomes.items()}}))
    return 0 if all(o.error is None for o in outcomes.values()) else 1


if __name__ == "__main__":
    # SIGTERM (kill, pkill) as Ctrl-C: the finally blocks stop the workers and servers this started.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    raise SystemExit(main())
