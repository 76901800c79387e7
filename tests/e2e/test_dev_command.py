"""`provisioner dev`: the embedded default comes up on SQLite, answers, and leaves no process behind.

Whatever ends the supervisor (Ctrl-C, Ctrl-C with SIGINT inherited ignored, closing the terminal,
SIGTERM, SIGKILL), every process it started and every process those started must end.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.slow

START_S = 90  # two busy cores, five processes to start and a demo world to seed
GONE_S = 90  # the orderly stop may take the worker's soft-shutdown window; after a SIGKILL, the lifeline's grace
# The supervisor with SIGINT ignored, as a shell's `trap '' INT` or a background job starts it.
IGNORE_SIGINT = ("import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_IGN); "
                 "os.execv(sys.executable, [sys.executable, '-m', 'commands.cli', *sys.argv[1:]])")


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _stat(pid: int) -> tuple[str, int, int] | None:
    """(state, ppid, start time) from /proc/<pid>/stat, or None when there is no such process."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return fields[0], int(fields[1]), int(fields[19])


def descendants(root: int) -> dict[int, int]:
    """Every process below `root` (children, grandchildren, ...): pid -> start time."""
    children: dict[int, list[int]] = {}
    started: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (stat := _stat(int(entry.name))) is not None:
            children.setdefault(stat[1], []).append(int(entry.name))
            started[int(entry.name)] = stat[2]
    found: dict[int, int] = {}
    todo = list(children.get(root, []))
    while todo:
        pid = todo.pop()
        found[pid] = started[pid]
        todo += children.get(pid, [])
    return found


def alive(pids: dict[int, int]) -> list[int]:
    """The recorded processes still running: same pid, same start time, not a zombie."""
    left = []
    for pid, start in pids.items():
        stat = _stat(pid)
        if stat is not None and stat[2] == start and stat[0] != "Z":
            left.append(pid)
    return left


@dataclass
class Dev:
    proc: subprocess.Popen[bytes]
    api: int
    flower: int
    emulator: int
    var: Path
    log: Path
    tree: dict[int, int] = field(default_factory=dict)  # what wait_ready() saw below the supervisor

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture
def start_dev(tmp_path: Path) -> Iterator[Callable[..., Dev]]:
    started: list[Dev] = []

    def start(*, ignore_sigint: bool = False, api_workers: int = 1) -> Dev:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("DATABASE_URL", "BROKER_URL", "REDIS_URL", "SECRET_KEY", "MS_", "ENVIRONMENT"))}
        api, flower, emu = _port(), _port(), _port()
        args = ["dev", "--api-port", str(api), "--flower-port", str(flower), "--emulator-port", str(emu),
                "--api-workers", str(api_workers), "--var", str(tmp_path / "var")]
        cmd = [sys.executable, "-c", IGNORE_SIGINT, *args] if ignore_sigint else [sys.executable, "-m", "commands.cli",
                                                                                   *args]
        log = tmp_path / "dev.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True)
        dev = Dev(proc, api, flower, emu, tmp_path / "var", log)
        started.append(dev)
        return dev

    yield start
    for dev in started:  # a failed test must not leave its stack running either
        if dev.proc.poll() is None:
            os.killpg(dev.proc.pid, signal.SIGKILL)
            dev.proc.wait()
        for pid in alive(dev.tree):
            os.kill(pid, signal.SIGKILL)


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except (FileNotFoundError, ProcessLookupError):
        return ""


def wait_ready(dev: Dev, api_workers: int = 1) -> dict[int, int]:
    """Wait for the ready line and every process below the supervisor; return them (pid -> start time)."""
    deadline = time.monotonic() + START_S
    while time.monotonic() < deadline and dev.proc.poll() is None:
        if "Ctrl-C stops everything." in dev.output():
            dev.tree = descendants(dev.proc.pid)
            commands = [c for c in map(cmdline, dev.tree) if "commands.cli" in c]
            api_processes = [c for c in map(cmdline, dev.tree) if "spawn_main" in c]
            # emulator, API, worker, beat, Flower; with several API workers, one process each below the API
            if len(commands) == 5 and (api_workers == 1 or len(api_processes) == api_workers):
                return dev.tree
        time.sleep(0.5)
    pytest.fail(f"not ready within {START_S} s (exit {dev.proc.poll()}):\n{dev.output()[-3000:]}")


