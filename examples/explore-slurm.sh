#!/bin/bash
# One slice of a `watos explore` sweep per Slurm array task; `watos merge` joins them afterwards:
#   sbatch examples/explore-slurm.sh
#   watos merge slices/*.json --svg plots   # after the array finishes
# --prune-gap 0 makes the merged report equal a single run's (a design is skipped only when the
# designs its own slice solved strictly beat it); with a tolerance each slice prunes on its own.
#SBATCH --job-name=watos-explore
#SBATCH --array=0-7
#SBATCH --cpus-per-task=16
#SBATCH --time=01:00:00
set -euo pipefail
N=8
mkdir -p slices
watos explore hardware/spaces/paper.toml --model instances/gpt3-175b-wafer.toml \
  --prune-gap 0 --jobs "$SLURM_CPUS_PER_TASK" \
  --shard "$SLURM_ARRAY_TASK_ID/$N" --out "slices/$SLURM_ARRAY_TASK_ID.json" > /dev/null
