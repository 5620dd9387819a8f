"""A cluster's ParallelCluster config as hpctool reads it: :mod:`~hpctool.cluster.config_file`
(the file, read safely: encodings, duplicate keys, aliases and size bounded) and
:mod:`~hpctool.cluster.queues` (its ``SlurmQueues`` as a small queue model shared by the twin, the
workflow, notebook and cost features)."""
