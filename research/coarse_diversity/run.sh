#!/bin/bash
# The diversity term on pooled pictures (issue 40): the gate study's "full" arm
# (research/gates/run.sh: same DAMSM, recipe, steps) with the mode-seeking term measured on
# each picture averaged to GRID x GRID cells. Needs the package with pooled.patch applied
# (e.g. a git worktree, put first with DMGAN="env PYTHONPATH=WORKTREE/src python -m dmgan").
# Usage: research/coarse_diversity/run.sh GATES_RUNS_FOLDER GRID [SEED]   (one thread)
set -euo pipefail
R=${1:?usage: run.sh GATES_RUNS_FOLDER GRID [SEED]}
GRID=${2:?usage: run.sh GATES_RUNS_FOLDER GRID [SEED]}
SEED=${3:-0}
NAME=grid$GRID$( [ "$SEED" = 0 ] || echo "-seed$SEED" )
STEPS=${STEPS:-2500}
DMGAN=${DMGAN:-dmgan}
export OMP_NUM_THREADS=1 DIVERSITY_GRID=$GRID
W="--set data.shapes_partial_share=0.5 --set data.shapes_plural_share=0.5 --set data.shapes_held_out=true"
ckpt=$(printf "%s/%s/ckpt-%08d.pt" "$R" "$NAME" "$STEPS")
if [ ! -f "$ckpt" ]; then
  $DMGAN train --preset shapes32 --data shapes --damsm "$R/damsm/damsm.pt" --out "$R/$NAME" \
    --device cpu --threads 1 --workers 0 --max-steps "$STEPS" --ckpt-every 500 \
    --eval-every "$STEPS" --seed "$SEED" $W --set loss.diversity_weight=1 \
    $( [ -d "$R/$NAME" ] && echo --resume )
fi
if [ ! -f "$R/$NAME/eval.jsonl" ]; then
  $DMGAN eval --checkpoint "$ckpt" --data shapes --num-images "${JUDGE:-500}" \
    --metrics oracle compositional --out "$R/$NAME/eval.jsonl.tmp"
  mv "$R/$NAME/eval.jsonl.tmp" "$R/$NAME/eval.jsonl"
fi
