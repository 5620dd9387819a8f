"""Notebooks as Slurm jobs: JupyterHub + batchspawner for a cluster (head node) and for the twin.

``config`` renders ``jupyterhub_config.py`` and the sudoers rule from the queue model (pure);
``spawner`` is the SlurmSpawner subclass that runs inside JupyterHub; ``hub`` runs the hub on the
local twin.
"""
