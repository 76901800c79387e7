"""Run the emulator over HTTPS on uvicorn: local CA at start, optional state file restored and saved."""
from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import socket
import sys
from collections.abc import Sequence

import uvicorn

from . import persistence, tls
from .app import ConnectionDropped, Emulator

log = logging.getLogger("emulator")


class QuietDrops(logging.Filter):
    """Uvicorn logs an application's exception with its traceback; a dropped connection that `error_rate`
    asked for is the emulator working, not failing (its stats count them)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], ConnectionDropped))


def _bind(host: str, port: int) -> socket.socket:
    """Bind here rather than in uvicorn so a port of 0 is known before serving and can be reported."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    return sock


def _stopped(signum: int, frame: object) -> None:
    """Placeholder handler: the stop itself was already handled by uvicorn."""


def serve(host: str = "127.0.0.1", port: int = 8443, ca_out: str | None = None, state_file: str | None = None,
          *, extra_names: Sequence[str] = (), ready_file: str | None = None, access_log: bool = False) -> None:
    """Blocking. `ready_file` receives `{"url", "port", "ca_path"}` once the socket is bound."""
    restored = persistence.load_file(state_file) if state_file else None
    emulator = Emulator(restored[0] if restored else None)
    if restored:
        emulator.faults.update(restored[1])
    names = [n for n in (host, socket.gethostname(), *extra_names) if n not in ("0.0.0.0", "::", "")]
    files = tls.generate(names)
    if ca_out:
        tls.write_atomically(ca_out, files.ca_pem)
    sock = _bind(host, port)
    bound_port = sock.getsockname()[1]
    url = f"https://{'[' + host + ']' if ':' in host else host}:{bound_port}"
    if ready_file:
        ready = {"url": url, "port": bound_port, "ca_path": os.path.abspath(ca_out) if ca_out else None}
        tls.write_atomically(ready_file, json.dumps(ready).encode())
    print(f"Microsoft cloud emulator on {url}" + (f" (CA certificate: {ca_out})" if ca_out else ""),
          file=sys.stderr, flush=True)
    config = uvicorn.Config(emulator, ssl_certfile=files.cert_path, ssl_keyfile=files.key_path,
                            loop="uvloop", http="httptools", lifespan="off", access_log=access_log,
                            log_level="info" if access_log else "warning", server_header=False,
                            # Idle TLS keep-alive connections must not hold up a stop (and the state save).
                            timeout_graceful_shutdown=1)
    logging.getLogger("uvicorn.error").addFilter(QuietDrops())  # after Config, which configures uvicorn's logging
    try:
        config.load()  # reads the key into the SSL context, so the files can go now, even if we are killed later
    finally:
        shutil.rmtree(os.path.dirname(files.cert_path), ignore_errors=True)
    # Uvicorn re-raises the stop signal after shutting down; with these no-op handlers in place that
    # re-raise returns here instead of killing the process, so the state below still gets saved.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _stopped)
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        if state_file:
            persistence.save_file(state_file, emulator.world, emulator.faults.view())
            log.warning("emulator state saved to %s", state_file)
