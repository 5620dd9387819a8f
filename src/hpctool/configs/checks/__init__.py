"""hpctool's cross-checks: what ParallelCluster's schema does not catch, offline.

:mod:`~hpctool.configs.checks.registry` (one function per check, registered under its name),
:mod:`~hpctool.configs.checks.sizing`, :mod:`~hpctool.configs.checks.exposure` and
:mod:`~hpctool.configs.checks.operations` (the checks), :mod:`~hpctool.configs.checks.run` (all of them).
"""
