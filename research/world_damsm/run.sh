#!/bin/bash
# The world's teachers by the curriculum this study found: a DAMSM taught on fully specified
# captions (the held-out pairs kept out; 6,000 steps, then 4,000 more from them), fine-tuned
# on the world's captions (2,000), then the world's critic reading it (3,000 steps). Each
# step is skipped once its output is there; the critic resumes from its checkpoints.
# Usage: research/world_damsm/run.sh RUNS_FOLDER
# THREADS (default 1) per command; MINUTES (default 120) bounds the critic; DMGAN names the
# command (default dmgan).
set -euo pipefail
R=${1:?usage: run.sh RUNS_FOLDER}
DMGAN=${DMGAN:-dmgan}
T=${THREADS:-1}
export OMP_NUM_THREADS=$T
HO="--set data.shapes_held_out=true"
W="--set data.shapes_partial_share=0.5 --set data.shapes_plural_share=0.5 $HO"
[ -f "$R/wd-fullspec-ho/damsm.pt" ] || $DMGAN pretrain-damsm --preset shapes --data shapes \
  --out "$R/wd-fullspec-ho" --device cpu --threads "$T" --workers 0 --max-steps 6000 $HO
[ -f "$R/wd-fullspec-ho-10k/damsm.pt" ] || $DMGAN pretrain-damsm --preset shapes --data shapes \
  --init-from "$R/wd-fullspec-ho/damsm.pt" --out "$R/wd-fullspec-ho-10k" --device cpu \
  --threads "$T" --workers 0 --max-steps 4000 $HO
[ -f "$R/wdamsm/damsm.pt" ] || $DMGAN pretrain-damsm --preset shapes --data shapes \
  --init-from "$R/wd-fullspec-ho-10k/damsm.pt" --out "$R/wdamsm" --device cpu --threads "$T" \
  --workers 0 --max-steps 2000 $W
[ -f "$R/wcritic/critic.pt" ] && exit 0
resume=$(compgen -G "$R/wcritic/ckpt-*.pt" > /dev/null && echo --resume || true)
exec $DMGAN train-critic --preset shapes --damsm "$R/wdamsm/damsm.pt" --out "$R/wcritic" \
  --device cpu --threads "$T" --max-steps 3000 --minutes "${MINUTES:-120}" $W $resume
