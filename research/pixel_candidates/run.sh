#!/bin/bash
# One arm of the nearest-of-K pixel term on the gate study's recipe (research/gates/arm.sh),
# judged at 2,500 and (its folder copied to NAME-5k, resumed) 5,000 steps.
# Usage: research/pixel_candidates/run.sh RUNS_FOLDER NAME K [TRAIN OPTIONS]   (one thread;
# SEED and DMGAN pass through)
set -euo pipefail
R=${1:?usage: run.sh RUNS_FOLDER NAME K}
NAME=${2:?}
K=${3:?}
shift 3
here=$(dirname "$0")
STEPS=2500 "$here/../gates/arm.sh" "$R" "$NAME" --set loss.pixel_candidates="$K" "$@"
if [ ! -d "$R/$NAME-5k" ]; then
  cp -r "$R/$NAME" "$R/$NAME-5k.tmp" && rm -f "$R/$NAME-5k.tmp/eval.jsonl"
  mv "$R/$NAME-5k.tmp" "$R/$NAME-5k"
fi
STEPS=5000 "$here/../gates/arm.sh" "$R" "$NAME-5k" --set loss.pixel_candidates="$K" "$@"
