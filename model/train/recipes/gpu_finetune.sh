#!/usr/bin/env bash
# GPU call 2: fine-tune the pretrained model (carried back from call 1), export it, and sample
# HumanEval (greedy, then n=N at T=0.8, top_p 0.95) for scoring on the CPU host with evalkit.
# Usage (repo root): FTDATA=.device/ft PRE=.device/pre OUT=/some/dir bash model/train/recipes/gpu_finetune.sh
# FTDATA holds synthetic.jsonl.xz, mined.jsonl.xz and HumanEval.jsonl.gz.
set -euo pipefail
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=true HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
FTDATA=${FTDATA:-.device/ft}
PRE=${PRE:-.device/pre}
OUT=${OUT:?set OUT}
PY=${PY:-python3}
WORK=${WORK:-/tmp/docomplete-work2}
FT_STEPS=${FT_STEPS:-600}
N=${N:-100}
rm -rf "$WORK" && mkdir -p "$WORK" "$OUT"
if [ "${SIZE:-full}" = tiny ]; then
  FT=(--context 128 --batch-size 8 --eval-every 20 --warmup-steps 10)
  SAMPLE=(--limit 4 --max-new-tokens 32 --batch 16)
else
  FT=(--context 1024 --batch-size 64 --eval-every 100 --warmup-steps 50 --compile)
  SAMPLE=(--max-new-tokens 256 --batch 1600)
fi
date -u +"start %FT%TZ"
cat "$PRE"/pre.tar.part-* | tar -C "$WORK" -xf -
xz -d -c "$FTDATA/synthetic.jsonl.xz" > "$WORK/synthetic.jsonl"
xz -d -c "$FTDATA/mined.jsonl.xz" > "$WORK/mined.jsonl"
$PY -m model.train finetune --init "$WORK/pre" --data "$WORK/synthetic.jsonl" --data "$WORK/mined.jsonl" \
  --run-dir "$WORK/ftrun" --export "$WORK/final" --max-shard-size 200MB \
  --max-steps "$FT_STEPS" --lr 5e-4 --log-every 25 --save-every-s 100000 "${FT[@]}"
date -u +"finetuned %FT%TZ"
cp "$WORK/ftrun/log.jsonl" "$OUT/finetune_log.jsonl"
tar -C "$WORK" -cf - final | split -b 15m - "$OUT/final.tar.part-"
$PY -m model.train sample --model "$WORK/final" --problems "$FTDATA/HumanEval.jsonl.gz" --out "$OUT/greedy.jsonl" --temperature 0 "${SAMPLE[@]}"
date -u +"greedy %FT%TZ"
$PY -m model.train sample --model "$WORK/final" --problems "$FTDATA/HumanEval.jsonl.gz" --out "$OUT/samples_t08.jsonl" --n "$N" --temperature 0.8 --top-p 0.95 "${SAMPLE[@]}"
date -u +"sampled %FT%TZ"
ls -la "$OUT"
