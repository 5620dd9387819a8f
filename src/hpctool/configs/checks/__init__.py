"""hpctool's cross-checks: what ParallelCluster's schema does not catch, offline.

:mod:`~hpctool.configs.checks.registry` (one function per check, registered under its name),
:mod:`~hpctool.configs.checks.sizing`, :mod:`~hpctool.configs.checks.exposure`,
:mod:`~hpctool.configs.checks.operations`, :mod:`~hpctool.configs.checks.accounting` and
:mod:`~hpctool.configs.checks.directory` (the checks; :mod:`~hpctool.configs.checks.secret_arn` is
their shared secret-ARN rule), :mod:`~hpctool.configs.checks.run` (all of them).
"""
