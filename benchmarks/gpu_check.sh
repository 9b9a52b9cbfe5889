#!/usr/bin/env bash
# The GPU check of issue 13: a `standard` synthetic corpus at the paper config, one epoch of the
# paper model with mixed precision, then benchmarks/bench_train.py's throughput figures
# ((a) fastai Learner, (c) raw ResNet50 fwd+bwd at the same T and resolution, a/c, goal >= 0.7).
# With several GPUs it also trains one epoch on all of them (--processes N).
# Random init throughout: the paper config's pretrained=True needs a download (offline here).
#
#   bash benchmarks/gpu_check.sh            # on a CUDA machine, meant to finish within 8 minutes
#   bash benchmarks/gpu_check.sh --dry-run  # end to end on the CPU at tiny sizes
#   GPU_CHECK_DIR=/tmp/gc bash benchmarks/gpu_check.sh  # keep the corpus, store and runs
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
DRY=0
[[ "${1:-}" == "--dry-run" ]] && DRY=1
# its own temporary folder (corpus, store, runs: ~400 MB dry, several GB on a GPU) is removed on
# exit; GPU_CHECK_DIR=DIR keeps everything in DIR instead
if [[ -n "${GPU_CHECK_DIR:-}" ]]; then
  WORK=$GPU_CHECK_DIR
else
  WORK=$(mktemp -d /tmp/gpu_check.XXXX)
  trap 'rm -rf "$WORK"' EXIT
fi
if [[ $DRY == 1 ]]; then
  SIZE=tiny; CONFIG=tiny; LIMIT=24; CLIPS=48; WORKERS=1; SETS=(--set model.pretrained=false)
else
  SIZE=standard; CONFIG=paper; LIMIT=${GPU_CHECK_VIDEOS:-400}; CLIPS=256; WORKERS=8
  SETS=(--set model.pretrained=false --set train.fp16=true)
  "$PY" -c "import torch,sys; sys.exit(0 if torch.cuda.is_available() else 'no CUDA device: use --dry-run')"
fi
echo "gpu_check: corpus $SIZE, config $CONFIG, first $LIMIT videos, random init (pretrained=False), dir $WORK"
t0=$(date +%s)
"$PY" -m amdd_kit.cli make-data --out "$WORK/data" --size "$SIZE" --workers "$WORKERS"
"$PY" -m amdd_kit.cli preprocess --dataset fakeavceleb --root "$WORK/data/fakeavceleb" \
  --out "$WORK/store" --config "$CONFIG" --workers "$WORKERS" --limit "$LIMIT" --quiet "${SETS[@]:0:2}"
t1=$(date +%s); echo "gpu_check: corpus + store in $((t1 - t0)) s"
"$PY" -m amdd_kit.cli train --store "$WORK/store" --out "$WORK/run" --config "$CONFIG" \
  --epochs 1 "${SETS[@]}"
t2=$(date +%s); echo "gpu_check: one epoch (plus evaluation) in $((t2 - t1)) s"
# several processes (fastai distrib_ctx via torchrun): every GPU when there are several, two CPU
# processes (gloo) in the dry run; skipped on a single GPU
NPROC=$("$PY" -c "import torch; print(torch.cuda.device_count() if torch.cuda.is_available() else 2)")
if [[ $DRY == 1 || $NPROC -gt 1 ]]; then
  "$PY" -m amdd_kit.cli train --store "$WORK/store" --out "$WORK/run-$NPROC" --config "$CONFIG" \
    --epochs 1 --processes "$NPROC" "${SETS[@]}"
  echo "gpu_check: one epoch on $NPROC processes in $(( $(date +%s) - t2 )) s"
fi
"$PY" - "$WORK/run/metrics.json" <<'PYEOF'
import json, sys
m = json.load(open(sys.argv[1]))
print("gpu_check: metrics", {k: m.get(k) for k in ("balanced_accuracy", "auc", "attribution_accuracy",
                                                     "train_seconds", "device", "pretrained")})
PYEOF
"$PY" benchmarks/bench_train.py --config "$CONFIG" --clips "$CLIPS" --workers "$WORKERS"
echo "gpu_check: total $(( $(date +%s) - t0 )) s"
