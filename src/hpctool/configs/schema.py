"""ParallelCluster's own schema (``ClusterSchema``), offline, with errors as readable YAML paths."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from hpctool.configs.findings import ERROR, Finding, PathNamer

SCHEMA_CHECK = "schema"
FALLBACK_REGION = "us-east-1"
_REGION_RE = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d$")


@contextmanager
def aws_region(region: str) -> Iterator[None]:
    """Some schema post-load steps ask boto for the region; give it the config's, then restore."""
    saved = os.environ.get("AWS_DEFAULT_REGION")
    os.environ["AWS_DEFAULT_REGION"] = region
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("AWS_DEFAULT_REGION", None)
        else:
            os.environ["AWS_DEFAULT_REGION"] = saved


def config_region(config: Any) -> str:
    region = config.get("Region") if isinstance(config, dict) else None
    return region if isinstance(region, str) and _REGION_RE.match(region) else FALLBACK_REGION


def _hint(message: str, key: str) -> str:
    if message == "Unknown field.":
        return f"`{key}` is not a ParallelCluster {_PCLUSTER_VERSION} key here: check its spelling and indentation"
    if message.startswith("Missing data for required field"):
        return f"add `{key}`"
    if message.startswith("Must be one of"):
        return "use one of the listed values (they are case-sensitive)"
    if message.startswith("Not a valid"):
        return f"give `{key}` a value of the right type"
    return "see the ParallelCluster 3 configuration reference for this key"


def _flatten(messages: Any, keys: list[Any]) -> Iterator[tuple[list[Any], str]]:
    """Marshmallow nests errors as dicts keyed by field name or list index; walk to the leaves."""
    if isinstance(messages, dict):
        for key, value in messages.items():
            # _schema: an error of the mapping itself, reported at its own path
            yield from _flatten(value, keys if key == "_schema" else [*keys, key])
    elif isinstance(messages, (list, tuple)):
        for value in messages:
            yield from _flatten(value, keys)
    else:
        yield keys, str(messages)


def schema_findings(config: Any, cluster_name: str = "hpctool") -> list[Finding]:
    """Validate ``config`` with ParallelCluster's ``ClusterSchema``; no AWS credentials or network."""
    from marshmallow import ValidationError
    from pcluster.schemas.cluster_schema import ClusterSchema

    namer = PathNamer(config)
    try:
        with aws_region(config_region(config)):
            ClusterSchema(cluster_name=cluster_name).load(config)
    except ValidationError as error:
        findings = []
        for keys, message in _flatten(error.messages, []):
            path = namer.join(keys)
            findings.append(Finding(ERROR, path or "(top level)", message, _hint(message, str(keys[-1]) if keys
                                                                                   else "the config"), SCHEMA_CHECK))
        return findings
    except Exception as error:  # noqa: BLE001 - pcluster's post-load code raises many types on odd input
        return [Finding(ERROR, "(top level)", f"ParallelCluster could not read the config: {error}",
                        "fix the errors hpctool reports for this config first; then see the message", SCHEMA_CHECK)]
    return []


def _pcluster_version() -> str:
    from importlib.metadata import version

    return version("aws-parallelcluster")


_PCLUSTER_VERSION = _pcluster_version()
