#!/usr/bin/env bash
# The GPU checks in one call, for a session that is lent a GPU machine (nvidia-h200).
# That machine has torch, numba, numba-cuda, pyarrow, typer, rich, Pillow, SciPy and
# scikit-image; the rest travels as wheels. Prepare them here, once:
#   python3 -m pip download --no-deps lpips==0.1.4 nvidia-ml-py torchmetrics lightning-utilities \
#       imagecodecs -d .whl   (about 28 MB; imagecodecs is the largest)
# then run, with .whl carried:   bash benchmarks/gpu_check.sh
# It runs the CUDA tests (parity with the CPU path, CUDA-event timings), the kernel tests,
# the kernel-vs-LPIPS benchmark on CPU and GPU, the worker-to-scorer transport benchmark
# and the end-to-end throughput benchmark; logs and JSON land in $OUT.
set -uo pipefail
OUT=${OUT:-/tmp/pixgate-gpu}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
# pixgate is not installed there: its folders are put on the path under their import
# names (engine/ is `pixgate`, kernels/ is `pixgate_kernels`), as `make lint` does for mypy.
links=/tmp/pixgate-path
mkdir -p "$links" && ln -sfn "$PWD/engine" "$links/pixgate" && ln -sfn "$PWD/kernels" "$links/pixgate_kernels"
if ls .whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH="$links:/tmp/site:$PWD"
else
    export PYTHONPATH="$links:$PWD"
fi
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1 | tee "$OUT/gpu.txt"
python3 -m pytest -q -p no:cacheprovider tests/scoring/test_score_cuda.py tests/kernels/test_kernels.py \
    tests/scoring/test_metrics.py tests/test_telemetry.py \
    -rs 2>&1 | tee "$OUT/tests.log"
tests=${PIPESTATUS[0]}
python3 -m benchmarks.kernels --repeat 10 --batch 4 2>&1 | tee "$OUT/kernels.log"
cp benchmarks/results/kernels.json "$OUT/kernels.json" 2>/dev/null
# What the scoring process spends receiving and batching a 1024x1024 pair (it feeds the GPU alone).
python3 -m benchmarks.transport --pairs 40 --sizes 1024 2>&1 | tee "$OUT/transport.log"
# End to end: 2,000 pairs of 1024x1024 PNG (made in parallel, about 20 s on 16 cores),
# float32 and bfloat16, against the naive loop and torchmetrics on 200 of them.
timeout 380 python3 -m benchmarks.throughput --pairs 2000 --size 1024 --device cuda --reference-pairs 200 --repeat 1 \
    2>&1 | tee "$OUT/throughput.log"
cp benchmarks/results/throughput.json benchmarks/RESULTS.md "$OUT/" 2>/dev/null
exit "$tests"
