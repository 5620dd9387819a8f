"""Render a cluster config from a values file and the Jinja2 template in ``cluster-configs/``.

Values are checked against ``cluster-configs/values-spec.yaml`` before rendering, so a missing or
unknown key is an error that names the key and the values file, not a Jinja2 message.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import jinja2
import yaml

from hpctool.cluster.queues import load_yaml
from hpctool.errors import ConfigError
from hpctool.shipped import path as shipped

CONFIGS_DIR = shipped("cluster-configs")
TEMPLATE = CONFIGS_DIR / "templates" / "cluster.yaml.j2"
SPEC_FILE = CONFIGS_DIR / "values-spec.yaml"
VALUES_DIR = CONFIGS_DIR / "values"

# `map`: a mapping of names to single values (str, int, bool), e.g. settings passed through to SSSD.
_TYPES: dict[str, type | tuple[type, ...]] = {"str": str, "int": int, "bool": bool, "list": list, "map": dict}
_SINGLE = (str, int, float, bool)


@dataclass(frozen=True)
class ValueSpec:
    key: str
    type: str
    doc: str
    required: bool
    default: Any = None


def load_spec(path: Path = SPEC_FILE) -> dict[str, ValueSpec]:
    """The documented values of the template, by dotted key (``queues.fpga[].name``)."""
    raw = load_yaml(path)
    return {key: ValueSpec(key=key, type=entry["type"], doc=entry["doc"], required="default" not in entry,
                           default=entry.get("default")) for key, entry in raw.items()}


def _type_ok(value: Any, type_name: str) -> bool:
    if type_name == "int":  # YAML `true` is a bool, which Python also counts as an int
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, _TYPES[type_name])


def resolve_values(values: Any, source: str, spec: dict[str, ValueSpec] | None = None) -> dict[str, Any]:
    """Check ``values`` against the spec and fill in defaults; errors name the key and ``source``.

    Hand-written rather than a JSON-schema library so that the message names the dotted key and
    the values file, and says what the key is for.
    """
    spec = spec if spec is not None else load_spec()
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise ConfigError(f"{source}: the values file is not a mapping", "write the values as `key: value` pairs")
    return _resolve_mapping(values, "", source, spec)


def _children(prefix: str, spec: dict[str, ValueSpec]) -> set[str]:
    return {key[len(prefix):].split(".")[0].removesuffix("[]") for key in spec if key.startswith(prefix)}


def _resolve_mapping(values: dict, prefix: str, source: str, spec: dict[str, ValueSpec]) -> dict[str, Any]:
    known = _children(prefix, spec)
    for key in values:
        if str(key) not in known:
            where = f"{prefix}{key}"
            raise ConfigError(
                f"{source}: unknown value `{where}`",
                f"known keys here: {', '.join(sorted(known))}; every key is described in {SPEC_FILE.name}",
            )
    resolved: dict[str, Any] = {}
    for name in sorted(known):
        key = f"{prefix}{name}"
        entry = spec.get(key)
        if entry is None:  # a group of keys, e.g. `queues.spot`
            group = values.get(name, {})
            if not isinstance(group, dict):
                raise ConfigError(f"{source}: `{key}` must be a mapping of its keys, not {type(group).__name__}",
                                  f"see the keys starting with `{key}.` in {SPEC_FILE.name}")
            resolved[name] = _resolve_mapping(group, f"{key}.", source, spec)
            continue
        if name not in values or values[name] is None:
            if entry.required:
                raise ConfigError(f"{source}: missing value `{key}` ({entry.doc})",
                                  f"add `{key}` to {source} or pass --set {key}=VALUE")
            value = entry.default
        else:
            value = values[name]
        if not _type_ok(value, entry.type):
            raise ConfigError(f"{source}: `{key}` must be {entry.type}, not {type(value).__name__} ({value!r})",
                              entry.doc)
        if entry.type == "map":
            _check_map(value, key, source, entry)
        if entry.type == "list" and any(k.startswith(f"{key}[].") for k in spec):
            items = []
            for index, item in enumerate(value):
                if not isinstance(item, dict):
                    raise ConfigError(f"{source}: `{key}[{index}]` must be a mapping", entry.doc)
                items.append(_resolve_mapping(item, f"{key}[].", f"{source} ({key}[{index}])", spec))
            value = items
        resolved[name] = value
    return resolved


def _check_map(value: dict, key: str, source: str, entry: ValueSpec) -> None:
    for name, item in value.items():
        if not isinstance(name, str) or not name:
            raise ConfigError(f"{source}: `{key}` has a key {name!r} that is not a name", entry.doc)
        if item is None or not isinstance(item, _SINGLE):
            what = "nothing" if item is None else f"a {type(item).__name__}"
            raise ConfigError(f"{source}: `{key}.{name}` is {what}; each value of `{key}` must be a single value "
                              "(text, number, true/false)", entry.doc)


def apply_overrides(values: Any, overrides: list[str], spec: dict[str, ValueSpec] | None = None) -> dict[str, Any]:
    """Apply ``KEY=VALUE`` overrides (``--set``); VALUE is read as YAML, so ``[a, b]`` is a list."""
    spec = spec if spec is not None else load_spec()
    values = json.loads(json.dumps(values or {}))  # a deep copy, so the caller's dict is untouched
    if not isinstance(values, dict):
        raise ConfigError("the values file is not a mapping", "write the values as `key: value` pairs")
    for override in overrides:
        key, sep, raw = override.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set {override!r}: not KEY=VALUE", "e.g. --set queues.spot.max_count=10")
        spec_key = ".".join(part.split("[")[0] + ("[]" if "[" in part else "") for part in key.split("."))
        parent = spec.get(spec_key.rpartition(".")[0])
        if spec_key not in spec and not (parent and parent.type == "map"):  # a map takes any name
            raise ConfigError(f"--set {key}: unknown value `{key}`",
                              f"every key is described in {SPEC_FILE.name} (e.g. queues.spot.max_count)")
        try:
            parsed = yaml.safe_load(raw) if raw else ""
        except yaml.YAMLError as exc:
            raise ConfigError(f"--set {key}: the value is not valid YAML", str(exc).splitlines()[0]) from exc
        _set_path(values, key, parsed)
    return values


def _set_path(values: dict, key: str, value: Any) -> None:
    node: Any = values
    parts = key.split(".")
    for position, part in enumerate(parts):
        name, _, index_text = part.partition("[")
        last = position == len(parts) - 1
        if index_text:
            index = index_text.rstrip("]")
            items = node.get(name)
            if not index.isdigit() or not isinstance(items, list) or int(index) >= len(items):
                raise ConfigError(f"--set {key}: `{name}` has no item {index}",
                                  f"the values file lists {len(items) if isinstance(items, list) else 0} item(s)")
            if last:
                items[int(index)] = value
            node = items[int(index)]
        elif last:
            node[name] = value
        else:
            node = node.setdefault(name, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {key}: `{name}` is not a mapping", "set a leaf key")


def _yaml_scalar(value: Any) -> str:
    """A scalar as YAML, quoted only where YAML needs it (so `yes` or `1.10` stay strings)."""
    if isinstance(value, (dict, list)):
        raise ConfigError(f"template expects a single value, got {type(value).__name__}: {value!r}",
                          "check the type of this value in values-spec.yaml")
    text = yaml.safe_dump(value, default_flow_style=True, width=10_000).strip()
    return text.removesuffix("\n...").removesuffix("...").strip()


def _yaml_flow(value: Any) -> str:
    return yaml.safe_dump(value, default_flow_style=True, width=10_000).strip()


def _s3_bucket(uri: str) -> str:
    parsed = urlparse(str(uri))
    if parsed.scheme != "s3" or not parsed.netloc:
        raise ConfigError(f"bootstrap.script_uri {uri!r} is not an s3:// URI",
                          "give the URI `hpctool bootstrap upload` printed: s3://BUCKET/PREFIX/...")
    return parsed.netloc


def _s3_bundle_keys(uri: str) -> str:
    """The S3Access KeyName of the bootstrap bundles: PREFIX/* of s3://BUCKET/PREFIX/<digest>/entry.
    Every bundle under the prefix (a rewrite by `bootstrap upload --write` changes only the digest),
    not the whole bucket, which is ParallelCluster's default when KeyName is left out."""
    _s3_bucket(uri)
    parts = urlparse(str(uri)).path.strip("/").split("/")
    digest = next((i for i, part in enumerate(parts) if re.fullmatch(r"[0-9a-f]{12}", part)), None)
    return "/".join([*parts[:digest], "*"]) if digest else "*"


def _environment() -> jinja2.Environment:
    # B701: renders YAML, not HTML; values are checked against values-spec.yaml
    env = jinja2.Environment(  # nosec B701
        loader=jinja2.FileSystemLoader(str(TEMPLATE.parent)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,  # YAML, not HTML: values are quoted by the yaml_scalar filter
    )
    env.filters.update(yaml_scalar=_yaml_scalar, yaml_flow=_yaml_flow, s3_bucket=_s3_bucket,
                       s3_bundle_keys=_s3_bundle_keys)
    return env


def render_values(values: dict[str, Any], source: str = "values", template: Path = TEMPLATE) -> str:
    """Render ``template`` with already-loaded values (checked against the spec first)."""
    resolved = resolve_values(values, source)
    try:
        text = _environment().get_template(template.name).render(**resolved)
    except jinja2.UndefinedError as exc:
        # The spec and the template disagree: a bug in cluster-configs/, not in the user's values.
        raise ConfigError(f"{template}: uses a value not in {SPEC_FILE.name}: {exc.message}",
                          f"declare it in {SPEC_FILE}") from exc
    try:
        yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: the rendered config is not valid YAML: {exc}",
                          "a value probably contains YAML syntax; quote it in the values file") from exc
    return text


def render(values_file: str | Path, overrides: list[str] | None = None) -> str:
    """Render the cluster config for ``values_file`` with ``--set`` overrides applied.

    A bare name that is not a file here (``dev``, ``prod``) is a shipped values file, so a wheel
    install can render without a checkout."""
    if isinstance(values_file, str) and "/" not in values_file and not Path(values_file).exists() \
            and (VALUES_DIR / f"{values_file}.yaml").is_file():
        values_file = VALUES_DIR / f"{values_file}.yaml"
    values = apply_overrides(load_yaml(values_file), overrides or [])
    return render_values(values, str(values_file))
