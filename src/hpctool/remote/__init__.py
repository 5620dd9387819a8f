"""`hpctool remote`: a cluster's head node from a laptop, over one SSH connection.

:mod:`~hpctool.remote.connection` is the SSH layer (the one fabric/paramiko user);
:mod:`~hpctool.remote.runner` runs Slurm's commands over it for :class:`hpctool.slurm.client.Slurm`;
:mod:`~hpctool.remote.session` is the feature logic, with :mod:`~hpctool.remote.manifest`,
:mod:`~hpctool.remote.transfer`, :mod:`~hpctool.remote.state`, :mod:`~hpctool.remote.germline`,
:mod:`~hpctool.remote.notebooks` and :mod:`~hpctool.remote.nodes` beside it.
"""
