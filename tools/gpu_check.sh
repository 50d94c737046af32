#!/usr/bin/env bash
# Everything a GPU host can check, in one run (under four minutes on one GPU for the catalog):
#   1. the static TensorRT check (`check-trt`, no TensorRT needed) and the CUDA-provider check (`check-ort-cuda`);
#   2. `verify` on every backend that loads here, each into a JSON report: onnxruntime CPU + CUDA in float32
#      (TF32 off), CUDA again with TF32 on (the provider's default), onnxruntime's TensorRT provider, and
#      TensorRT engines (built into ENGINES, verified against the reference and against onnxruntime on the CPU);
#   3. the GPU benchmark (`bench --device cuda`) into a JSON report.
# A step whose backend or subcommand is missing here is skipped, never passed: the last lines say what was
# skipped and why, then PASS/FAIL and the time. Works with onnxruntime-gpu and no TensorRT. Exits 1 when a step
# fails, 0 otherwise.
#
# Usage: tools/gpu_check.sh [fp32|fp16]     (precision of the TensorRT engines; default fp32)
#   BIN=.venv/bin      where exportloss and python live
#   MODELS=models      the exported ONNX files (`exportloss export --all` writes them)
#   OUT=build/gpu_check  where the JSON reports go
#   ENGINES=DIR        where plans go (default: a fresh temporary directory)
set -uo pipefail
cd "$(dirname "$0")/.."
PRECISION=${1:-fp32}
BIN=${BIN:-.venv/bin}
MODELS=${MODELS:-models}
OUT=${OUT:-build/gpu_check}
ENGINES=${ENGINES:-$(mktemp -d)}
EXPORTLOSS="$BIN/exportloss"
start=$SECONDS
status=0
skipped=()
mkdir -p "$OUT"

step() {  # step LABEL COMMAND...: run, echo what ran, remember a failure
    echo "gpu_check: $1: ${*:2}"
    "${@:2}" || { echo "gpu_check: $1 FAILED"; status=1; }
}

# Which backends load here (each probe is silent), as NAME<TAB>REASON lines; an empty reason means it loads.
BACKENDS=$("$BIN/python" - <<'PY'
from exportloss.backends import BACKEND_NAMES, make_backend
for name in BACKEND_NAMES:
    print(f"{name}\t{make_backend(name).unavailable_reason() or ''}")
PY
) || { echo "gpu_check: cannot import exportloss from $BIN/python"; exit 2; }
reason_of() { awk -F'\t' -v n="$1" '$1 == n { print $2 }' <<<"$BACKENDS"; }
loads() { [ -z "$(reason_of "$1")" ]; }
has_subcommand() { "$EXPORTLOSS" "$1" --help >/dev/null 2>&1; }

# 1. static checks
step check-trt "$EXPORTLOSS" check-trt --all --models "$MODELS"
if has_subcommand check-ort-cuda; then
    step check-ort-cuda "$EXPORTLOSS" check-ort-cuda --all --models "$MODELS" --json "$OUT/check-ort-cuda.json"
else
    skipped+=("check-ort-cuda (this exportloss has no such subcommand)")
fi

# 2. verification on every backend that loads
if loads ort-cuda; then
    step "verify ort-cpu + ort-cuda (fp32)" "$EXPORTLOSS" verify --all --models "$MODELS" \
        --backend ort-cpu --backend ort-cuda --json "$OUT/verify-fp32.json"
    step "verify ort-cuda (tf32)" "$EXPORTLOSS" verify --all --models "$MODELS" \
        --backend ort-cuda --tf32 --json "$OUT/verify-tf32.json"
else
    step "verify ort-cpu" "$EXPORTLOSS" verify --all --models "$MODELS" --backend ort-cpu --json "$OUT/verify-fp32.json"
    skipped+=("ort-cuda: $(reason_of ort-cuda)")
fi
if loads ort-trt; then
    step "verify ort-trt" "$EXPORTLOSS" verify --all --models "$MODELS" --backend ort-trt --json "$OUT/verify-ort-trt.json"
else
    skipped+=("ort-trt: $(reason_of ort-trt)")
fi
if loads trt; then
    step "build-engine $PRECISION" "$EXPORTLOSS" build-engine --all --models "$MODELS" --engines "$ENGINES" --precision "$PRECISION"
    step "verify trt $PRECISION" "$EXPORTLOSS" verify --all --models "$MODELS" --backend trt --against ort-cpu \
        --engines "$ENGINES" --precision "$PRECISION" --json "$OUT/verify-trt-$PRECISION.json"
else
    skipped+=("trt: $(reason_of trt)")
fi

# 3. GPU benchmark
if ! loads ort-cuda; then
    skipped+=("bench --device cuda (ort-cuda does not load)")
elif "$EXPORTLOSS" bench --help 2>/dev/null | grep -q -- "--device"; then
    step "bench cuda" "$EXPORTLOSS" bench --device cuda --json "$OUT/bench-cuda.json"
else
    skipped+=("bench --device cuda (this exportloss's bench has no --device)")
fi

if [ ${#skipped[@]} -gt 0 ]; then
    printf -v joined '%s; ' "${skipped[@]}"
    echo "gpu_check: skipped: ${joined%; }"
else
    echo "gpu_check: skipped: nothing"
fi
echo "gpu_check: $([ $status = 0 ] && echo PASS || echo FAIL) in $((SECONDS - start)) s; reports in $OUT"
exit $status
