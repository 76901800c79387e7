"""`python -m tests.reliability.crashing_worker worker [celery worker options]`: a test-only worker bootstrap.

It is `provisioner worker` with one change made before the worker starts: the step named by
DRILL_POISON_STEP (default ensure_user) kills its own process with SIGKILL whenever it runs for one
of the requests listed in DRILL_POISON_REQUESTS (comma-separated ids), DRILL_POISON_DELAY_S seconds
(default 0) after it started. Product code is untouched: the
step lookup the engine uses (shared.pipeline.registry.step_function) is wrapped in this process only.

That is a poison message as production meets it: a request whose step takes its worker down every
time (a segfaulting library, an out-of-memory kill), before any outcome can be recorded.
"""
from __future__ import annotations

import os
import signal
import sys
import time
from typing import Any


def install() -> None:
    poisoned = {i for i in os.environ.get("DRILL_POISON_REQUESTS", "").split(",") if i}
    step_name = os.environ.get("DRILL_POISON_STEP", "ensure_user")
    delay = float(os.environ.get("DRILL_POISON_DELAY_S", "0"))
    if not poisoned:
        return
    from shared.pipeline import registry

    original = registry.step_function

    def step_function(name: str) -> Any:
        fn = original(name)
        if name != step_name:
            return fn

        def crashing(ctx: Any) -> Any:
            if ctx.request.id in poisoned:
                time.sleep(delay)  # the step "works" a moment, as a real crash would come mid-step
                os.kill(os.getpid(), signal.SIGKILL)  # the whole worker process (threads pool) or its child
            return fn(ctx)

        return crashing

    registry.step_function = step_function


def main() -> None:
    install()
    from commands.cli import main as provisioner

    sys.argv = ["provisioner", *sys.argv[1:]]
    provisioner()


if __name__ == "__main__":
    main()
