#!/usr/bin/env bash
# Defence table (docs/results.md, "Defence table"): RepNoise vs adversarial loss vs TAR on SmolLM2-135M-Instruct,
# every defence from the same safety-SFT base with the same budget (lr 5e-4, 12 steps of 4 x 80 tokens, seed 0),
# certified by one `alignkit evaluate` under the demo's fast attack.
#
#   alignkit demo --fast --output-dir runs/demo-fast      # builds the base and the RepNoise model (demo preset)
#   bash benchmarks/defence_table.sh                       # attack seed 0
#   SEEDS=0,1,2 bash benchmarks/defence_table.sh           # three attack seeds (finished stages are reused)
#
# DEMO (default runs/demo-fast) is the demo's run folder; OUT (default runs/defence-table) the output.
set -euo pipefail
DEMO=${DEMO:-runs/demo-fast}
OUT=${OUT:-runs/defence-table}
SEEDS=${SEEDS:-0}
BASE=$DEMO/models/base-safety-sft
REPNOISE=$DEMO/models/repnoise
for m in "$BASE" "$REPNOISE"; do
  [ -f "$m/config.json" ] || { echo "error: $m not found; run 'alignkit demo --fast --output-dir $DEMO' first" >&2; exit 2; }
done
COMMON=(--model "$BASE" --lr 5e-4 --max-steps 12 --batch-size 4 --max-length 80 --seed 0)
[ -f "$OUT/models/adversarial-loss/config.json" ] || \
  alignkit defend --defence adversarial-loss "${COMMON[@]}" --output-dir "$OUT/models/adversarial-loss"
[ -f "$OUT/models/tar/config.json" ] || \
  alignkit defend --defence tar "${COMMON[@]}" --retain-mix 2 --output-dir "$OUT/models/tar"
alignkit evaluate --base "$BASE" --model "$REPNOISE" --model "$OUT/models/adversarial-loss" --model "$OUT/models/tar" \
  --label repnoise --label adversarial-loss --label tar --output-dir "$OUT/eval" \
  --conditions resistance,stability,trainability --eval-prompts 16 --max-new-tokens 32 \
  --attack-lrs 8e-5 --attack-samples 64 --attack-seeds "$SEEDS" --attack-steps 12 --eval-every 12 \
  --attack-max-length 80 --no-attack-checkpoints --stability-texts 30 --probe-size 60 \
  --train-steps 8 --train-eval-every 8 --train-eval-size 8 --train-lr 1e-4
