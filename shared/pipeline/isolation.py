"""Suspects run alone: a step whose last delivery ended without an outcome gets its process to itself.

A step that kills its process (a poison request: a segfault in a library, memory exhaustion)
takes down every step running in that process with it. On a threads pool all of them were
counted a delivery at their claim, so without isolation the healthy ones would be re-driven
together with the poison, crash with it again and be failed as `poison_message` with it. A
*suspect* (a claim that finds the previous delivery of the step never recorded an outcome) is
therefore run holding the process exclusively: while it runs nothing else does, so if the
process dies again only the suspect is counted, and its bystanders, suspects themselves now,
each get a run of their own that succeeds.

The lock is per process: prefork runs one task per process, so it never waits there.
"""
from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager


class Isolation:
    """No isolation: every step may run beside others (tests that drive the engine directly)."""

    isolates = False

    @contextmanager
    def shared(self) -> Iterator[None]:
        yield

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        yield


class ProcessIsolation(Isolation):
    """A readers-writer lock over the process's steps, the writer (a suspect) first: once a suspect
    waits, new steps wait behind it, so it runs as soon as the steps already running finish (each
    bounded by the task time limit)."""

    isolates = True

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._running = 0
        self._writer = False
        self._writers_waiting = 0

    @contextmanager
    def shared(self) -> Iterator[None]:
        with self._cond:
            while self._writer or self._writers_waiting:
                self._cond.wait()
            self._running += 1
        try:
            yield
        finally:
            with self._cond:
                self._running -= 1
                if self._running == 0:
                    self._cond.notify_all()

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        with self._cond:
            self._writers_waiting += 1
            try:
                while self._writer or self._running:
                    self._cond.wait()
            finally:
                self._writers_waiting -= 1
            self._writer = True
        try:
            yield
        finally:
            with self._cond:
                self._writer = False
                self._cond.notify_all()


_process = ProcessIsolation()


def for_this_process() -> ProcessIsolation:
    """The worker's one lock (threads of a pool share it; a prefork child has its own copy)."""
    return _process
