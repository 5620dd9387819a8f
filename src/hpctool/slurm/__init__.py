"""Slurm's client commands: every command line hpctool hands Slurm is built here.

- :mod:`hpctool.slurm.runner`: how a command runs (:class:`~hpctool.slurm.runner.LocalRunner` here;
  the SSH runner of :mod:`hpctool.remote` on a head node), one error text per failure;
- :mod:`hpctool.slurm.client`: :class:`~hpctool.slurm.client.Slurm`, the commands (sbatch, sacct,
  scontrol, sinfo, squeue, scancel) over a runner;
- :mod:`hpctool.slurm.parse`: pure parsers of their output, tested on pasted output.
"""