def assert_all_gone(dev: Dev, tree: dict[int, int]) -> None:
    deadline = time.monotonic() + GONE_S
    while alive(tree) and time.monotonic() < deadline:
        time.sleep(0.5)
    left = alive(tree)
    names = {pid: cmdline(pid)[:120] for pid in left}
    assert not left, f"still running {GONE_S} s later: {names}\n{dev.output()[-3000:]}"
    for port in (dev.api, dev.emulator, dev.flower):
        with socket.socket() as s:
            assert s.connect_ex(("127.0.0.1", port)) != 0, f"port {port} still open"


def test_dev_starts_everything_and_stops_on_ctrl_c(start_dev: Callable[..., Dev]) -> None:
    dev = start_dev()
    tree = wait_ready(dev)
    assert httpx.get(f"http://127.0.0.1:{dev.api}/healthz", timeout=5).status_code == 200
    ready = httpx.get(f"http://127.0.0.1:{dev.api}/readyz", timeout=5)
    assert ready.status_code == 200, ready.text
    key = (dev.var / "operator_key").read_text().strip()
    assert key in dev.output(), "the operator key is printed"
    me = httpx.get(f"http://127.0.0.1:{dev.api}/v1/customers", headers={"Authorization": f"Bearer {key}"})
    assert me.status_code == 200 and len(me.json()["items"]) >= 1, me.text
    # The demo tenants already consented to the demo partner's app (CPV), as connected customers have.
    with httpx.Client(base_url=f"https://127.0.0.1:{dev.emulator}", verify=str(dev.var / "emulator-ca.pem"),
                      timeout=5) as emulator:
        [partner] = emulator.get("/_emulator/partners").json()["items"]
        tenants = emulator.get("/_emulator/tenants").json()["items"]
    assert tenants and all(t["consented_apps"] == [partner["client_id"]] for t in tenants), tenants

    os.killpg(dev.proc.pid, signal.SIGINT)  # what Ctrl-C sends to the terminal's foreground process group
    assert dev.proc.wait(timeout=GONE_S) == 0, dev.output()[-3000:]
    assert_all_gone(dev, tree)


def readme_walkthrough() -> str:
    """The README's guide walkthrough, the first bash block under its heading, exactly as printed there."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("## Guide walkthrough", 1)[1]
    return section.split("```bash\n", 1)[1].split("\n```", 1)[0]


def test_the_readme_walkthrough_provisions_a_user(start_dev: Callable[..., Dev]) -> None:
    """The README's curl walkthrough works as written against `provisioner dev` (only the API's port differs:
    the test's stack runs on free ports, and the walkthrough's `var/` is the test's)."""
    script = readme_walkthrough()
    assert "http://127.0.0.1:8000" in script
    dev = start_dev()
    tree = wait_ready(dev)
    script = script.replace("http://127.0.0.1:8000", f"http://127.0.0.1:{dev.api}")
    run = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=dev.var.parent, capture_output=True,
                         text=True, timeout=240)
    assert run.returncode == 0, f"{run.stdout[-3000:]}\n{run.stderr[-3000:]}\n{dev.output()[-3000:]}"
    ends = [line for line in run.stdout.splitlines() if line.startswith("request ")]
    assert len(ends) == 5 and all(line.endswith(": succeeded") for line in ends), run.stdout
    assert "{'user': 'created', 'password': 'set'}" in run.stdout
    assert '"state":"provisioned"' in run.stdout and '"licences":["O365_BUSINESS_PREMIUM"]' in run.stdout
    os.killpg(dev.proc.pid, signal.SIGTERM)
    assert dev.proc.wait(timeout=GONE_S) == 0
    assert_all_gone(dev, tree)


# Two API processes: the API's own children (uvicorn processes, multiprocessing's resource tracker)
# are grandchildren of the supervisor, and must end too.
@pytest.mark.parametrize(("sig", "ignore_sigint"), [
    pytest.param(signal.SIGINT, True, id="ctrl-c-with-sigint-inherited-ignored"),
    pytest.param(signal.SIGHUP, False, id="terminal-closed"),
    pytest.param(signal.SIGTERM, False, id="sigterm"),
    pytest.param(signal.SIGKILL, False, id="sigkill"),
])
def test_no_process_outlives_the_supervisor(start_dev: Callable[..., Dev], sig: signal.Signals,
                                            ignore_sigint: bool) -> None:
    dev = start_dev(ignore_sigint=ignore_sigint, api_workers=2)
    tree = wait_ready(dev, api_workers=2)
    os.killpg(dev.proc.pid, sig)  # the supervisor's own group: its children each lead their own
    rc = dev.proc.wait(timeout=GONE_S)
    assert rc == (-signal.SIGKILL if sig == signal.SIGKILL else 0), dev.output()[-3000:]
    assert_all_gone(dev, tree)
