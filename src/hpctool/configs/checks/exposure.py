"""The checks of what a cluster exposes: placeholders left in, ports open to the internet (SSH,
DCV), IMDS, encryption at rest, S3 access wider than needed, public IPs on compute nodes."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from pcluster.constants import CIDR_ALL_IPS

from hpctool.configs.checks.registry import Config, Issue, as_dict, as_int, as_list, check
from hpctool.configs.findings import ERROR, WARNING, NotChecked

WORLD = {CIDR_ALL_IPS, "::/0"}
# Placeholders, by what they look like (not by any substring, so "todo-bucket" or JSON pass):
PLACEHOLDER_WORD_RE = re.compile(r"(?<![A-Za-z0-9])(REPLACE[_-]?ME|REPLACE[_-][A-Z_]+|CHANGE[_-]?ME|TODO|FIXME|TBD|"
                                 r"YOUR[_-][A-Z][A-Z_-]*|<[A-Za-z][A-Za-z0-9 _.-]*>)(?![a-z0-9])")
# A template marker: Jinja `{{ name }}` / `{% ... %}` or shell `${NAME}`; `{{"a": 1}}` JSON is not one.
TEMPLATE_RE = re.compile(r"\{\{\s*[A-Za-z_][\w.\[\]'\"]*\s*(\|[^{}]*)?\}\}|\{%-?\s*\w+.*?%\}|\$\{[A-Za-z_]\w*\}")
# ParallelCluster's own examples fill values with `String`/`string1` and x-masks (`subnet-xxxxxxxx`).
FILLER_RE = re.compile(r"^(?:[Ss]tring\d*|STRING)$|x{8}|^(?:subnet|sg|ami|vpc|fs|vol|snap)-x+$")
# Free-form values (JSON for Chef, Slurm settings, script arguments) where braces are content.
FREE_FORM_KEYS = {"ExtraChefAttributes", "CustomSlurmSettings", "Args"}
OPEN_PORTS_NOT_CHECKED = NotChecked(
    "hpctool:open-ports", "the rules of your own security groups (HeadNode.Networking): no port (SSH, DCV, a web "
    "UI such as JupyterHub) should be open to 0.0.0.0/0, and head and compute nodes must reach each other (else "
    "nodes miss ResumeTimeout: aws-parallelcluster 5919); they cannot be seen offline")


@check("placeholders")
def placeholders(config: Config) -> Iterator[Issue]:
    for path, value in config.strings():
        reason = placeholder_reason(path, value)
        if reason:
            yield Issue(ERROR, path, f"placeholder left in the config ({reason}): {value[:80]!r}",
                        "replace it with your account's value (render with --set KEY=VALUE)")


def placeholder_reason(path: str, value: str) -> str | None:
    """Why ``value`` at ``path`` looks like a placeholder, or None.

    Template markers count anywhere except in free-form fields (JSON for Chef, Slurm settings, script
    arguments), where only a value that is nothing but a marker counts; JSON text never does.
    """
    keys = {part.split("[")[0] for part in path.split(".")}
    text = value.strip()
    if keys & FREE_FORM_KEYS:
        whole = TEMPLATE_RE.fullmatch(text)
        return "an unrendered template marker" if whole else None
    if text[:1] in "{[":
        try:
            json.loads(text)
            return None  # JSON content, braces and all
        except ValueError:
            pass
    if TEMPLATE_RE.search(text):
        return "an unrendered template marker"
    if PLACEHOLDER_WORD_RE.search(text):
        return "a placeholder word"
    if FILLER_RE.search(text):
        return "an example filler value"
    return None


# ParallelCluster's defaults (pcluster.config.cluster_config): HeadNode Ssh/Dcv AllowedIps default to
# CIDR_ALL_IPS, a login pool without Ssh.AllowedIps inherits the head node's, and the rules only
# apply to the security group ParallelCluster manages: with Networking.SecurityGroups the user's
# own groups replace it (their rules cannot be seen offline).
def _own_groups(node: dict) -> bool:
    return bool(as_list(as_dict(node.get("Networking")).get("SecurityGroups")))


def _pools(config: Config) -> Iterator[tuple[str, dict]]:
    pools = as_list(as_dict(config.get("LoginNodes")).get("Pools"))
    for index, pool in enumerate(pools):
        yield config.namer.item("LoginNodes.Pools", pools, index), as_dict(pool)


@check("ssh")
def ssh(config: Config) -> Iterator[Issue | NotChecked]:
    head = as_dict(config.get("HeadNode"))
    head_own_groups = _own_groups(head)
    head_ssh = as_dict(head.get("Ssh"))
    yield from _open_port("SSH (port 22)", head_ssh.get("AllowedIps"), "HeadNode.Ssh.AllowedIps", head_own_groups)
    for path, pool in _pools(config):
        allowed = as_dict(pool.get("Ssh")).get("AllowedIps")
        if allowed is None and not head_own_groups:
            continue  # inherits the head node's AllowedIps: the head node's finding, if any, covers it
        yield from _open_port("SSH (port 22)", allowed if allowed is not None else head_ssh.get("AllowedIps"),
                              f"{path}.Ssh.AllowedIps", _own_groups(pool))
    if head_own_groups or as_list(as_dict(head.get("Networking")).get("AdditionalSecurityGroups")):
        yield OPEN_PORTS_NOT_CHECKED


@check("dcv")
def dcv(config: Config) -> Iterator[Issue]:
    # DCV is a web server (port 8443 by default): pcluster's DcvValidator warns only under --deep.
    head = as_dict(config.get("HeadNode"))
    places = [("HeadNode", head)] + list(_pools(config))
    for path, node in places:
        settings = as_dict(node.get("Dcv"))
        if settings.get("Enabled") is True:
            port = as_int(settings.get("Port")) or 8443
            yield from _open_port(f"DCV's web port ({port})", settings.get("AllowedIps"), f"{path}.Dcv.AllowedIps",
                                  _own_groups(node))


def _open_port(what: str, allowed: Any, path: str, own_groups: bool) -> Iterator[Issue]:
    if own_groups:
        return  # ParallelCluster's managed group, and so AllowedIps, is replaced by the user's groups
    if allowed is None:
        yield Issue(WARNING, path, f"{what} AllowedIps is not set: ParallelCluster opens it to 0.0.0.0/0",
                    "set AllowedIps to your office/VPN CIDR or a prefix list")
    elif isinstance(allowed, str) and allowed.strip() in WORLD:
        yield Issue(WARNING, path, f"{what} is open to the whole internet ({allowed})",
                    "set AllowedIps to your office/VPN CIDR or a prefix list")


@check("imds")
def imds(config: Config) -> Iterator[Issue]:
    support = as_dict(config.get("Imds")).get("ImdsSupport")
    if support is not None and support != "v2.0":
        yield Issue(ERROR, "Imds.ImdsSupport", f"IMDSv2 is not required (ImdsSupport: {support})",
                    "set Imds.ImdsSupport: v2.0 so instance credentials need a session token")
    head_imds = as_dict(as_dict(config.get("HeadNode")).get("Imds"))
    if head_imds.get("Secured") is False:
        yield Issue(ERROR, "HeadNode.Imds.Secured", "the head node's IMDS is open to every local user",
                    "set HeadNode.Imds.Secured: true (the default) so only root and admins reach "
                    "the instance profile credentials")


@check("encryption")
def encryption(config: Config) -> Iterator[Issue]:
    storages = as_list(config.get("SharedStorage"))
    for index, storage in enumerate(storages):
        storage = as_dict(storage)
        path = config.namer.item("SharedStorage", storages, index)
        for key in ("EfsSettings", "EbsSettings"):
            settings = storage.get(key)
            if not isinstance(settings, dict) or settings.get("FileSystemId") or settings.get("VolumeId"):
                continue
            # pcluster's schema defaults: SharedEbs encrypted=True, SharedEfs encrypted=False.
            encrypted = settings.get("Encrypted", key == "EbsSettings")
            if encrypted is not True:
                yield Issue(WARNING, f"{path}.{key}.Encrypted", f"{key[:3].upper()} storage is not encrypted",
                            "set Encrypted: true")
    root = as_dict(as_dict(as_dict(config.get("HeadNode")).get("LocalStorage")).get("RootVolume"))
    if root.get("Encrypted") is False:
        yield Issue(WARNING, "HeadNode.LocalStorage.RootVolume.Encrypted", "the head node root volume is not "
                    "encrypted", "set Encrypted: true (the default)")


@check("least-privilege")
def least_privilege(config: Config) -> Iterator[Issue]:
    places = [("HeadNode", as_dict(config.get("HeadNode")))] + list(config.queues())
    for path, node in places:
        entries = as_list(as_dict(node.get("Iam")).get("S3Access"))
        for index, entry in enumerate(entries):
            entry = as_dict(entry)
            bucket, write = entry.get("BucketName"), entry.get("EnableWriteAccess")
            if bucket == "*":
                yield Issue(WARNING, f"{path}.Iam.S3Access[{index}].BucketName", "S3 access to every bucket",
                            "name the buckets the cluster needs")
            elif write is True and not entry.get("KeyName"):
                yield Issue(WARNING, f"{path}.Iam.S3Access[{index}]", f"write access to all of bucket {bucket}",
                            "add KeyName (e.g. results/*) so the cluster writes only its results prefix")


@check("network")
def network(config: Config) -> Iterator[Issue]:
    for q_path, queue in config.queues():
        if as_dict(queue.get("Networking")).get("AssignPublicIp") is True:
            yield Issue(WARNING, f"{q_path}.Networking.AssignPublicIp", "compute nodes get public IPs",
                        "run compute nodes in private subnets with a NAT gateway or VPC endpoints")
