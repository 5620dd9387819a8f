"""slurm.conf's ResumeProgram, SuspendProgram and ResumeFailProgram when ParallelCluster's own
``slurm_resume`` and ``slurm_suspend`` (aws-parallelcluster-node, in ``.tools/pcnode``) do the
twin's scaling: shell wrappers, rendered by pure functions (golden files in
``tests/golden/pcnode/``), that set up what the programs need and exec them.

What ParallelCluster's programs take from their environment (3.16.1):

- ``CONFIG_FILE``: the config path (``os.environ.get("CONFIG_FILE", <the fixed
  /etc/parallelcluster/slurm_plugin/parallelcluster_<program>.conf>)`` in each ``main``); no
  command-line option for it;
- ``SLURM_BINARIES_DIR``: where ``scontrol`` and ``sinfo`` are (``common.schedulers.slurm_commands``,
  read at import; ``/opt/slurm/bin`` otherwise), called as ``sudo $SLURM_BINARIES_DIR/scontrol``;
  its ``../etc`` is the Slurm folder with ``pcluster/`` (the partition map): the twin's
  ``pcnode/bin`` (links to its Slurm clients) beside ``pcnode/etc`` (a link to its ``etc``);
- boto3's own variables: the endpoint (``AWS_ENDPOINT_URL``), credentials, region;
- ``SLURM_RESUME_FILE`` (resume only), set by slurmctld: passed through untouched.

ParallelCluster uses ``slurm_suspend`` as ResumeFailProgram too (the cookbook's slurm.conf): it only
logs and checks clustermgtd's heartbeat; clustermgtd ends the instances. So two wrappers serve the
three keys (:data:`PROGRAMS`).

Each ``main`` first calls ``logging.basicConfig(filename="/var/log/parallelcluster/<program>.log")``,
which raises where that folder is missing. The wrapper therefore starts the same ``main`` (the venv's
console script's entry point, :data:`ENTRY_POINTS`) from a line of Python that installs a root
handler on the twin's log first: ParallelCluster's basicConfig is then a no-op, its first lines
land in the twin's log, and its logging config takes over as on a cluster.
"""

from __future__ import annotations

import shlex
from pathlib import Path

from hpctool import aws
from hpctool.twin.pcnode_conf import REGION, PcnodePaths

# slurm.conf key -> the ParallelCluster program slurmctld runs for it (as the cookbook's slurm.conf).
PROGRAMS = {"ResumeProgram": "slurm_resume", "SuspendProgram": "slurm_suspend", "ResumeFailProgram": "slurm_suspend"}
# The console scripts' entry points (aws_parallelcluster_node's entry_points.txt; a test checks them).
# slurm_fleet_status_manager is no slurm.conf program: the fleet status manager side
# (hpctool.twin.fleet_status.manage_fleet_status) runs its wrapper with ``-cf <status file>``.
# clustermgtd is no slurm.conf program either: the twin runs its wrapper as a daemon (hpctool.twin.pcnode).
ENTRY_POINTS = {"slurm_resume": "slurm_plugin.resume:main", "slurm_suspend": "slurm_plugin.suspend:main",
                "slurm_fleet_status_manager": "slurm_plugin.fleet_status_manager:main",
                "clustermgtd": "slurm_plugin.clustermgtd:main"}
_ROLES = {"slurm_fleet_status_manager": "compute fleet stop/start", "clustermgtd": "the cluster manager daemon"}
# Settings of the caller's that must never reach the daemons: a profile or real keys would make
# boto3 sign for, or even reach, a real account.
_UNSET = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_ROLE_ARN",
          "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
          "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CA_BUNDLE")
_SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# ParallelCluster's own log line format (its logging configs).
_LOG_FORMAT = "%(asctime)s - %(process)d - [%(name)s:%(funcName)s] - %(levelname)s - %(message)s"


def program_path(paths: PcnodePaths, program: str) -> Path:
    """Where the wrapper goes: the twin's ``/opt/parallelcluster/scripts/slurm/<program>``."""
    return paths.twin.etc / "parallelcluster" / "scripts" / "slurm" / program


def stdio_log(paths: PcnodePaths, program: str) -> Path:
    """What the program writes outside its logging (a traceback before logging is set up)."""
    return paths.log_dir / f"{program}.stdio.log"


def slurm_conf_programs(paths: PcnodePaths) -> dict[str, Path]:
    """slurm.conf's three keys and the wrappers they name."""
    return {key: program_path(paths, program) for key, program in PROGRAMS.items()}


