"""The local twin: a real Slurm on this one machine with the partitions and nodes of a
ParallelCluster config, static and dynamic, spot interruptions and capacity faults included.

Modules, each one job:

- :mod:`~hpctool.twin.layout`: nodes, ports and timings planned from a config (pure);
- :mod:`~hpctool.twin.conf`: slurm.conf and slurmdbd.conf rendered from a layout (pure);
- :mod:`~hpctool.twin.daemons`: spawning, waiting for and stopping daemon processes;
- :mod:`~hpctool.twin.accounting`: MariaDB, slurmdbd's database, associations;
- :mod:`~hpctool.twin.core`: start or heal, status, stop (:class:`core.Twin`);
- :mod:`~hpctool.twin.power`: ResumeProgram/SuspendProgram of dynamic nodes;
- :mod:`~hpctool.twin.capacity`: injected capacity and boot faults;
- :mod:`~hpctool.twin.manager`: the cluster manager loop (clustermgtd's recoveries);
- :mod:`~hpctool.twin.imds`, :mod:`~hpctool.twin.spot`: the EC2 side of spot interruptions;
- :mod:`~hpctool.twin.identity`: slapd and SSSD of a config with a DirectoryService, its users;
- :mod:`~hpctool.twin.pcnode`: ParallelCluster's own node daemons against moto (``--scaling parallelcluster``).

:class:`Twin` here is the core twin with its standard services plugged in.
"""

from __future__ import annotations

from pathlib import Path

from hpctool.twin import core
from hpctool.twin.core import default_home
from hpctool.twin.image import NodeImage
from hpctool.twin.layout import TwinLayout, TwinNode
from hpctool.twin.machine import check_prerequisites

__all__ = ["Twin", "TwinLayout", "TwinNode", "check_prerequisites", "default_home"]


class Twin(core.Twin):
    """The twin with its services: spot nodes' IMDS emulators and handlers, the cluster manager."""

    def __init__(self, home: Path | str | None = None, progress: core.Progress = core._quiet,
                 image: NodeImage | None = None) -> None:
        # Imported here, not at the top: `python -m hpctool.twin.spot` / `.manager` import this
        # package first, and must not find themselves imported already.
        from hpctool.twin.identity import IdentityService
        from hpctool.twin.manager import ManagerService
        from hpctool.twin.pcnode import PcnodeService
        from hpctool.twin.spot import SpotServices

        # The directory first: a node's jobs may run as its users.
        super().__init__(home, progress, services=[IdentityService(), SpotServices(), ManagerService(),
                                                   PcnodeService()], image=image)
