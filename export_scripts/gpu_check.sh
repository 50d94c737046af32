#!/usr/bin/env bash
# The whole TensorRT path on a machine with TensorRT and an NVIDIA GPU: the static check against the
# installed version's table, an engine for every catalog graph, and verification of each engine against
# the float64 eager reference and onnxruntime on fresh seeded inputs and edge cases. Prints the tables;
# exits non-zero when any step fails. About two minutes for the catalog on one GPU.
#
# Usage: export_scripts/gpu_check.sh [fp32|fp16]
#   BIN=.venv/bin      where exportloss and python live
#   MODELS=models      the exported ONNX files (`exportloss export --all` writes them)
#   ENGINES=DIR        where plans go (default: a fresh temporary directory)
set -uo pipefail
cd "$(dirname "$0")/.."
PRECISION=${1:-fp32}
BIN=${BIN:-.venv/bin}
MODELS=${MODELS:-models}
ENGINES=${ENGINES:-$(mktemp -d)}
start=$SECONDS

TABLE=$("$BIN/python" - <<'PY'
import sys
from exportloss.trt.engine import TensorRTUnavailable, require_tensorrt
from exportloss.trt.support import table_for_installed
try:
    trt = require_tensorrt()
except TensorRTUnavailable as err:
    sys.exit(f"gpu_check: {err}")
print(table_for_installed(trt.__version__))
PY
) || exit 2
echo "gpu_check: TensorRT $("$BIN/python" -c 'import tensorrt; print(tensorrt.__version__)'), static table $TABLE, $PRECISION, plans in $ENGINES"

status=0
"$BIN/exportloss" check-trt --all --models "$MODELS" --trt-version "$TABLE" || status=1
"$BIN/exportloss" build-engine --all --models "$MODELS" --engines "$ENGINES" --precision "$PRECISION" || status=1
"$BIN/exportloss" verify --backend trt --all --models "$MODELS" --engines "$ENGINES" --precision "$PRECISION" || status=1
echo "gpu_check: $([ $status = 0 ] && echo PASS || echo FAIL) in $((SECONDS - start)) s"
exit $status
