"""ParallelCluster's own schema (``ClusterSchema``), offline, with errors as readable YAML paths.

Also where the config's region comes from (ParallelCluster: the config's ``Region``, else
``--region``/``AWS_DEFAULT_REGION``), said out loud when it is a default, and an unknown region is an error.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from hpctool.configs.findings import ERROR, INFO, Finding, NotChecked, PathNamer
from hpctool.configs.instances import known_regions
from hpctool.configs.offline import no_network

SCHEMA_CHECK = "schema"
FALLBACK_REGION = "us-east-1"
_REGION_RE = re.compile(r"^(?:af|ap|ca|cn|eu|il|me|mx|sa|us)(?:-gov|-iso[a-z]?)?-[a-z]+-\d{1,2}$")
# Keys ParallelCluster 3 once had and dropped: the schema says "Unknown field.", which points at a typo.
REMOVED_KEYS = {
    "AwsBatchCliPackage": "DevSettings.AwsBatchCliPackage went with the AWS Batch scheduler (removed from "
                          "ParallelCluster 3)",
    "AwsBatchQueues": "Scheduling.AwsBatchQueues went with the AWS Batch scheduler (removed from ParallelCluster 3)",
}


@dataclass(frozen=True)
class Region:
    name: str
    source: str  # "config", "--region", "AWS_DEFAULT_REGION" or "default"


def config_region(config: Any, override: str | None = None) -> Region:
    """The region validation uses, as ParallelCluster picks it: the config's, else the CLI's, else the env's."""
    region = config.get("Region") if isinstance(config, dict) else None
    if isinstance(region, str) and region:
        return Region(region, "config")
    if override:
        return Region(override, "--region")
    if os.environ.get("AWS_DEFAULT_REGION"):
        return Region(os.environ["AWS_DEFAULT_REGION"], "AWS_DEFAULT_REGION")
    return Region(FALLBACK_REGION, "default")


def region_findings(config: Any, region: Region) -> list[Finding]:
    path = "Region"
    findings = []
    if region.source != "config":
        how = {"--region": "from --region", "AWS_DEFAULT_REGION": "from AWS_DEFAULT_REGION",
               "default": "hpctool's default"}[region.source]
        findings.append(Finding(INFO, path, f"the config has no Region: validated for {region.name} ({how})",
                                "ParallelCluster takes the region from the config, `--region` or "
                                "AWS_DEFAULT_REGION; set Region: in the config to make it explicit", "hpctool:region"))
    known = known_regions()
    if not _REGION_RE.match(region.name):
        findings.append(Finding(ERROR, path, f"{region.name!r} is not an AWS region",
                                "use a region code such as us-east-1 or eu-west-1", "hpctool:region"))
    elif known is not None and region.name not in known and not re.match(r"^(cn|us-gov|us-iso)", region.name):
        findings.append(Finding(ERROR, path, f"{region.name!r} is not a region hpctool knows (EC2's region list "
                                "in moto's data)", "check the spelling (e.g. eu-west-1, ap-southeast-2)",
                                "hpctool:region"))
    return findings


@contextmanager
def aws_region(region: str) -> Iterator[None]:
    """Some schema post-load steps ask boto for the region; give it the config's, offline, then restore."""
    with no_network(region):
        yield


def _hint(message: str, key: str) -> str:
    if message == "Unknown field." and key in REMOVED_KEYS:
        return f"{REMOVED_KEYS[key]}: delete `{key}`"
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


def schema_findings(config: Any, region: Region | None = None,
                    cluster_name: str = "hpctool") -> tuple[list[Finding], list[NotChecked]]:
    """Validate ``config`` with ParallelCluster's ``ClusterSchema``, with the network blocked.

    Returns findings and what could not be checked: when ParallelCluster's model needs AWS to be built
    (capacity reservation groups, existing file systems), that part is "not checked", never an error.
    """
    from marshmallow import ValidationError
    from pcluster.schemas.cluster_schema import ClusterSchema

    region = region or config_region(config)
    namer = PathNamer(config)
    previous = logging.root.manager.disable
    logging.disable(logging.CRITICAL)  # pcluster logs each blocked AWS call; the not-checked item says it once
    try:
        with no_network(region.name) as attempts:
            try:
                ClusterSchema(cluster_name=cluster_name).load(config)
                failure: Exception | None = None
            except ValidationError as error:
                findings = []
                for keys, message in _flatten(error.messages, []):
                    path = namer.join(keys)
                    key = str(keys[-1]) if keys else "the config"
                    if message == "Unknown field." and key in REMOVED_KEYS:
                        message = f"{REMOVED_KEYS[key]}; it is no longer a key"
                    findings.append(Finding(ERROR, path or "(top level)", message, _hint(message, key), SCHEMA_CHECK))
                return findings, []
            except Exception as error:  # noqa: BLE001 - pcluster's post-load code raises many types on odd input
                failure = error
    finally:
        logging.disable(previous)
    if attempts:
        return [], [NotChecked("schema:aws-lookups", "ParallelCluster's model of this config needs AWS "
                               f"({', '.join(sorted(set(attempts.hosts))[:3])}), e.g. for capacity reservation "
                               "groups or existing file systems; hpctool validates offline")]
    if failure is not None:
        return [Finding(ERROR, "(top level)", f"ParallelCluster could not read the config: {failure}",
                        "fix the errors hpctool reports for this config first; then see the message",
                        SCHEMA_CHECK)], []
    return [], []


def _pcluster_version() -> str:
    from importlib.metadata import version

    return version("aws-parallelcluster")


_PCLUSTER_VERSION = _pcluster_version()
