"""`hpctool bootstrap upload`: the node bootstrap bundle (``bootstrap/`` and ``envs/``) to S3.

The bundle goes under a content-addressed prefix, ``s3://BUCKET/PREFIX/<sha256-12>/``, where the
hash covers every file's path and content: a changed script gets a new prefix, so nodes already
running keep the files they started from, and a cluster config names exactly one bundle. A
``manifest.json`` is written last; when it is already there and the same, nothing is sent. Files
whose ETag is their MD5 are skipped too, so an interrupted upload resumes.

The cluster config's ``CustomActions.OnNodeConfigured`` Scripts (head node, login pools, every
Slurm queue) are checked against the uploaded entry script, and with ``write`` rewritten in place,
atomically, keeping the file's comments and layout.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hpctool.atomic import write_atomic
from hpctool.aws import S3
from hpctool.cluster.queues import load_yaml
from hpctool.errors import ConfigError, UsageError
from hpctool.progress import Progress, quiet
from hpctool.shipped import data_root

BUNDLE_DIRS = ("bootstrap", "envs")
ENTRY_SCRIPT = "bootstrap/on-node-configured.sh"
MANIFEST = "manifest.json"
_SKIPPED_PARTS = {"__pycache__", ".pytest_cache"}
_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


@dataclass(frozen=True)
class BundleFile:
    path: str  # relative to the repository, with '/'
    data: bytes

    @property
    def md5(self) -> str:
        return hashlib.md5(self.data, usedforsecurity=False).hexdigest()

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


@dataclass
class ScriptCheck:
    """One OnNodeConfigured Script of the config and whether it names the uploaded entry script."""

    yaml_path: str
    found: str | None  # None: the node group has no OnNodeConfigured script at all

    def ok(self, expected: str) -> bool:
        return self.found == expected


@dataclass
class UploadReport:
    bucket: str
    key_prefix: str
    digest: str
    entry_uri: str
    files: int
    uploaded: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    dry_run: bool = False
    config: str | None = None
    scripts: list[ScriptCheck] = field(default_factory=list)
    rewritten: list[str] = field(default_factory=list)

    @property
    def config_ok(self) -> bool:
        return all(s.ok(self.entry_uri) for s in self.scripts)

    def to_dict(self) -> dict[str, Any]:
        return {
            "bucket": self.bucket, "key_prefix": self.key_prefix, "digest": self.digest,
            "entry_uri": self.entry_uri, "files": self.files, "uploaded": self.uploaded,
            "unchanged": self.unchanged, "dry_run": self.dry_run, "config": self.config,
            "config_ok": self.config_ok if self.config else None,
            "scripts": [{"yaml_path": s.yaml_path, "found": s.found, "ok": s.ok(self.entry_uri)}
                        for s in self.scripts],
            "rewritten": self.rewritten,
        }


def collect_bundle(root: Path | None = None) -> list[BundleFile]:
    """The files of ``bootstrap/`` and ``envs/`` under ``root`` (the shipped ones by default), by path."""
    root = root if root is not None else data_root()
    if not (root / ENTRY_SCRIPT).is_file():
        raise ConfigError(f"{root / ENTRY_SCRIPT}: no such file",
                          "reinstall hpctool (its wheel ships bootstrap/), or pass the root of a checkout")
    files = []
    for top in BUNDLE_DIRS:
        base = root / top
        if not base.is_dir():
            continue
        for path in sorted(base.rglob("*")):
            relative = path.relative_to(root)
            if not path.is_file() or _SKIPPED_PARTS & set(relative.parts) or path.suffix == ".pyc":
                continue
            files.append(BundleFile(relative.as_posix(), path.read_bytes()))
    return sorted(files, key=lambda f: f.path)


def bundle_digest(files: list[BundleFile]) -> str:
    """12 hex digits of a SHA-256 over every file's path and content hash."""
    digest = hashlib.sha256()
    for item in sorted(files, key=lambda f: f.path):
        digest.update(f"{item.path}\0{item.sha256}\n".encode())
    return digest.hexdigest()[:12]


def manifest_of(files: list[BundleFile], digest: str) -> bytes:
    body = {"digest": digest, "entry": ENTRY_SCRIPT, "files": {f.path: f.sha256 for f in files}}
    return (json.dumps(body, indent=2, sort_keys=True) + "\n").encode()


def key_prefix_of(prefix: str, digest: str) -> str:
    prefix = prefix.strip("/")
    return f"{prefix}/{digest}" if prefix else digest


def entry_uri(bucket: str, prefix: str, digest: str) -> str:
    return f"s3://{bucket}/{key_prefix_of(prefix, digest)}/{ENTRY_SCRIPT}"


def _content_type(path: str) -> str:
    if path.endswith((".yaml", ".yml")):
        return "application/yaml"
    if path.endswith(".json"):
        return "application/json"
    return "text/plain" if path.endswith((".sh", ".service", ".lua", ".md")) else "application/octet-stream"


# --- the cluster config ---------------------------------------------------------------------------

