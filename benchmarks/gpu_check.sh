#!/usr/bin/env bash
# The CUDA path checked for real, in about 8 minutes on one H100, on the demo data: the first
# thing to run on a machine with a GPU. It prints one table, and exits 1 if a row failed;
# docs/speed.md keeps the table with the device named.
#
#   bash benchmarks/gpu_check.sh                         # on the GPU
#   bash benchmarks/gpu_check.sh --device cpu --smoke    # every row, as small as it goes (a test runs it)
#
# Options: --device (default cuda), --steps N (default 50), --models "vggish clmr ..." (default
# all seven), --out DIR (default a new temporary folder), --smoke (3 steps of vggish at batch
# 8, 8 clips of each split, one probe seed of 3 epochs, the plan of vggish on pitch alone).
#
# Rows:
#   environment       torch, its CUDA, the device, native bfloat16, what nvidia-smi lists
#   train <model>     --steps steps of its train.py under --precision auto: items/s and the
#                     share of a step spent waiting for data (log.csv, the first step, a
#                     warm-up timed apart, left out)
#   resume <model>    5 more steps with --resume from where it stopped
#   float32 vs tf32   untrained CLMR's between-clip differences with TF32 convolutions against
#                     IEEE float32 (what --precision float32 gives): how far TF32 moves them
#   torchrun 2 GPUs   where there are two: the loss of step 1 of vggish under torchrun against
#                     one process (the same global batch, float32)
#   extract           vggish features for pitch with --layers all and three conditions
#   probes            downstream.py on them: seconds, and the GPU's peak memory
#   plan              reproduce.py --plan on this device: the full demo grid's estimate
set -uo pipefail
cd "$(dirname "$0")/.."
DEVICE=cuda STEPS=50 MODELS="vggish musicnn ast clmr tmae tune mulap" OUT="" TRAIN=() EXTRACT=() PROBES=() PLAN=()
while [ $# -gt 0 ]; do
    case "$1" in
        --device) DEVICE=$2; shift 2 ;;
        --steps) STEPS=$2; shift 2 ;;
        --models) MODELS=$2; shift 2 ;;
        --out) OUT=$2; shift 2 ;;
        --smoke) STEPS=3 MODELS=vggish TRAIN=(--batch-size 8) EXTRACT=(--clips-per-split 8) PROBES=(--seeds 1 --epochs 3)
                 PLAN=(--quick --models vggish --tasks pitch); shift ;;
        *) echo "error: unknown option $1 (see the comment at the top of $0)" >&2; exit 2 ;;
    esac
done
OUT=${OUT:-$(mktemp -d)}
mkdir -p "$OUT"
ROWS="$OUT/rows.tsv"
: > "$ROWS"
COMMON=(--demo --device "$DEVICE" --runs-dir "$OUT/runs")

# a row of the table: name, ok/FAIL/skipped, one line of detail (progress bars' carriage returns
# and tabs flattened)
row() { printf '%s\t%s\t%s\n' "$1" "$2" "$(printf '%s' "$3" | tr '\r\t' '\n ' | tail -n 1 | cut -c1-150)" >> "$ROWS"; }

# "items/s X, data wait Y%" from a run's log.csv, its first step (the warm-up) left out
log_summary() {
    python - "$1" <<'EOF'
import csv, json, sys
from pathlib import Path
run = Path(sys.argv[1])
batch = json.loads((run / "config.json").read_text())["args"]["batch_size"]
every = list(csv.DictReader(open(run / "log.csv", newline="")))
rows = every[1:] or every
step = sum(batch / float(r["items_per_s"]) for r in rows) / len(rows)
wait = sum(float(r["data_s"]) for r in rows) / len(rows)
print(f"{batch / step:.1f} items/s at batch {batch}, data wait {wait / step:.0%} of a step, {len(rows)} steps")
EOF
}

timed() {  # run a command; its seconds go to $SECONDS_TAKEN, its output to $OUT/last.log
    local start=$(date +%s.%N)
    "$@" > "$OUT/last.log" 2>&1
    local rc=$?
    SECONDS_TAKEN=$(python -c "print(f'{$(date +%s.%N) - $start:.1f}')")
    return $rc
}

fail_line() { cat "$OUT/last.log"; }  # row() keeps its last line

env_line=$(python - "$DEVICE" <<'EOF'
import shutil, subprocess, sys, torch
device = torch.device(sys.argv[1])
smi = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True).stdout.splitlines()[:1] \
    if shutil.which("nvidia-smi") else ["no nvidia-smi"]
name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
bf16 = torch.cuda.is_bf16_supported(including_emulation=False) if device.type == "cuda" else "n/a"
print(f"torch {torch.__version__} (CUDA {torch.version.cuda}), {name}, native bfloat16 {bf16}, "
      f"{torch.cuda.device_count()} GPU(s); {smi[0] if smi else ''}")
EOF
)
row environment ok "$env_line"

