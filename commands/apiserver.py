"""`provisioner api`: uvicorn, and with several workers one listening socket per process (SO_REUSEPORT).

Why not uvicorn's own `--workers`: its processes share one listening socket, and asyncio accepts
every connection waiting on it in one go, so whichever process wakes first takes a whole burst of
new connections. Keep-alive clients stay where they landed: eight clients arriving together were
all served by one process (one GIL) while the other idled, doubling latency. With a socket per
process the kernel spreads new connections across the processes itself.

Each process is a plain `uvicorn.Server` (its own graceful shutdown on SIGTERM/SIGINT); this
parent only starts them, restarts one that dies, and passes a stop signal on.
"""
from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import socket
import sys
import threading
import time
from multiprocessing.process import BaseProcess
from types import FrameType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fastapi import FastAPI

log = logging.getLogger(__name__)

APP = "commands.apiserver:create_app"  # uvicorn imports it in every API process
BACKLOG = 2048
# A process that dies this many times in a row, each sooner than MIN_UPTIME_S after starting (a
# broken configuration, a port it cannot bind), is not restarted in a loop: the parent exits 1.
MIN_UPTIME_S = 5.0
MAX_QUICK_EXITS = 3
STOP_GRACE_S = 30.0


def create_app() -> FastAPI:
    """The API as this process serves it: requests it accepts are published as Celery chains."""
    from api.app import create_app as create_api
    from worker.app import install_publisher, install_queue_depths

    install_publisher()  # api.app's lifespan wraps it in its BackgroundPublisher
    install_queue_depths()
    return create_api()


def _options(host: str, port: int) -> dict[str, Any]:
    return {"factory": True, "host": host, "port": port, "log_level": "info", "access_log": False,
            "proxy_headers": True}


def serve(host: str, port: int, workers: int) -> int:
    import uvicorn

    if workers <= 1 or not hasattr(socket, "SO_REUSEPORT"):
        uvicorn.run(APP, workers=max(workers, 1), **_options(host, port))
        return 0
    _listen(host, port).close()  # fail here, once, if the address is taken
    return _Supervisor(host, port, workers).run()


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(BACKLOG)
    sock.set_inheritable(True)
    return sock


def _child(host: str, port: int) -> None:
    import uvicorn

    sock = _listen(host, port)
    uvicorn.Server(uvicorn.Config(APP, **_options(host, port))).run(sockets=[sock])


class _Supervisor:
    def __init__(self, host: str, port: int, workers: int) -> None:
        self.host, self.port, self.workers = host, port, workers
        self.ctx = multiprocessing.get_context("spawn")
        self.procs: list[tuple[BaseProcess, float]] = []
        self.quick_exits = 0
        self.stop = threading.Event()  # set by SIGTERM/SIGINT: wakes the watch loop at once

    def run(self) -> int:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s:     %(message)s")
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._stop)
        log.info("API on http://%s:%d, %d processes (one socket each, SO_REUSEPORT), parent %d",
                 self.host, self.port, self.workers, os.getpid())
        self.procs = [self._start() for _ in range(self.workers)]
        status = 0
        while not self.stop.wait(0.5):
            for i, (proc, started) in enumerate(self.procs):
                if proc.is_alive() or self.stop.is_set():
                    continue
                self.quick_exits = self.quick_exits + 1 if time.monotonic() - started < MIN_UPTIME_S else 0
                if self.quick_exits >= MAX_QUICK_EXITS:
                    log.error("API processes keep exiting right after starting (last: %s, code %s); stopping",
                              proc.pid, proc.exitcode)
                    self.stop.set()
                    status = 1
                    break
                log.warning("API process %s exited %s; starting another", proc.pid, proc.exitcode)
                self.procs[i] = self._start()
        self._terminate()
        return status

    def _start(self) -> tuple[BaseProcess, float]:
        proc = self.ctx.Process(target=_child, args=(self.host, self.port), name="api", daemon=False)
        proc.start()
        return proc, time.monotonic()

    def _stop(self, signum: int, _frame: FrameType | None) -> None:
        self.stop.set()

    def _terminate(self) -> None:
        for proc, _ in self.procs:
            if proc.is_alive() and proc.pid is not None:
                os.kill(proc.pid, signal.SIGTERM)  # uvicorn: finish the requests in flight, then exit
        deadline = time.monotonic() + STOP_GRACE_S
        for proc, _ in self.procs:
            proc.join(max(0.0, deadline - time.monotonic()))
            if proc.is_alive():
                proc.kill()
                proc.join()
        sys.stdout.flush()
