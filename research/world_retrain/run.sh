#!/bin/bash
# The 64 px world recipe (the `shapes` preset on the world's data options with the
# mode-seeking term) continued from a checkpoint, THREADS (default 1) threads, resumable.
# Usage: research/world_retrain/run.sh RUNS_FOLDER ARM INIT_CHECKPOINT
#   ARM: k4        the pixel term on the nearest of 4 drawings
#        k4-critic the same with the world's critic (RUNS_FOLDER/critic/critic.pt)
#        critic    trains that critic (INIT_CHECKPOINT unused)
#        scratch   from step 0: K = 4 with the teachers of research/world_damsm/run.sh
#                  (RUNS_FOLDER/wdamsm/damsm.pt, RUNS_FOLDER/wcritic/critic.pt, else the
#                  copies kept in research/world_damsm/); where
#                  RUNS_FOLDER/scratch holds no checkpoint and INIT_CHECKPOINT is given (an
#                  earlier session's export), it goes on from that with fresh optimizers
#        scratch-low the same teachers at a fifth of the learning rates (1e-4), going on
#                  from INIT_CHECKPOINT (a checkpoint of the scratch arm: G, EMA G and the
#                  Ds, fresh optimizers) into RUNS_FOLDER/scratch-low
# RUNS_FOLDER holds damsm/damsm.pt (the world's DAMSM). MINUTES (default 120) bounds the
# session; running it again goes on from the arm's newest checkpoint. DMGAN names the
# command (default dmgan).
set -euo pipefail
R=${1:?usage: run.sh RUNS_FOLDER ARM INIT_CHECKPOINT}
ARM=${2:?usage: run.sh RUNS_FOLDER ARM INIT_CHECKPOINT}
INIT=${3:-}
DMGAN=${DMGAN:-dmgan}
MINUTES=${MINUTES:-120}
T=${THREADS:-1}  # CPU threads per run (two when it runs alone on the 2 cores)
export OMP_NUM_THREADS=$T
W="--set data.shapes_partial_share=0.5 --set data.shapes_plural_share=0.5 --set data.shapes_held_out=true"
case "$ARM" in
  critic)
    resume=$(compgen -G "$R/critic/ckpt-*.pt" > /dev/null && echo --resume || true)
    exec $DMGAN train-critic --preset shapes --damsm "$R/damsm/damsm.pt" --out "$R/critic" \
      --device cpu --threads $T --minutes "$MINUTES" $W $resume ;;
  scratch|scratch-low)
    out="$R/$ARM"
    lr=(); [ "$ARM" = scratch-low ] && lr=(--set train.lr_g=0.0001 --set train.lr_d=0.0001)
    kept=$(dirname "$0")/../world_damsm
    damsm=$R/wdamsm/damsm.pt; [ -f "$damsm" ] || damsm=$kept/damsm.pt
    critic=$R/wcritic/critic.pt; [ -f "$critic" ] || critic=$kept/critic.pt
    resume=$(compgen -G "$out/ckpt-*.pt" > /dev/null && echo --resume \
             || { [ -n "$INIT" ] && echo "--init-from $INIT"; } || true)
    exec $DMGAN train --preset shapes --data shapes --damsm "$damsm" \
      --critic "$critic" --out "$out" $resume --device cpu --threads $T --workers 0 \
      --ckpt-every 500 --eval-every 1000 --minutes "$MINUTES" --max-steps 40000 $W \
      --set loss.diversity_weight=1 --set loss.pixel_candidates=4 "${lr[@]}" ;;
  k4) extra=() ;;
  k4-critic) extra=(--critic "$R/critic/critic.pt") ;;
  *) echo "unknown arm: $ARM" >&2; exit 2 ;;
esac
out="$R/long-$ARM"
if compgen -G "$out/ckpt-*.pt" > /dev/null; then start=(--resume); else start=(--init-from "${INIT:?the first run of an arm needs INIT_CHECKPOINT}"); fi
exec $DMGAN train --preset shapes --data shapes --damsm "$R/damsm/damsm.pt" --out "$out" \
  "${start[@]}" "${extra[@]}" --device cpu --threads $T --workers 0 --ckpt-every 500 \
  --eval-every 1000 --minutes "$MINUTES" --max-steps 40000 $W \
  --set loss.diversity_weight=1 --set loss.pixel_candidates=4
