"""Cluster configs: render the Jinja2 templates of ``cluster-configs/`` and validate ParallelCluster configs.

Modules: :mod:`.render` (values + template -> config), :mod:`hpctool.cluster.config_file` (reading a config file, bounded; shared with the twin),
:mod:`.offline` (no network during validation), :mod:`.findings` (what a check reports, levels),
:mod:`.schema` (ParallelCluster's own schema), :mod:`.checks` (hpctool's cross-checks),
:mod:`.instances` (instance-type facts from moto's data), :mod:`.legacy` (configs of older
releases), :mod:`.deep` (ParallelCluster's full validators against moto) and :mod:`.validate`
(runs them all).
"""
