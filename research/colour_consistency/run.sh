#!/bin/bash
# StackGAN++'s colour-consistency term between stages (issue 40): the gate study's "full" arm
# (research/gates/run.sh: same DAMSM, recipe, steps) plus WEIGHT x the colour-consistency
# term. Needs the package with consistency.patch applied
# (e.g. a git worktree, put first with DMGAN="env PYTHONPATH=WORKTREE/src python -m dmgan").
# Usage: research/colour_consistency/run.sh GATES_RUNS_FOLDER WEIGHT [SEED]   (one thread)
set -euo pipefail
R=${1:?usage: run.sh GATES_RUNS_FOLDER WEIGHT [SEED]}
WEIGHT=${2:?usage: run.sh GATES_RUNS_FOLDER WEIGHT [SEED]}
SEED=${3:-0}
NAME=consistency$WEIGHT$( [ "$SEED" = 0 ] || echo "-seed$SEED" )
STEPS=${STEPS:-2500}
DMGAN=${DMGAN:-dmgan}
export OMP_NUM_THREADS=1 COLOUR_CONSISTENCY=$WEIGHT
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
