"""ParallelCluster's validators, watched: where each result is about, and what each validator tried.

pcluster's results carry no path, and a failed AWS lookup does not say which validator made it.
:func:`traced_validators` patches three of its private hooks for the length of a ``with`` block
and restores them after it, whatever happens: ``AWSClientError.__init__`` (a failed lookup is
charged to the validator that made it), ``Resource._validate_self`` (the resource being validated,
hence its YAML path) and ``Resource._validator_execute`` (each validator's run: its name, its
crash, the network it tried, its results tagged with the path). Runs only in the ``--deep`` child.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

_CURRENT: contextvars.ContextVar[str] = contextvars.ContextVar("hpctool_validator", default="")


def validator_name(kind: str) -> str:
    return kind.removeprefix("AsyncTimed")  # pcluster's timed async wrappers rename the class


@dataclass
class Trace:
    """Per validator: the AWS lookups that failed, network it tried, and whether it crashed; which
    validators ran, and the YAML path of each resource of the model (filled once it is built)."""

    attempts: Any  # hpctool.configs.offline's record of blocked connections
    lookups: dict[str, list[str]] = field(default_factory=dict)
    crashed: dict[str, str] = field(default_factory=dict)
    ran: dict[str, list] = field(default_factory=dict)
    paths: dict[int, str] = field(default_factory=dict)

    def lookup_failed(self, function: str, message: str) -> None:
        name = _CURRENT.get()
        if name:
            self.lookups.setdefault(name, []).append(f"{function}: {message}")

    def crash(self, name: str, error: Exception) -> None:
        if isinstance(error, NotImplementedError):  # moto lacks the API: a lookup only the account answers
            self.lookups.setdefault(name, []).append(str(error))
        else:
            self.crashed[name] = f"{type(error).__name__}: {error}"

    def network(self, name: str, before: int) -> None:
        for host in self.attempts.hosts[before:]:
            self.lookups.setdefault(name, []).append(f"a connection to {host} (blocked: validation is offline)")


@contextmanager
def traced_validators(attempts: Any) -> Iterator[Trace]:
    """ParallelCluster with the three hooks in place for the block; restored after it."""
    from pcluster.aws.common import AWSClientError
    from pcluster.config.common import Resource

    trace = Trace(attempts)
    current: list[str] = [""]
    original_client_error_init = AWSClientError.__init__
    original_validate_self = Resource._validate_self
    original_execute = Resource._validator_execute

    def client_error_init(self: Any, function_name: str, message: str, *args: Any, **kwargs: Any) -> None:
        original_client_error_init(self, function_name, message, *args, **kwargs)
        trace.lookup_failed(function_name, message)

    def validate_self(resource: Any, context: Any, suppressors: Any) -> None:
        current.append(trace.paths.get(id(resource), ""))
        try:
            original_validate_self(resource, context, suppressors)
        finally:
            current.pop()

    def execute(validator_class: Any, args: Any, suppressors: Any, executor: Any) -> Any:
        path = current[-1]
        name = validator_name(validator_class.__name__)
        trace.ran.setdefault(name, [])
        token = _CURRENT.set(name)
        before = len(attempts.hosts)
        try:
            result = original_execute(validator_class, args, suppressors, executor)
        except Exception as error:  # noqa: BLE001 - a crashing validator is "could not run", not a pass
            trace.crash(name, error)
            return []
        finally:
            _CURRENT.reset(token)
            trace.network(name, before)
        if result is None or isinstance(result, list):
            for failure in result or []:
                failure.hpctool_path = path
            return result

        async def tagged() -> Any:
            _CURRENT.set(name)
            start = len(attempts.hosts)
            try:
                failures = await result
            except Exception as error:  # noqa: BLE001
                trace.crash(name, error)
                return []
            finally:
                trace.network(name, start)
            for failure in failures or []:
                failure.hpctool_path = path
            return failures

        return tagged()

    AWSClientError.__init__ = client_error_init
    Resource._validate_self = validate_self
    Resource._validator_execute = staticmethod(execute)
    try:
        yield trace
    finally:
        AWSClientError.__init__ = original_client_error_init
        Resource._validate_self = original_validate_self
        Resource._validator_execute = staticmethod(original_execute)
