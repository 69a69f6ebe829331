#!/usr/bin/env bash
# Model v2 on a CPU (no GPU was lent): the v1 checkpoint moves to the v2 tokenizer (llama3
# pre-split = llama.cpp's llama-bpe preset, FIM markers) by vocabulary transfer, then keeps
# training on a stream of corpus code (half of it FIM-transformed, PSM and SPM) and docstring
# tasks (composed chains, mined functions and methods, a share of v1's generated families);
# then v2.1 continues from v2 on a revised stream (see the last step).
# Resumable: run it again after an interruption and `train adapt` continues from its run dir.
# Usage (repo root, after `make setup`): bash model/train/recipes/cpu_v2.sh
#   SIZE=tiny for a dry run of every step in a few minutes.
set -euo pipefail
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
PY=${PY:-.venv/bin/python}
D=${DATA:-data}
# v1 (the starting point) is no longer the bundled checkpoint: by default it is taken from the
# last commit that bundled it.
V1_COMMIT=7bf5954
if [ -z "${V1:-}" ]; then
  V1=$D/v1
  if [ ! -f "$V1/model.safetensors" ]; then
    mkdir -p "$V1"
    for f in config.json generation_config.json model.safetensors tokenizer.json tokenizer_config.json; do
      git show "$V1_COMMIT:model/checkpoints/docomplete-py-small/$f" > "$V1/$f"
    done
  fi
fi
if [ "${SIZE:-full}" = tiny ]; then
  COMPOSE=500; SYNTH=500; STEPS=(--max-steps 4 --batch-size 2 --context 128 --eval-every 2 --valid-tasks 8 --eval-windows 2)
  STEPS21=("${STEPS[@]}")
  CORPUS=(--max-files 300)
else
  COMPOSE=60000; SYNTH=20000; STEPS=(--max-steps 950 --time-budget-s 5000 --batch-size 8 --eval-every 250)
  STEPS21=(--max-steps 1100 --batch-size 8 --eval-every 200)
  CORPUS=()
fi
dc() { $PY -m server.cli "$@"; }
[ -f "$D/corpus/train.jsonl" ] || dc train corpus --out "$D/corpus" "${CORPUS[@]}"
[ -f "$D/tokenizer_v2/tokenizer.json" ] || dc train tokenizer --corpus "$D/corpus" --out "$D/tokenizer_v2"
mkdir -p "$D/finetune" "$D/reports"
[ -f "$D/finetune/compose.jsonl" ] || dc train compose --n "$COMPOSE" --seed 0 --no-progress \
  --out "$D/finetune/compose.jsonl" --report "$D/reports/compose.json"
[ -f "$D/finetune/mined.jsonl" ] || dc train mine --corpus "$D/corpus" --out "$D/finetune/mined.jsonl"
[ -f "$D/finetune/synthetic.jsonl" ] || $PY - "$SYNTH" "$D/finetune/synthetic.jsonl" <<'PY'
import json, sys
from model.train.corpus import build_contamination, humaneval_path, read_eval_problems
from model.train.synth import generate
examples, _ = generate(int(sys.argv[1]), 0)
contamination = build_contamination(read_eval_problems([humaneval_path()]))
with open(sys.argv[2], "w", encoding="utf-8") as out:
    for e in examples:
        if contamination.check(e["prompt"] + e["completion"]) is None:
            out.write(json.dumps(e) + "\n")
PY
# Task-level decontamination; sources that look like held-out practical tasks are left out.
[ -f "$D/reports/v2_pre.json" ] || dc train decontam-report --data "$D/finetune/compose.jsonl" \
  "$D/finetune/mined.jsonl" "$D/finetune/synthetic.jsonl" --out "$D/reports/v2_pre.json"
[ -f "$D/v2/init/config.json" ] || dc train transfer --from "$V1" --tokenizer "$D/tokenizer_v2" --out "$D/v2/init"
dc train adapt --init "$D/v2/init" --corpus "$D/corpus" --run-dir "$D/runs/adapt" \
  --tasks "$D/finetune/compose.jsonl:0.5" --tasks "$D/finetune/mined.jsonl:0.3" \
  --tasks "$D/finetune/synthetic.jsonl:0.2" \
  --exclude-flagged "$D/reports/v2_pre.json" --exclude-sets heldout_practical \
  --code-share 0.4 --lr 5e-4 --warmup-steps 50 --save-every-s 300 --log-every 10 \
  --export "$D/v2/final" "${STEPS[@]}"
echo "v2 model: $D/v2/final"
# v2.1 (the bundled checkpoint): v2 keeps training on a stream whose FIM rows never lose their
# middle's end (--fim-fit) and whose FIM-form tasks mostly mask 1-3 lines inside a body
# (--task-infill-share), with more mined functions and fewer generated families.
dc train adapt --init "$D/v2/final" --corpus "$D/corpus" --run-dir "$D/runs/adapt21" \
  --tasks "$D/finetune/compose.jsonl:0.4" --tasks "$D/finetune/mined.jsonl:0.45" \
  --tasks "$D/finetune/synthetic.jsonl:0.15" \
  --exclude-flagged "$D/reports/v2_pre.json" --exclude-sets heldout_practical \
  --code-share 0.5 --fim-rate 0.5 --fim-fit --task-fim-rate 0.4 --task-infill-share 0.6 \
  --lr 3e-4 --warmup-steps 30 --seed 1 --save-every-s 300 --log-every 10 \
  --max-shard-size 100MB --export "$D/v21/final" "${STEPS21[@]}"
cp model/checkpoints/docomplete-py-small/docomplete.json "$D/v21/final/"
echo "v2.1 model (bundled): $D/v21/final"
