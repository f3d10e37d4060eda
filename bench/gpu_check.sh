#!/usr/bin/env bash
# The first thing to run wherever a GPU is available (also: make gpu-check).
#
#   bash bench/gpu_check.sh            # every GPU Paddle sees
#   NPROC=1 bash bench/gpu_check.sh    # one GPU
#
# With one or more GPUs it runs, with `distill run --nproc <number of GPUs>` (data parallel,
# NCCL) and AMP (on by default on GPU): fine-tune the MiniLM teacher on all of movies_en,
# label train + 20 augmented samples per row (engine auto: dygraph with AMP O1/O2 and Paddle
# Inference, with TensorRT when the build has it, timed on one batch; the fastest that passes
# the check against FP32 dygraph labels), distil a BOW and a tiny (3-layer) student, and
# prints the GPU model, rows/s of each stage, the labelling candidates' timings and the
# accuracies. Target: under 8 minutes.
# Without a GPU (or without paddlepaddle-gpu: `make install GPU=1`) it says so and exits 0.
# Written and tested on a CPU-only machine: only the no-GPU path has run (docs/distributed.md).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}

GPUS=$("$PY" - <<'PYEOF' 2>/dev/null | tail -n 1
try:
    import distill  # noqa: F401  (zlib before paddle)
    import paddle
except ImportError as err:
    print(f"no-paddle {err}")
else:
    print(paddle.device.cuda.device_count() if paddle.device.is_compiled_with_cuda() else 0)
PYEOF
)
case "$GPUS" in
  ''|no-paddle*) echo "gpu-check: cannot import distill/paddle with $PY (${GPUS:-no output}); run 'make install' or set PYTHON=" >&2; exit 1;;
esac
if [ "${GPUS:-0}" -eq 0 ]; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    echo "gpu-check: nvidia-smi sees a GPU but Paddle does not (CPU build?): install the GPU stack with 'make install GPU=1'"
  else
    echo "gpu-check: no GPU on this machine; nothing to check (exit 0)"
  fi
  exit 0
fi
NPROC=${NPROC:-$GPUS}
RUN=${RUN:-runs/gpu-check}
MODEL=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | sort | uniq -c | sed 's/^ *//' | paste -sd ';' - || echo unknown)
echo "gpu-check: ${GPUS} GPU(s) [${MODEL}], --nproc ${NPROC}, run folder ${RUN}"
mkdir -p "$RUN"
"$PY" - "$RUN/recipe.yaml" <<'PYEOF'
import sys
from pathlib import Path
import yaml
root = Path.cwd()
raw = yaml.safe_load((root / "recipes/movies_en/bow_from_minilm.yaml").read_text())
tiny = yaml.safe_load((root / "recipes/movies_en/tiny_from_minilm.yaml").read_text())["students"][0]
raw["name"] = "gpu-check"
raw["device"] = "gpu"
raw["teacher"]["finetune"].update(max_train=None, epochs=2, amp=True)
raw["teacher"]["labels"].update(engine="auto", amp=True)   # measured choice, AMP on
raw["augment"].update(n_iter=20)
raw["students"][0]["train"]["amp"] = True
tiny["train"] = dict(tiny["train"], amp=True)
raw["students"].append(tiny)
raw["export"] = {"enabled": False}
Path(sys.argv[1]).write_text(yaml.safe_dump(raw))
PYEOF
START=$(date +%s)
"$PY" -m distill run "$RUN/recipe.yaml" --out "$RUN" --nproc "$NPROC"
END=$(date +%s)
"$PY" - "$RUN" "$((END - START))" "$MODEL" "$NPROC" <<'PYEOF'
import json, sys
from pathlib import Path
run, seconds, model, nproc = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
def load(p):
    return json.loads(p.read_text()) if p.exists() else {}
def rate(stage):
    s = load(run / stage / "train/last/trainer_state.json").get("state", {})
    return round(s["rows_trained"] / s["train_time_s"], 1) if s.get("train_time_s") else None
report = load(run / "report.json")
labels = load(run / "soft_labels/done.json").get("result", {})
print(f"GPU: {model}; processes: {nproc}; whole run {seconds} s (target < 480 s)")
print(f"fine-tune teacher: {rate('teacher')} rows/s; test accuracy {report['teacher']['test']['accuracy']:.4f}")
if labels.get("label_seconds"):
    print(f"soft labels: {labels['rows']} rows, {labels['rows'] / labels['label_seconds']:.1f} rows/s "
          f"(engine {labels.get('engine')}, {labels.get('precision')}, AMP {labels.get('amp')})")
    for t in (labels.get("engine_choice") or {}).get("trials", []):
        print(f"  candidate {t['engine']} {t.get('precision') or ''} TensorRT={t.get('tensorrt')}: "
              f"{t['rows_per_s']} rows/s, check {'passed' if t['passed'] else 'FAILED'}"
              + (f" (max abs diff {t['check']['max_abs_diff']:.3g})" if t.get('check') else '')
              + (f" error: {t['error'][:200]}" if t.get('error') else ''))
for s in report["students"]:
    print(f"student {s['name']}: distil {rate('distill/' + s['name'] + '/seed0')} rows/s; "
          f"test accuracy plain {s['baseline']['test']['accuracy']:.4f} -> distilled "
          f"{s['distilled']['test']['accuracy']:.4f}")
print("stage seconds: " + json.dumps(report["stage_seconds"]))
PYEOF
