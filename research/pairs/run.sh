#!/bin/bash
# The pair discriminator on the shapes world (issue 40): the gate study's "full" arm
# (research/gates/arm.sh: same DAMSM, recipe, seed and steps) with loss.pair_weight on; the
# package at commit 93255b7 (DMGAN="env PYTHONPATH=WORKTREE/src python -m dmgan").
# Usage: research/pairs/run.sh GATES_RUNS_FOLDER NAME [--set ...]   (one thread)
set -euo pipefail
exec "$(dirname "$0")/../gates/arm.sh" "$@"
