"""The Slurm accounting database as infrastructure: the CloudFormation template hpctool ships
(``cluster-configs/stacks/accounting-database.yaml``), its parameters' defaults, and how its
outputs become the values of the cluster template.

The template is a file people read and review, shipped as it is (no rendering): the admin deploys
it with ``aws cloudformation deploy``; see docs/accounting.md.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from hpctool.atomic import write_atomic
from hpctool.errors import ConfigError
from hpctool.shipped import path as shipped

TEMPLATE_FILE = shipped("cluster-configs") / "stacks" / "accounting-database.yaml"

# The stack's outputs and the cluster values they go to (values-spec.yaml).
OUTPUT_VALUES = {
    "Uri": "accounting.database_uri",
    "UserName": "accounting.user_name",
    "PasswordSecretArn": "accounting.password_secret_arn",
}
# The stack's parameter whose value is also a cluster value.
PARAMETER_VALUES = {"HeadNodeSecurityGroupId": "accounting.head_node_security_group_id"}


class _CfnLoader(yaml.SafeLoader):
    """Reads CloudFormation's short-form tags (``!Ref X``) as their long form (``{"Ref": X}``)."""


def _intrinsic(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    name = "Ref" if suffix == "Ref" else f"Fn::{suffix}"
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
        if suffix == "GetAtt":
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {name: value}


_CfnLoader.add_multi_constructor("!", _intrinsic)


def template_text(path: Path = TEMPLATE_FILE) -> str:
    """The template as shipped."""
    try:
        return path.read_text()
    except OSError as error:
        raise ConfigError(f"cannot read the accounting database template {path}: {error.strerror}",
                          "reinstall hpctool: the template ships with it") from error


def load_template(path: Path = TEMPLATE_FILE) -> dict[str, Any]:
    """The template parsed, intrinsic functions in their long form."""
    # B506: _CfnLoader is a SafeLoader with CloudFormation's tags only
    return yaml.load(template_text(path), Loader=_CfnLoader)  # nosec B506


def parameter_defaults(path: Path = TEMPLATE_FILE) -> dict[str, Any]:
    """Each parameter's default (parameters without one are left out)."""
    return {name: spec["Default"] for name, spec in load_template(path)["Parameters"].items() if "Default" in spec}


def write_template(out: Path) -> None:
    """Write the template to ``out`` atomically."""
    write_atomic(out, template_text())


def values_from_stack(outputs: dict[str, str], parameters: dict[str, str]) -> dict[str, Any]:
    """The cluster values (nested, as a values file has them) from a deployed stack's outputs and
    parameters; an output the stack lacks is an error naming it."""
    missing = sorted(set(OUTPUT_VALUES) - set(outputs))
    if missing:
        raise ConfigError(f"the stack has no output {', '.join(missing)}",
                          "deploy hpctool's accounting database template (`hpctool config database-template`)")
    flat = {key: outputs[name] for name, key in OUTPUT_VALUES.items()}
    flat |= {key: parameters[name] for name, key in PARAMETER_VALUES.items() if name in parameters}
    nested: dict[str, Any] = {}
    for key, value in flat.items():
        group, name = key.split(".")
        nested.setdefault(group, {})[name] = value
    return nested


def values_from_describe_stacks(text: str, source: str = "stack description") -> dict[str, Any]:
    """The cluster values from what ``aws cloudformation describe-stacks --stack-name NAME`` prints
    (one stack), read offline."""
    try:
        stacks = json.loads(text)["Stacks"]
        stack = stacks[0]
        outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
        parameters = {p["ParameterKey"]: p["ParameterValue"] for p in stack.get("Parameters", [])}
    except (ValueError, KeyError, IndexError, TypeError) as error:
        raise ConfigError(f"{source}: not the JSON of `aws cloudformation describe-stacks` ({error})",
                          "save it with: aws cloudformation describe-stacks --stack-name NAME > stack.json") from error
    if len(stacks) != 1:
        raise ConfigError(f"{source}: {len(stacks)} stacks described", "describe one: --stack-name NAME")
    return values_from_stack(outputs, parameters)


def values_snippet(values: dict[str, Any]) -> str:
    """The values as the YAML block to paste into a values file."""
    return yaml.safe_dump(values, sort_keys=False)
