"""What a cluster, a job, a workflow run and a cohort cost, from a dated price snapshot.

``prices`` (the snapshot and its refresh), ``estimate`` (a cluster config per hour and month),
``jobcost`` (pure: sacct records to per-job cost), ``jobs`` (accounting on a cluster or the
twin, grouped), ``plan`` (seeded Monte Carlo of a cohort under spot and on-demand strategies) and
``tiering`` (S3 and EFS lifecycle rules and what they save).
"""
