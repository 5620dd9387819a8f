"""The package's shape, as the design says: dependencies point one way
(cli -> features -> (slurm, aws) -> errors), one module imports boto3, one runs Slurm's client
commands, and the CLI holds no subprocess or AWS code of its own."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "hpctool"
MODULES = sorted(p for p in PACKAGE.rglob("*.py"))
SLURM_CLIENTS = {"sbatch", "squeue", "sacct", "sinfo", "scontrol", "scancel", "sacctmgr", "srun", "salloc"}


DOC = PACKAGE.parents[1] / "docs" / "architecture.md"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _importers(prefix: str) -> set[str]:
    return {_module_name(p) for p in MODULES
            if any(name == prefix or name.startswith(prefix + ".") for name in _imports(p))}


def test_only_hpctool_aws_imports_boto3():
    assert _importers("boto3") | _importers("botocore") <= {"hpctool.aws"}


def test_only_hpctool_remote_connection_imports_fabric_and_paramiko():
    assert _importers("fabric") == {"hpctool.remote.connection"}
    assert _importers("paramiko") <= {"hpctool.remote.connection"}


def test_tests_import_no_test_module_nor_conftest():
    """Shared test helpers live in tests/support/; a test module or conftest is never imported."""
    root = PACKAGE.parents[1]
    offenders = [f"{path.relative_to(root)}: {name}"
                 for path in [*(root / "tests").rglob("*.py"), *(root / "benchmarks").glob("*.py")]
                 for name in _imports(path)
                 if name.split(".")[0] == "conftest" or name.split(".")[0].startswith("test_")]
    assert offenders == []


def test_errors_depend_on_nothing_of_ours():
    assert not {n for n in _imports(PACKAGE / "errors.py") if n.startswith("hpctool")}


@pytest.mark.parametrize("low", ["errors", "slurm/parse", "slurm/associations", "slurm/runner", "slurm/client", "aws"])
def test_low_layers_import_only_errors_and_parsers(low):
    ours = {n for n in _imports(PACKAGE / f"{low}.py") if n.startswith("hpctool.")}
    allowed = ("hpctool.errors", "hpctool.slurm.parse", "hpctool.slurm.associations", "hpctool.slurm.runner")
    assert all(n.startswith(allowed) for n in ours), ours


def test_nothing_outside_the_cli_imports_the_cli():
    outside = {_module_name(p) for p in MODULES if "cli" not in p.relative_to(PACKAGE).parts}
    assert not (_importers("hpctool.cli") & outside)


def test_the_cli_runs_no_processes_and_calls_no_aws():
    for path in (PACKAGE / "cli").glob("*.py"):
        assert not (_imports(path) & {"subprocess", "boto3", "os.system"}), path.name


def _slurm_argvs(path: Path) -> list[str]:
    """List literals that start with a Slurm client command: command lines for Slurm."""
    tree = ast.parse(path.read_text())
    choices = {id(k.value) for k in ast.walk(tree) if isinstance(k, ast.keyword) and k.arg == "choices"}
    return [f"{path.relative_to(PACKAGE)}:{node.lineno} {node.elts[0].value} ..."
            for node in ast.walk(tree)
            if isinstance(node, ast.List) and id(node) not in choices and node.elts
            and isinstance(node.elts[0], ast.Constant) and node.elts[0].value in SLURM_CLIENTS]


def test_slurm_command_lines_are_built_only_in_hpctool_slurm():
    """Every Slurm command line hpctool builds is built by hpctool.slurm.client (the twin's own
    administration aside, which hands its argv to Slurm.run); `hpctool remote` runs the same client
    over SSH."""
    offenders = [argv for path in MODULES if path.parent.name not in {"slurm", "twin"}
                 for argv in _slurm_argvs(path)]
    assert offenders == []


def test_slurm_client_commands_are_run_only_through_hpctool_slurm():
    """Outside hpctool.slurm a Slurm argv is never handed to subprocess directly."""
    offenders = []
    for path in MODULES:
        if path.parent.name == "slurm":
            continue
        tree = ast.parse(path.read_text())
        for call in (n for n in ast.walk(tree) if isinstance(n, ast.Call)):
            func = ast.unparse(call.func)
            if not func.startswith("subprocess."):
                continue
            argv = call.args[0] if call.args else None
            if isinstance(argv, ast.List) and argv.elts and isinstance(argv.elts[0], ast.Constant) \
                    and argv.elts[0].value in SLURM_CLIENTS:
                offenders.append(f"{path.relative_to(PACKAGE)}:{call.lineno} {func}({argv.elts[0].value} ...)")
    assert offenders == []


# Layers above the lowest: who may import whom, module by module. A module missing here is new:
# give it a row (its allowed imports of ours).
LAYERS = {
    "hpctool.atomic": {"hpctool.errors"},
    "hpctool.polling": set(),
    "hpctool.progress": set(),
    "hpctool.home": set(),
    "hpctool.remote.connection": {"hpctool.errors"},
    "hpctool.remote.runner": {"hpctool.remote.connection", "hpctool.slurm.runner"},
    "hpctool.jobs.table": {"hpctool.errors", "hpctool.slurm.client", "hpctool.slurm.parse"},
    "hpctool.configs.checks.registry": {"hpctool.configs.findings", "hpctool.configs.instances"},
    "hpctool.configs.update_plan": set(),  # pure words over what configs.diff found
    "hpctool.configs.diff": {"hpctool.configs.offline", "hpctool.configs.schema", "hpctool.configs.update_plan",
                             "hpctool.configs.validate", "hpctool.errors"},
    "hpctool.shipped": {"hpctool.errors"},
    "hpctool.cluster.config_file": {"hpctool.errors"},
    "hpctool.cluster.queues": {"hpctool.errors", "hpctool.shipped", "hpctool.cluster.config_file"},
    "hpctool.twin.layout": {"hpctool.cluster.queues", "hpctool.errors"},
    "hpctool.twin.conf": {"hpctool.twin.layout"},
    "hpctool.twin.daemons": {"hpctool.errors", "hpctool.polling"},
    "hpctool.twin.accounting": {"hpctool.atomic", "hpctool.errors", "hpctool.slurm.client", "hpctool.twin.daemons",
                                "hpctool.twin.conf", "hpctool.twin.layout"},
    "hpctool.twin.image": {"hpctool.atomic", "hpctool.errors"},
    "hpctool.twin.hosts": {"hpctool.errors", "hpctool.polling", "hpctool.twin.daemons"},
    "hpctool.twin.machine": {"hpctool.atomic", "hpctool.errors", "hpctool.shipped", "hpctool.twin.daemons"},
    "hpctool.twin.access": {"hpctool.atomic", "hpctool.errors", "hpctool.twin.daemons"},
    "hpctool.twin.head": {"hpctool.atomic", "hpctool.errors", "hpctool.slurm.client", "hpctool.twin.access",
                          "hpctool.twin.accounting", "hpctool.twin.conf", "hpctool.twin.daemons", "hpctool.twin.hosts",
                          "hpctool.twin.image", "hpctool.twin.layout"},
    "hpctool.twin.capacity": {"hpctool.atomic", "hpctool.errors", "hpctool.slurm.parse", "hpctool.twin.conf",
                              "hpctool.twin.layout"},
    # The head node and hosts are the core's parts; the instance-store lookup reads ParallelCluster's
    # instance data through the config feature's catalogue.
    "hpctool.twin.nodes": {"hpctool.slurm.client", "hpctool.slurm.parse", "hpctool.twin.daemons", "hpctool.twin.machine",
                           "hpctool.twin.conf", "hpctool.twin.head", "hpctool.twin.hosts", "hpctool.twin.identity", "hpctool.twin.layout", "hpctool.configs.instances"},
    "hpctool.twin.core": {"hpctool.atomic", "hpctool.cluster.queues", "hpctool.errors", "hpctool.polling", "hpctool.slurm.client",
                          "hpctool.slurm.parse", "hpctool.twin.daemons", "hpctool.twin.accounting",
                          "hpctool.twin.conf", "hpctool.twin.layout", "hpctool.twin.head", "hpctool.twin.hosts",
                          "hpctool.twin.image", "hpctool.twin.machine", "hpctool.home", "hpctool.twin.nodes",
                          # the pure renderers of slurm.conf's programs when ParallelCluster's daemons scale
                          "hpctool.twin.pcnode_conf", "hpctool.twin.pcnode_programs"},
    "hpctool.twin.imds": set(),
    # The directory on the twin's hosts (a service of the twin) and its users with their Slurm associations.
    "hpctool.twin.identity": {"hpctool.atomic", "hpctool.errors", "hpctool.slurm.client", "hpctool.twin.daemons",
                              "hpctool.twin.conf", "hpctool.twin.directory", "hpctool.twin.directory_run",
                              "hpctool.twin.directory_users", "hpctool.twin.head", "hpctool.twin.hosts",
                              "hpctool.twin.image", "hpctool.twin.layout", "hpctool.twin.usernames", "hpctool.twin.tls"},
    # The directory: renderers, names and certificates below; runners over an on-host callable.
    "hpctool.twin.usernames": {"hpctool.errors"},
    "hpctool.twin.tls": {"hpctool.atomic"},
    "hpctool.twin.directory": {"hpctool.errors"},
    "hpctool.twin.directory_run": {"hpctool.atomic", "hpctool.errors", "hpctool.twin.daemons",
                                   "hpctool.twin.directory", "hpctool.twin.tls"},
    "hpctool.twin.directory_users": {"hpctool.errors", "hpctool.twin.daemons", "hpctool.twin.directory",
                                     "hpctool.twin.directory_run", "hpctool.twin.usernames"},
    "hpctool.twin.pcnode_conf": {"hpctool.cluster.queues", "hpctool.twin.conf", "hpctool.twin.layout"},
    # The twin's moto: seeded through hpctool.aws (boto3 stays there), run as the twin's daemons are.
    "hpctool.twin.ec2": {"hpctool.aws", "hpctool.atomic", "hpctool.cluster.queues", "hpctool.errors",
                         "hpctool.twin.daemons", "hpctool.twin.ec2_health", "hpctool.twin.fleet_status",
                         "hpctool.twin.hosts",
                         "hpctool.twin.layout", "hpctool.twin.pcnode_conf"},
    "hpctool.twin.fleet_status": {"hpctool.aws", "hpctool.atomic", "hpctool.errors", "hpctool.twin.pcnode_conf"},
    "hpctool.twin.instances": {"hpctool.aws", "hpctool.errors", "hpctool.twin.pcnode_conf"},
    "hpctool.twin.pcnode_programs": {"hpctool.aws", "hpctool.twin.pcnode_conf"},
    "hpctool.twin.ec2_health": {"hpctool.atomic", "hpctool.errors"},
}


def _ours(module: str) -> set[str]:
    path = PACKAGE.joinpath(*module.split(".")[1:]).with_suffix(".py")
    if not path.exists():
        path = PACKAGE.joinpath(*module.split(".")[1:], "__init__.py")
    modules = {_module_name(p) for p in MODULES}
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            # `from hpctool.twin import daemons` uses the module hpctool.twin.daemons, not the package.
            subs = {f"{node.module}.{a.name}" for a in node.names}
            found.update(subs & modules if subs <= modules else subs | {node.module})
    return {n for n in found if n in modules and n.startswith("hpctool.")} - {module}


@pytest.mark.parametrize("module", sorted(LAYERS))
def test_each_layer_imports_only_what_is_below_it(module):
    assert _ours(module) <= LAYERS[module] | {"hpctool.twin"}, _ours(module) - LAYERS[module]


def test_the_twin_core_knows_no_service_and_features_know_no_twin():
    assert not _ours("hpctool.twin.core") & {"hpctool.twin.spot", "hpctool.twin.manager", "hpctool.twin.power",
                                             "hpctool.twin.imds", "hpctool.twin"}
    for feature in ("jobs", "workflow", "vcf", "remote", "bootstrap_upload"):
        paths = [PACKAGE / f"{feature}.py"] if (PACKAGE / f"{feature}.py").exists() else (PACKAGE / feature).rglob("*.py")
        twin_imports = {n for p in paths for n in _imports(p) if n.startswith("hpctool.twin")}
        assert not twin_imports, f"{feature} imports the twin: {twin_imports}"


def _short(module: str) -> str:
    return module.removeprefix("hpctool.")


def _has_code(path: Path) -> bool:
    """A module, or a package whose __init__ holds more than its docstring."""
    body = ast.parse(path.read_text()).body
    docstring_only = len(body) == 1 and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
    return path.name != "__init__.py" or not docstring_only


def test_every_module_has_a_row_in_docs_architecture():
    """docs/architecture.md describes the code as it is: a row per module, none for a module gone."""
    rows = re.findall(r"^\| `([\w.]+)` \|", DOC.read_text(), re.MULTILINE)
    assert len(rows) == len(set(rows)), "a module has two rows"
    needed = {_short(_module_name(p)) for p in MODULES if _has_code(p)}
    existing = {_short(_module_name(p)) for p in MODULES}
    assert sorted(needed - set(rows)) == [], "modules without a row in docs/architecture.md"
    assert sorted(set(rows) - existing) == [], "rows in docs/architecture.md for modules that do not exist"
