#!/usr/bin/env bash
# GPU call 1: tokenise the staged corpus and pretrain for a fixed wall-clock budget.
# Usage (repo root): STAGE=.device/stage OUT=/some/dir BUDGET=450 bash model/train/recipes/gpu_pretrain.sh
# The CPU dry run is the same script with SIZE=tiny (only sizes differ).
set -euo pipefail
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=true HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
STAGE=${STAGE:-.device/stage}
OUT=${OUT:?set OUT}
BUDGET=${BUDGET:-450}
PY=${PY:-python3}
WORK=${WORK:-/tmp/docomplete-work}
rm -rf "$WORK" && mkdir -p "$WORK/corpus" "$OUT"
if [ "${SIZE:-full}" = tiny ]; then
  SHAPE=(--hidden 64 --layers 2 --heads 2 --intermediate 176 --context 128 --batch-size 8 --eval-windows 8 --eval-every 20 --warmup-steps 10)
  EXTRA=()
else
  SHAPE=(--hidden 512 --layers 6 --heads 8 --intermediate 1408 --context 1024 --batch-size 64 --eval-windows 256 --eval-every 500 --warmup-steps 200)
  EXTRA=(--compile)
fi
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
$PY -c "import torch, transformers, tokenizers; print('torch', torch.__version__, 'transformers', transformers.__version__, 'tokenizers', tokenizers.__version__, 'cuda', torch.cuda.is_available())"
date -u +"start %FT%TZ"
xz -d -T0 -c "$STAGE/train.jsonl.xz" > "$WORK/corpus/train.jsonl"
cp "$STAGE/valid.jsonl" "$WORK/corpus/valid.jsonl"
$PY -m model.train tokenize --corpus "$WORK/corpus" --tokenizer "$STAGE/tokenizer" --out "$WORK/tokens"
date -u +"tokenised %FT%TZ"
$PY -m model.train pretrain --tokens "$WORK/tokens" --tokenizer "$STAGE/tokenizer" \
  --run-dir "$WORK/run" --export "$WORK/pre" --max-shard-size 200MB \
  --time-budget-s "$BUDGET" --lr 2e-3 --log-every 50 --save-every-s 100000 "${SHAPE[@]}" "${EXTRA[@]}"
date -u +"trained %FT%TZ"
cp "$WORK/run/log.jsonl" "$OUT/pretrain_log.jsonl"
cp "$WORK/tokens/train.bin.json" "$OUT/train_tokens.json"
tar -C "$WORK" -cf - pre | split -b 15m - "$OUT/pre.tar.part-"
ls -la "$OUT"
