"""One way to wait: poll a predicate until it holds or a deadline passes.

Waiting on Slurm (a node to register, a job to be requeued, a daemon to answer) has no push
notification from the client side, so hpctool polls; this module is the one loop that does it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def poll_until(predicate: Callable[[], T], *, timeout: float, interval: float = 0.2,
               on_timeout: Callable[[], Exception], give_up: Callable[[], bool] | None = None,
               on_give_up: Callable[[], Exception] | None = None) -> T:
    """Call ``predicate`` every ``interval`` seconds until it returns a truthy value, and return
    that value. After ``timeout`` seconds raise ``on_timeout()``. When ``give_up()`` turns true
    (e.g. the daemon being waited for has died) the predicate gets one last look, then
    ``on_give_up()`` (default ``on_timeout()``) is raised."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if give_up is not None and give_up():
            value = predicate()
            if value:
                return value
            raise (on_give_up or on_timeout)()
        if time.monotonic() >= deadline:
            raise on_timeout()
        time.sleep(interval)