def program_env(paths: PcnodePaths, program: str, endpoint: str) -> dict[str, str]:
    """The variables the wrapper exports for ``program`` (in a fixed order)."""
    return {
        "CONFIG_FILE": str(paths.conf(program)),
        "SLURM_BINARIES_DIR": str(paths.path_dir),
        "AWS_ENDPOINT_URL": endpoint,
        **aws.local_credentials_env(),
        "AWS_DEFAULT_REGION": REGION,
        # No ~/.aws of the user's, and no instance metadata lookups (on a host with the twin's IMDS,
        # botocore would otherwise ask it for credentials it must not need).
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
        "AWS_EC2_METADATA_DISABLED": "true",
        # The daemons' own folder first: their `sudo`, the fleet status scripts clustermgtd runs,
        # and the twin's Slurm clients (they run `sudo .../scontrol` and plain `sinfo`).
        "PATH": f"{paths.path_dir}:{_SYSTEM_PATH}",
    }


def _bootstrap(program: str) -> str:
    module, function = ENTRY_POINTS[program].split(":")
    return (f'import logging, sys; logging.basicConfig(filename=sys.argv.pop(1), level=logging.INFO, '
            f'format="{_LOG_FORMAT}"); sys.argv[0] = "{program}"; '
            f"from {module} import {function}; sys.exit({function}())")


def render_program(program: str, paths: PcnodePaths, pcnode_venv: Path, endpoint: str) -> str:
    """The wrapper slurmctld runs for ``program`` (``slurm_resume`` or ``slurm_suspend``; or the
    twin's fleet status side for ``slurm_fleet_status_manager``), with
    ``pcnode_venv`` the daemons' virtual environment and ``endpoint`` the twin's moto."""
    keys = ", ".join(key for key, name in PROGRAMS.items() if name == program)
    role = f"slurmctld's {keys}" if keys else _ROLES[program]
    q = shlex.quote
    exports = "".join(f"export {name}={q(value)}\n" for name, value in program_env(paths, program, endpoint).items())
    return (
        "#!/bin/sh\n"
        f"# Written by hpctool local up: {role}, ParallelCluster's {program} against the twin's\n"
        "# EC2 and DynamoDB. Its starter may leave stdin, stdout and stderr closed (slurmctld does): open\n"
        "# them first, or the first file the program opens becomes its fd 0-2.\n"
        f"exec </dev/null >>{q(str(stdio_log(paths, program)))} 2>&1\n"
        f"unset {' '.join(_UNSET)}\n"
        f"{exports}"
        f"# {ENTRY_POINTS[program]} (what the venv's {program} runs), with the twin's log as the root\n"
        "# handler first: main() logs to /var/log/parallelcluster before it reads its config.\n"
        f"exec {q(str(pcnode_venv / 'bin' / 'python'))} -c {q(_bootstrap(program))} "
        f'{q(str(paths.log(program)))} "$@"\n'
    )


def render_programs(paths: PcnodePaths, pcnode_venv: Path, endpoint: str) -> dict[Path, str]:
    """The wrappers by path (``up`` writes them executable, with hpctool.atomic)."""
    return {program_path(paths, program): render_program(program, paths, pcnode_venv, endpoint)
            for program in ENTRY_POINTS}


def render_power_shim(action: str, paths: PcnodePaths, anchor_pid_file: Path) -> str:
    """The twin's ``bin/resume`` or ``bin/suspend``, which slurm.conf names, when ParallelCluster's
    programs scale the twin: slurmctld runs it in the head node's namespaces and root, where the
    daemons' venv is not; it enters the machine anchor's (as an EC2 call leaves the instance) and
    runs the wrapper. ``suspend`` serves ResumeFailProgram too, as on a cluster."""
    program = {"resume": "slurm_resume", "suspend": "slurm_suspend"}[action]
    q = shlex.quote
    return (
        "#!/bin/sh\n"
        f"# Written by hpctool local up: slurmctld's {action} program, ParallelCluster's {program}.\n"
        f"exec </dev/null >>{q(str(stdio_log(paths, program)))} 2>&1\n"
        f'exec nsenter -t "$(cat {q(str(anchor_pid_file))})" -m -n -u -r -w -- '
        f'{q(str(program_path(paths, program)))} "$@"\n'
    )


def render_sudo_shim() -> str:
    """The daemons call ``sudo scontrol ...``; the twin runs them as root already, and the image
    has no sudo on the machine's side. First on their PATH only, never on a user's."""
    return "#!/bin/sh\n# Written by hpctool local up: ParallelCluster's daemons run as root on the twin.\nexec \"$@\"\n"


def slurm_links(paths: PcnodePaths) -> dict[Path, Path]:
    """The links that make ``pcnode/bin`` ParallelCluster's ``/opt/slurm/bin`` and ``pcnode/etc`` its
    ``/opt/slurm/etc``: link -> target."""
    links = {paths.path_dir / client: paths.twin.bin / "slurm" / client for client in ("scontrol", "sinfo", "squeue")}
    links[paths.path_dir.parent / "etc"] = paths.twin.etc
    return links
