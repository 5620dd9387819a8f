"""A Secrets Manager secret's ARN, checked offline: its shape, its account and its region.

Shared by the checks of the fields ParallelCluster reads a password from (``SlurmSettings.Database``
and ``DirectoryService``): the head node reads the secret in the cluster's region, so one in another
region fails only at cluster creation, after minutes of waiting.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from hpctool.configs.checks.registry import Issue
from hpctool.configs.findings import ERROR

ARN_RE = re.compile(r"^arn:(?P<partition>aws|aws-cn|aws-us-gov|aws-iso(?:-[a-z])?):(?P<service>[a-z0-9-]*):"
                    r"(?P<region>[a-z0-9-]*):(?P<account>[^:]*):(?P<resource>.*)$")


def example_arn(region: str | None) -> str:
    return f"arn:aws:secretsmanager:{region or 'REGION'}:123456789012:secret:NAME"


def secret_arn_issues(path: str, label: str, arn: object, region: str | None, *, missing_hint: str,
                      region_hint: str) -> Iterator[Issue]:
    """What is wrong with ``arn`` as the Secrets Manager secret at ``path`` (``label`` names the field)."""
    example = example_arn(region)
    if not isinstance(arn, str) or not arn:
        yield Issue(ERROR, path, f"{label} is missing", missing_hint)
        return
    match = ARN_RE.match(arn)
    if match is None:
        yield Issue(ERROR, path, f"PasswordSecretArn {arn!r} is not an ARN", f"give a Secrets Manager ARN: {example}")
        return
    if match["service"] != "secretsmanager" or not match["resource"].startswith("secret:") \
            or match["resource"] == "secret:":
        yield Issue(ERROR, path, f"PasswordSecretArn {arn!r} is not a Secrets Manager secret", "ParallelCluster "
                    f"reads the password from a Secrets Manager secret: {example}")
        return
    if not re.fullmatch(r"\d{12}", match["account"]):
        yield Issue(ERROR, path, f"PasswordSecretArn {arn!r}: account {match['account']!r} is not 12 digits",
                    f"give the full ARN: {example}")
    if region and match["region"] != region:
        yield Issue(ERROR, path, f"PasswordSecretArn {arn!r} is in {match['region'] or 'no region'}, the cluster "
                    f"in {region}", region_hint)
