"""hpctool: a genomics HPC cluster on AWS ParallelCluster + Slurm, and a real local twin of it."""

__version__ = "0.1.0"
