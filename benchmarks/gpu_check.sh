#!/usr/bin/env bash
# The GPU checks in one call, for a session lent a GPU machine (nvidia-h200): at most
# GPU_CHECK_BUDGET_S seconds (default 285) from start to finish, every step capped by
# what is left, every figure printed and written the moment it is measured.
#
# That machine has torch, numba, numba-cuda, pyarrow, rich, Pillow, SciPy and pytest; the
# rest travels as wheels in .whl (git-ignored, carried). Prepare them here, once, for its
# Python 3.12:
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#       --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 -d .whl \
#       lpips==0.1.4 typer==0.29.2 imagecodecs pydantic pydantic-core annotated-types \
#       typing-inspection typing-extensions numpy==2.4.6
# (numpy 2.4: the image's numba-cuda 0.30.4 cannot compile a kernel under its numpy 2.5,
# which removed `np.row_stack`; the preflight says so if that is still the case.)
# then run, with .whl carried:   bash benchmarks/gpu_check.sh
#
# Steps, in order of what is worth most if time runs out:
#   1. preflight: versions, a trivial numba kernel on a torch tensor, pixgate's CUDA
#      kernels against the CPU (compiled, then in a second process from the cache);
#      the check stops here if the GPU path cannot run at all;
#   2. the GPU tests (CUDA against CPU parity, staging, NVML, kernels, reductions), while
#      the benchmark's batch is made in the background (200 distinct 1024x1024 PNG
#      pairs, hard-linked up to 2,000);
#   3. the throughput benchmark: pixgate score float32 on 2,000 pairs as a whole
#      process, CUDA against CPU parity on 24 pairs, the decode ceiling, the lpips
#      package's loop on 100 pairs, then bfloat16.
# Files in $OUT (at most 8): check.log, preflight.log, tests.log, bench.log,
# figures.jsonl, throughput-cuda.json, gpu-section.md. Nothing stale can come back:
# $OUT is emptied first and every file in it is written by this run.
set -uo pipefail
OUT=${OUT:-/tmp/pixgate-gpu}
mkdir -p "$OUT" && find "$OUT" -mindepth 1 -delete
BUDGET=${GPU_CHECK_BUDGET_S:-285}
START=$SECONDS
export PYTHONUNBUFFERED=1 PIXGATE_FIGURES="$OUT/figures.jsonl"
# One kernel cache for every step, so the tests' compilation serves the benchmarks.
export PIXGATE_KERNEL_CACHE="$PWD/.cache/numba"
exec > >(tee -a "$OUT/check.log") 2>&1

left() { echo $((BUDGET - (SECONDS - START))); }
# step NAME CAP LOG COMMAND...: run with the smaller of CAP and the time left.
step() {
    local name=$1 cap=$2 log=$3 t
    shift 3
    t=$(left)
    ((t > cap)) && t=$cap
    if ((t < 10)); then
        echo "== $name: skipped, $(left) s left"
        return 124
    fi
    echo "== $name (at most $t s; $(left) s left)"
    timeout -k 5 "$t" "$@" 2>&1 | tee -a "$OUT/$log"
    local rc=${PIPESTATUS[0]}
    echo "== $name: exit $rc at $((SECONDS - START)) s"
    return "$rc"
}

# pixgate is not installed there: its folders go on the path under their import names
# (engine/ is `pixgate`, kernels/ is `pixgate_kernels`), as `make lint` does for mypy.
links=/tmp/pixgate-path
mkdir -p "$links" && ln -sfn "$PWD/engine" "$links/pixgate" && ln -sfn "$PWD/kernels" "$links/pixgate_kernels"
export PYTHONPATH="$links:$PWD"
if ls .whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        || { echo "wheels failed to install"; exit 1; }
    export PYTHONPATH="$links:/tmp/site:$PWD"
fi

# The batch is made in the background, beside the preflight and the tests.
bench=(python3 -m benchmarks.throughput --pairs 2000 --size 1024 --unique 200 --device cuda)
timeout -k 5 150 "${bench[@]}" --prepare-only >"$OUT/bench.log" 2>&1 &
prep=$!
trap 'kill "$prep" 2>/dev/null' EXIT

step "preflight" 90 preflight.log python3 -m benchmarks.gpu_preflight || { echo "preflight failed: stopping"; exit 1; }
step "preflight, second process" 60 preflight.log python3 -m benchmarks.gpu_preflight --cached

step "GPU tests" 110 tests.log python3 -m pytest -q -p no:cacheprovider -rs -x \
    tests/scoring/test_score_cuda.py tests/scoring/test_staging.py tests/test_telemetry.py \
    tests/scoring/test_metrics.py tests/kernels/test_kernels.py -k "not simulator"
tests=$?

wait "$prep" || echo "making the batch failed (see bench.log)"
step "throughput" 240 bench.log "${bench[@]}" --reference-pairs 100 --repeat 1 --parity-pairs 24 \
    --pipelines pixgate,parity,ceiling,naive,bfloat16 --results "$OUT"
echo "== done at $((SECONDS - START)) s; tests exit $tests; figures in figures.jsonl: $(wc -l <"$PIXGATE_FIGURES")"
exit "$tests"
