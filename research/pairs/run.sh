#!/bin/bash
# The pair discriminator on the shapes world (issue 40): the gate study's "full" arm
# (research/gates/run.sh, same DAMSM, seed and steps) with loss.pair_weight on.
# Usage: research/pairs/run.sh GATES_RUNS_FOLDER NAME [--set ...]   (one thread)
set -euo pipefail
R=${1:?usage: run.sh GATES_RUNS_FOLDER NAME [--set ...]}
NAME=${2:?usage: run.sh GATES_RUNS_FOLDER NAME [--set ...]}
shift 2
STEPS=${STEPS:-2500}
DMGAN=${DMGAN:-dmgan}
export OMP_NUM_THREADS=1
W="--set data.shapes_partial_share=0.5 --set data.shapes_plural_share=0.5 --set data.shapes_held_out=true"
ckpt=$(printf "%s/%s/ckpt-%08d.pt" "$R" "$NAME" "$STEPS")
if [ ! -f "$ckpt" ]; then
  $DMGAN train --preset shapes32 --data shapes --damsm "$R/damsm/damsm.pt" --out "$R/$NAME" \
    --device cpu --threads 1 --workers 0 --max-steps "$STEPS" --ckpt-every 500 \
    --eval-every "$STEPS" --seed 0 $W --set loss.diversity_weight=1 "$@" \
    $( [ -d "$R/$NAME" ] && echo --resume )
fi
if [ ! -f "$R/$NAME/eval.jsonl" ]; then
  $DMGAN eval --checkpoint "$ckpt" --data shapes --num-images "${JUDGE:-500}" \
    --metrics oracle compositional --out "$R/$NAME/eval.jsonl.tmp"
  mv "$R/$NAME/eval.jsonl.tmp" "$R/$NAME/eval.jsonl"
fi