for model in $MODELS; do
    run="$OUT/runs/demo/$model/5/seed0"
    if timed python "$model/train.py" "${COMMON[@]}" --subset 5 --max-steps "$STEPS" "${TRAIN[@]}"; then
        row "train $model" ok "$(log_summary "$run"), ${SECONDS_TAKEN} s with start-up"
    else
        row "train $model" FAIL "$(fail_line)"
        continue
    fi
    if timed python "$model/train.py" "${COMMON[@]}" --subset 5 --max-steps $((STEPS + 5)) --resume "${TRAIN[@]}"; then
        row "resume $model" ok "$(python -c "import json; print('finished at step', json.load(open('$run/finished.json'))['step'])")"
    else
        row "resume $model" FAIL "$(fail_line)"
    fi
done

tf32=$(python - "$DEVICE" <<'EOF' 2> "$OUT/tf32.log"
import sys, torch
sys.path.insert(0, ".")
from common.data.dataset import load_dataset
from common.evaluation.extraction import windows
from common.models.registry import build
device = torch.device(sys.argv[1])
torch.manual_seed(0)
encoder = build("clmr").to(device).eval()
dataset = load_dataset("MTAT", demo=True)
cache = dataset.audio(encoder.sample_rate)
x = torch.stack([torch.from_numpy(windows(cache.clip(c.id), encoder.input_samples)[0]) for c in dataset.clips[:8]])
def differences(precision):
    torch.backends.cudnn.conv.fp32_precision = precision
    torch.backends.cuda.matmul.fp32_precision = precision
    with torch.inference_mode():
        e = encoder.embed(x.to(device)).double()
    return e - e.mean(0)
exact, tf32 = differences("ieee"), differences("tf32")
print(f"TF32 moves the between-clip differences by {((tf32 - exact).norm() / exact.norm()).item():.2%}")
EOF
)
if [ $? -eq 0 ]; then row "float32 vs tf32" ok "$tf32"; else row "float32 vs tf32" FAIL "$(cat "$OUT/tf32.log")"; fi

gpus=$(python -c "import torch; print(torch.cuda.device_count())")
if [ "$DEVICE" = cuda ] && [ "$gpus" -ge 2 ]; then
    one="$OUT/one" two="$OUT/two"
    timed python vggish/train.py --demo --device cuda --precision float32 --subset 5 --max-steps 1 \
        --batch-size 16 --runs-dir "$one"
    timed torchrun --standalone --nproc_per_node=2 vggish/train.py --demo --device cuda --precision float32 \
        --subset 5 --max-steps 1 --batch-size 16 --runs-dir "$two"
    loss() { python -c "import csv; print(next(csv.DictReader(open('$1/demo/vggish/5/seed0/log.csv')))['loss'])"; }
    row "torchrun 2 GPUs" "$([ -f "$two/demo/vggish/5/seed0/log.csv" ] && echo ok || echo FAIL)" \
        "step 1 loss: one process $(loss "$one" 2>/dev/null), two $(loss "$two" 2>/dev/null)"
else
    row "torchrun 2 GPUs" skipped "$gpus GPU(s) here"
fi

if [ -f "$OUT/runs/demo/vggish/5/seed0/last.pt" ]; then
    if timed python extract_features.py --model vggish --task pitch "${COMMON[@]}" --features-dir "$OUT/features" \
            --layers all --snr clean 0 deform_1 "${EXTRACT[@]}"; then
        row extract ok "vggish pitch, untrained and 5, every layer, 3 conditions: ${SECONDS_TAKEN} s"
    else
        row extract FAIL "$(fail_line)"
    fi
    probes=$(python - "$DEVICE" "$OUT" "${PROBES[@]}" <<'EOF' 2> "$OUT/probes.log"
import runpy, sys, time, torch
device, out, more = sys.argv[1], sys.argv[2], sys.argv[3:]
sys.argv = ["downstream.py", "--model", "vggish", "--task", "pitch", "--demo", "--device", device,
            "--features-dir", f"{out}/features", "--results-dir", f"{out}/results", *more]
started = time.perf_counter()
runpy.run_path("downstream.py", run_name="__main__")
memory = f"peak GPU memory {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB" if device == "cuda" else "on the CPU"
print(f"{time.perf_counter() - started:.1f} s, {memory}")
EOF
)
    if [ $? -eq 0 ]; then row probes ok "$probes"; else row probes FAIL "$(cat "$OUT/probes.log")"; fi
else
    row extract skipped "no vggish run (MODELS)"
fi

if timed python reproduce.py --plan --demo --device "$DEVICE" "${PLAN[@]}"; then
    row plan ok "$(grep "^total" "$OUT/last.log" | tail -n 1 | tr -s ' ' | cut -c1-150)"
else
    row plan FAIL "$(fail_line)"
fi

echo
column -t -s $'\t' "$ROWS"
echo "(logs and runs under $OUT)"
! grep -q $'\tFAIL\t' "$ROWS"
