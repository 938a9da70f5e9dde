#!/bin/bash
# The paper's gate ablation on the shapes world (issue 40, item 6): one DAMSM, then four
# GANs of the same recipe at equal steps, each judged on held-out captions.
# Usage: [SEED=1] research/gates/run.sh RUNS_FOLDER   (one thread; about 1.5 hours on the
# dev VM; with SEED, the four arms again from that seed, in folders ARM-seedN)
set -euo pipefail
R=${1:?usage: run.sh RUNS_FOLDER}
STEPS=${STEPS:-2500}
SEED=${SEED:-0}
SUFFIX=$( [ "$SEED" = 0 ] || echo "-seed$SEED" )
DMGAN=${DMGAN:-dmgan}
export OMP_NUM_THREADS=1
W="--set data.shapes_partial_share=0.5 --set data.shapes_plural_share=0.5 --set data.shapes_held_out=true"
mkdir -p "$R"
if [ ! -f "$R/damsm/damsm.pt" ]; then
  $DMGAN pretrain-damsm --preset shapes32 --data shapes --out "$R/damsm" --device cpu --workers 0 \
    --max-steps "${DAMSM_STEPS:-2500}" --minutes 15 --target-r1 0.95 --target-near-miss 0.92 $W
fi
arm() {  # NAME, then the arm's own switches
  local name=$1$SUFFIX; shift
  SEED=$SEED "$(dirname "$0")/arm.sh" "$R" "$name" ${TRAIN_EXTRA:-} "$@"
}
arm full
arm no-writing-gate --set generator.writing_gate=false
arm no-response-gate --set generator.response_gate=false
arm no-memory --no-memory
