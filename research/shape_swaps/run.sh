#!/bin/bash
# One arm of the shape-trade study: the world recipe of research/world_retrain/run.sh (arm
# scratch) resumed from a copy of START (a scratch-arm checkpoint with its optimizers and
# Ds), into RUNS/swaps-ARM. ARM: off (the recipe as it is), shapes (the D's near misses
# trade shapes too), shapes-own (the same, and no --critic: the run's own Ds judge the
# caption-preference term). One thread per arm, side by side; MINUTES bounds it.
# Usage: research/shape_swaps/run.sh RUNS ARM START
set -euo pipefail
R=${1:?usage: run.sh RUNS ARM START}
ARM=${2:?usage: run.sh RUNS ARM START}
START=${3:?usage: run.sh RUNS ARM START}
PY=${PYTHON:-python}
out="$R/swaps-$ARM"
mkdir -p "$out"
if ! compgen -G "$out/ckpt-*.pt" > /dev/null; then
  cp "$START" "$out/"
  # shapes-own resumes without the critic: the copy's record of the run's settings says so
  # (the critic does not bear on the data's order, which is what --resume guards)
  [ "$ARM" = shapes-own ] && $PY -c "
import sys, torch
p = torch.load(sys.argv[1], weights_only=True); p['options']['critic'] = None
torch.save(p, sys.argv[1])" "$out/$(basename "$START")"
fi
kept=$(dirname "$0")/../world_damsm
damsm=$R/wdamsm/damsm.pt; [ -f "$damsm" ] || damsm=$kept/damsm.pt
critic=$R/wcritic/critic.pt; [ -f "$critic" ] || critic=$kept/critic.pt
case "$ARM" in
  off|shapes) swaps=$ARM; judge=(--critic "$critic") ;;
  shapes-own) swaps=shapes; judge=() ;;
  *) echo "unknown arm: $ARM" >&2; exit 2 ;;
esac
export OMP_NUM_THREADS=1
SWAPS=$swaps exec $PY "$(dirname "$0")/train.py" train --preset shapes --data shapes \
  --damsm "$damsm" "${judge[@]}" --out "$out" --resume --device cpu --threads 1 \
  --workers 0 --ckpt-every 500 --eval-every 1000 --minutes "${MINUTES:-120}" --max-steps 40000 \
  --set data.shapes_partial_share=0.5 --set data.shapes_plural_share=0.5 \
  --set data.shapes_held_out=true --set loss.diversity_weight=1 --set loss.pixel_candidates=4
