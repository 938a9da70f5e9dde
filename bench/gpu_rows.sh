#!/usr/bin/env bash
# The GPU rows of bench/README.md in one go (a lent GPU machine is short-lived): the CUDA
# tests of the graphed step, then eager against --cuda-graphs, alternating (bench/ab.py),
# for the shapes step, the bird step at batch 64 in bf16 and a whole shapes `dmgan train`.
#
#   bash bench/gpu_rows.sh OUT_DIR SHAPES_DAMSM [quick]
#
# OUT_DIR gets rows.jsonl (one JSON row per comparison) and log (commands, stderr, exit
# codes). Each part has its own time limit, so one that fails or hangs leaves the others.
set -u
out=${1:?usage: gpu_rows.sh OUT_DIR SHAPES_DAMSM [quick]}
damsm=${2:?usage: gpu_rows.sh OUT_DIR SHAPES_DAMSM [quick]}
quick=${3:-}
py=$(command -v python3 || command -v python)
mkdir -p "$out"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1

part() {  # part SECONDS COMMAND...: stdout rows to rows.jsonl, the rest to log
    local limit=$1
    shift
    echo "== $(date -u +%T) $*" >>"$out/log"
    timeout "$limit" "$@" >>"$out/rows.jsonl" 2>>"$out/log"
    echo "== exit $?" >>"$out/log"
}

# sizes: the real ones, or (quick) a few seconds each to try the script on any machine
dev=cuda; shapes_reps=30; bird_batch=64; bird_reps=8; steps=600; every=300; warm=100
if [ "$quick" = quick ]; then
    dev=cpu; shapes_reps=2; bird_batch=2; bird_reps=1; steps=40; every=20; warm=10
fi
graphs=--cuda-graphs
[ "$dev" = cpu ] && graphs=""  # the CPU try runs the same commands without the recording

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv >>"$out/log" 2>&1
"$py" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())" \
    >>"$out/log" 2>&1

part 180 "$py" -m pytest -q -p no:cacheprovider tests/test_graphs.py
step="$py bench/train_step.py --device $dev"
if ! tail -n 1 "$out/log" | grep -q "exit 0"; then  # no graphs: the eager rows alone
    part 100 $step --preset shapes --batch 32 --repeats "$shapes_reps"
    part 100 $step --preset bird --batch "$bird_batch" --amp bf16 --repeats "$bird_reps"
    echo "== graph tests failed: eager rows only $(date -u +%T)" >>"$out/log"
    exit 1
fi
part 150 "$py" bench/ab.py --rounds 2 \
    --a-command "$step --preset shapes --batch 32 --repeats $shapes_reps" \
    --b-command "$step --preset shapes --batch 32 --repeats $shapes_reps $graphs"
part 200 "$py" bench/ab.py --rounds 2 \
    --a-command "$step --preset bird --batch $bird_batch --amp bf16 --repeats $bird_reps" \
    --b-command "$step --preset bird --batch $bird_batch --amp bf16 --repeats $bird_reps $graphs"
run="$py bench/train_run.py --damsm $damsm --device $dev --steps $steps --every $every"
run="$run --warmup $warm --workers 4"
part 200 "$py" bench/ab.py --rounds 1 --a-command "$run" --b-command "$run $graphs"
# last, as they may take long to compile: torch.compile'd G, then with the graph too
part 240 $step --preset bird --batch "$bird_batch" --amp bf16 --repeats "$bird_reps" --compile
part 240 $step --preset bird --batch "$bird_batch" --amp bf16 --repeats "$bird_reps" --compile $graphs
echo "== done $(date -u +%T)" >>"$out/log"
