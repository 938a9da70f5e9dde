#!/bin/bash
# One arm of the gate study's recipe (run.sh here: its DAMSM, the shapes32 world with the
# diversity term, 2,500 steps), trained and judged, for studies that change one thing by a
# patched package (DMGAN, e.g. "env PYTHONPATH=WORKTREE/src python -m dmgan") and its
# environment switch, which passes through; the options after NAME go to `dmgan train`.
# Usage: [SEED=N] research/gates/arm.sh RUNS_FOLDER NAME [TRAIN OPTIONS]   (one thread)
set -euo pipefail
R=${1:?usage: arm.sh RUNS_FOLDER NAME [TRAIN OPTIONS]}
NAME=${2:?usage: arm.sh RUNS_FOLDER NAME [TRAIN OPTIONS]}
shift 2
SEED=${SEED:-0}
STEPS=${STEPS:-2500}
DMGAN=${DMGAN:-dmgan}
export OMP_NUM_THREADS=1
W="--set data.shapes_partial_share=0.5 --set data.shapes_plural_share=0.5 --set data.shapes_held_out=true"
ckpt=$(printf "%s/%s/ckpt-%08d.pt" "$R" "$NAME" "$STEPS")
if [ ! -f "$ckpt" ]; then
  $DMGAN train --preset shapes32 --data shapes --damsm "$R/damsm/damsm.pt" --out "$R/$NAME" \
    --device cpu --threads 1 --workers 0 --max-steps "$STEPS" --ckpt-every 500 \
    --eval-every "$STEPS" --seed "$SEED" $W --set loss.diversity_weight=1 "$@" \
    $( [ -d "$R/$NAME" ] && echo --resume )
fi
if [ ! -f "$R/$NAME/eval.jsonl" ]; then
  $DMGAN eval --checkpoint "$ckpt" --data shapes --num-images "${JUDGE:-500}" \
    --metrics oracle compositional --out "$R/$NAME/eval.jsonl.tmp"
  mv "$R/$NAME/eval.jsonl.tmp" "$R/$NAME/eval.jsonl"
fi
