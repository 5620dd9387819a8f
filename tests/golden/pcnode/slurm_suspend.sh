#!/bin/sh
# Written by hpctool local up: slurmctld's SuspendProgram, ResumeFailProgram, ParallelCluster's slurm_suspend against the twin's
# EC2 and DynamoDB. Its starter may leave stdin, stdout and stderr closed (slurmctld does): open
# them first, or the first file the program opens becomes its fd 0-2.
exec </dev/null >>/root/.local/share/hpctool/log/parallelcluster/slurm_suspend.stdio.log 2>&1
unset AWS_PROFILE AWS_DEFAULT_PROFILE AWS_SESSION_TOKEN AWS_SECURITY_TOKEN AWS_ROLE_ARN AWS_WEB_IDENTITY_TOKEN_FILE AWS_CONTAINER_CREDENTIALS_FULL_URI AWS_CONTAINER_CREDENTIALS_RELATIVE_URI AWS_CA_BUNDLE
export CONFIG_FILE=/root/.local/share/hpctool/etc/parallelcluster/slurm_plugin/parallelcluster_slurm_suspend.conf
export SLURM_BINARIES_DIR=/root/.local/share/hpctool/pcnode/bin
export AWS_ENDPOINT_URL=http://10.210.7.1:16900
export AWS_ACCESS_KEY_ID=hpctool-twin
export AWS_SECRET_ACCESS_KEY=hpctool-twin
export AWS_DEFAULT_REGION=us-east-1
export AWS_CONFIG_FILE=/dev/null
export AWS_SHARED_CREDENTIALS_FILE=/dev/null
export AWS_EC2_METADATA_DISABLED=true
export PATH=/root/.local/share/hpctool/pcnode/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
# slurm_plugin.suspend:main (what the venv's slurm_suspend runs), with the twin's log as the root
# handler first: main() logs to /var/log/parallelcluster before it reads its config.
exec /opt/hpctool/.tools/pcnode/bin/python -c 'import logging, sys; logging.basicConfig(filename=sys.argv.pop(1), level=logging.INFO, format="%(asctime)s - %(process)d - [%(name)s:%(funcName)s] - %(levelname)s - %(message)s"); sys.argv[0] = "slurm_suspend"; from slurm_plugin.suspend import main; sys.exit(main())' /root/.local/share/hpctool/log/parallelcluster/slurm_suspend.log "$@"