def _script_of(group: Any) -> tuple[str, str | None] | None:
    """(relative YAML path, Script) of a node group's OnNodeConfigured entry script, if it has one."""
    actions = (group or {}).get("CustomActions") if isinstance(group, dict) else None
    configured = actions.get("OnNodeConfigured") if isinstance(actions, dict) else None
    if not isinstance(configured, dict):
        return None
    if "Sequence" in configured:
        # A sequence of scripts: ours is the one that is an hpctool entry script.
        for index, item in enumerate(configured.get("Sequence") or []):
            script = item.get("Script") if isinstance(item, dict) else None
            if isinstance(script, str) and script.endswith("/" + ENTRY_SCRIPT):
                return f"CustomActions.OnNodeConfigured.Sequence[{index}].Script", script
        return "CustomActions.OnNodeConfigured.Sequence", None
    script = configured.get("Script")
    return "CustomActions.OnNodeConfigured.Script", script if isinstance(script, str) else None


def config_scripts(config: Any, source: str = "config") -> list[ScriptCheck]:
    """Every node group's OnNodeConfigured Script: HeadNode, LoginNodes.Pools[*], SlurmQueues[*]."""
    if not isinstance(config, dict):
        raise ConfigError(f"{source}: the top level is not a mapping", "a ParallelCluster config is a YAML mapping")
    groups: list[tuple[str, Any]] = [("HeadNode", config.get("HeadNode"))]
    for pool in (config.get("LoginNodes") or {}).get("Pools") or []:
        groups.append((f"LoginNodes.Pools[{pool.get('Name', '?')}]", pool))
    for queue in (config.get("Scheduling") or {}).get("SlurmQueues") or []:
        groups.append((f"Scheduling.SlurmQueues[{queue.get('Name', '?')}]", queue))
    checks = []
    for path, group in groups:
        found = _script_of(group)
        if found is None:
            checks.append(ScriptCheck(f"{path}.CustomActions.OnNodeConfigured.Script", None))
        else:
            checks.append(ScriptCheck(f"{path}.{found[0]}", found[1]))
    return checks


def rewrite_scripts(config_path: Path, checks: list[ScriptCheck], new_uri: str) -> list[str]:
    """Point every entry-script URI of the config at ``new_uri``; returns the YAML paths changed.

    A text edit, not a YAML dump, so the file keeps its comments and layout; the result is parsed
    again and written only when every Script then names ``new_uri``.
    """
    stale = {c.found for c in checks if c.found and c.found != new_uri and c.found.endswith("/" + ENTRY_SCRIPT)}
    text = config_path.read_text()
    for old in sorted(stale, key=len, reverse=True):
        text = re.sub(rf"(?<![\w/.-]){re.escape(old)}(?![\w/.-])", new_uri, text)
    after = config_scripts(_parse(text, config_path), str(config_path))
    left = [c for c in after if c.found is not None and c.found.endswith("/" + ENTRY_SCRIPT) and c.found != new_uri]
    if left:
        raise ConfigError(f"{config_path}: could not rewrite {left[0].yaml_path} ({left[0].found})",
                          "edit that Script by hand")
    write_atomic(config_path, text)
    return [c.yaml_path for c in checks if c.found in stale]


def _parse(text: str, path: Path) -> Any:
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:  # only reachable if the rewrite broke the YAML
        raise ConfigError(f"{path}: the rewritten config is not valid YAML: {exc}", "edit the Scripts by hand") from exc


# --- the upload -----------------------------------------------------------------------------------

def upload_bundle(bucket: str, prefix: str, *, s3: S3 | None = None, root: Path | None = None,
                  config: str | Path | None = None, write: bool = False, dry_run: bool = False,
                  region: str | None = None, progress: Progress = quiet) -> UploadReport:
    """Upload the bundle (unless ``dry_run``) and check, or with ``write`` fix, the config's Scripts."""
    if not _BUCKET_NAME.match(bucket):
        raise UsageError(f"--bucket {bucket!r} is not an S3 bucket name", "give the bucket's name, without s3://")
    if ".." in prefix.split("/") or prefix.startswith("s3://"):
        raise UsageError(f"--prefix {prefix!r} is not a key prefix", "give a path such as hpctool or team/hpctool")
    files = collect_bundle(root)
    digest = bundle_digest(files)
    key_prefix = key_prefix_of(prefix, digest)
    report = UploadReport(bucket=bucket, key_prefix=key_prefix, digest=digest,
                          entry_uri=entry_uri(bucket, prefix, digest), files=len(files), dry_run=dry_run)

    # Read the config before any upload, so a wrong --config path fails first and costs nothing.
    config_path = Path(config) if config is not None else None
    if config_path is not None:
        report.config = str(config_path)
        report.scripts = config_scripts(load_yaml(config_path), str(config_path))

    s3 = s3 if s3 is not None else S3(region)
    manifest = manifest_of(files, digest)
    manifest_key = f"{key_prefix}/{MANIFEST}"
    if s3.get(bucket, manifest_key) == manifest:
        report.unchanged = [f.path for f in files]
        progress(f"s3://{bucket}/{key_prefix}/ already holds this bundle; nothing to send")
    else:
        remote = s3.etags(bucket, key_prefix + "/")
        for item in files:
            key = f"{key_prefix}/{item.path}"
            if remote.get(key) == item.md5:
                report.unchanged.append(item.path)
                continue
            report.uploaded.append(item.path)
            if not dry_run:
                progress(f"upload {item.path}")
                s3.put(bucket, key, item.data, _content_type(item.path))
        if not dry_run:
            s3.put(bucket, manifest_key, manifest, "application/json")  # last: marks the bundle complete

    if config_path is not None and write and not dry_run and not report.config_ok:
        report.rewritten = rewrite_scripts(config_path, report.scripts, report.entry_uri)
        report.scripts = config_scripts(load_yaml(config_path), str(config_path))
    return report
