#!/usr/bin/env bash
# demo: spot interruption: a checkpointed job gets the notice, is requeued, resumes elsewhere, same result
set -euo pipefail
: "${HPCTOOL_DEMO_DIR:=$HOME/hpctool-demo}"; mkdir -p "$HPCTOOL_DEMO_DIR"
work=$(mktemp -d "$HPCTOOL_DEMO_DIR"/spot.XXXXXX)
queue=$(hpctool local status --json | python -c 'import json, sys
print(next(q["name"] for q in json.load(sys.stdin)["queues"] if q["spot"]))')

# A 30-step computation (0.5 s a step) on the spot queue, through submitit (hpctool.jobs).
job=$(python - "$work" "$queue" <<'PY'
import sys, time
from pathlib import Path
from hpctool import jobs
work, queue = Path(sys.argv[1]), sys.argv[2]
job = jobs.submit(jobs.CheckpointedSum(30, 0.5, str(work / "trace")), folder=work,
                  resources=jobs.Resources(queue=queue, time_min=30, name="demo-ckpt"))
while not (work / "trace").exists() or len((work / "trace").read_text().splitlines()) < 8:
    time.sleep(0.3)
print(job.job_id, job.paths.folder.parent)  # the submission's folder: submitit's %j folders inside
PY
)
read -r job jobs_dir <<< "$job"
node=$(squeue -h -j "$job" -o %N)
echo "job $job is running on $node and has done $(wc -l < "$work/trace") steps; EC2 sends the notice now"
hpctool local spot-notice "$node" --deadline 30 --wait

python - "$work" "$job" "$jobs_dir" <<'PY'
import sys
from pathlib import Path
import submitit
from hpctool import jobs
work, job_id, jobs_dir = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
result = submitit.SlurmJob(folder=jobs_dir / "%j", job_id=job_id).result()
runs = [tuple(map(int, line.split())) for line in (work / "trace").read_text().splitlines()]
resumed = min(step for restart, step in runs if restart > 0)
expected = jobs.CheckpointedSum(30, 0)()
print(f"resumed from its checkpoint at step {resumed}; each of the 30 steps ran once: "
      f"{sorted(s for _, s in runs) == list(range(30))}")
print(f"result {result}, uninterrupted run {expected}: {'the same' if result == expected else 'DIFFERENT'}")
sys.exit(0 if result == expected else 1)
PY
hpctool jobs "$job"
hpctool local spot-restore "$node"
rm -rf "$work"
