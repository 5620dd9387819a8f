"""The Snakemake workflows: :mod:`~hpctool.workflow.launch` runs them, :mod:`~hpctool.workflow.rules`
maps each Slurm job of a run back to its rule, :mod:`~hpctool.workflow.snakemake_main` is Snakemake
as hpctool starts it (``python -m hpctool.workflow.snakemake_main``)."""
