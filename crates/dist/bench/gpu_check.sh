#!/usr/bin/env bash
# The prepared GPU check of the data-parallel path (issue 12), for a machine with one CUDA GPU and
# a python that has torch 2.11 (no Rust needed there: carry target/release/inheritune, built here).
#
#   1. A NCCL world of one (torchrun, 1 rank) trains the PyTorch parity fixture
#      (crates/train/tests/fixtures/parity) to the same per-step losses as a run without
#      distribution, and both to make_parity.py's expected.json (f32 + TF32).
#   2. The step-time cost of the gradient path on the gpt2-medium preset: `inheritune train` on
#      the bundled corpus, one process against a NCCL world of one (same steps, same batch),
#      and the all-reduce of a gpt2-medium-sized gradient (354.6M f32) on its own.
#
# Usage: bash crates/dist/bench/gpu_check.sh [BIN] [OUT]   (DEVICE=cpu smoke-tests it with Gloo)
# Writes OUT/summary.txt and the runs' metrics; exits non-zero when a check fails.
set -euo pipefail
cd "$(dirname "$0")/../../.."
BIN=${1:-target/release/inheritune}
OUT=${2:-${OUT:-/tmp/gpu-check}}
DEVICE=${DEVICE:-cuda}
PY=${PY:-python3}
STEPS=${STEPS:-30}
TORCH_LIB=$("$PY" -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')
export LD_LIBRARY_PATH="$TORCH_LIB:${LD_LIBRARY_PATH:-}" RUST_LOG=warn
FX=crates/train/tests/fixtures/parity
mkdir -p "$OUT"
summary="$OUT/summary.txt"
: > "$summary"
say() { echo "$*" | tee -a "$summary"; }
say "device $DEVICE, binary $BIN, $(date -u)"
[ "$DEVICE" = cuda ] && nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee -a "$summary"

# 1. parity: one process vs a NCCL (Gloo on CPU) world of one, against PyTorch.
cat > "$OUT/parity.toml" <<EOF
[model]
config = "$PWD/$FX/init/config.json"
[data]
dir = "$PWD/$FX/data"
order = "sequential"
[train]
micro_batch = 2
seq_len = 16
grad_accum = 2
grad_accum_mode = "sum"
max_steps = 8
lr = 1e-2
min_lr = 1e-3
warmup_steps = 2
decay_steps = 8
beta1 = 0.9
beta2 = 0.95
eps = 1e-8
weight_decay = 0.1
grad_clip = 1.0
eval_interval = 100
eval_iters = 1
EOF
rm -rf "$OUT/solo" "$OUT/world1"
"$BIN" train --config "$OUT/parity.toml" --run "$OUT/solo" --init "$FX/init" --device "$DEVICE" --dtype f32 > /dev/null
"$PY" -m torch.distributed.run --no-python --standalone --nproc-per-node 1 \
    "$BIN" train --config "$OUT/parity.toml" --run-dir "$OUT/world1" --init "$FX/init" --device "$DEVICE" --dtype f32 > /dev/null
"$PY" - "$OUT" "$FX/expected.json" <<'EOF' | tee -a "$summary"
import json, sys
out, expected = sys.argv[1], json.load(open(sys.argv[2]))
def train(run):
    return [json.loads(l) for l in open(f"{out}/{run}/metrics.jsonl") if '"train"' in l]
solo, world1 = train("solo"), train("world1")
rel = lambda a, b: abs(a - b) / max(abs(b), 1e-6)
d_dist = max(max(rel(a["loss"], b["loss"]), rel(a["grad_norm"], b["grad_norm"])) for a, b in zip(world1, solo))
d_torch = max(rel(a["loss"], w) for a, w in zip(world1, expected["loss"]))
ok = len(solo) == len(world1) == 8 and d_dist < 1e-5 and d_torch < 1e-4
print(f"parity: world of 1 vs one process max rel diff {d_dist:.2e} (< 1e-5), vs PyTorch {d_torch:.2e} (< 1e-4): {'ok' if ok else 'FAILED'}")
sys.exit(0 if ok else 1)
EOF

# 2. gradient-path cost on gpt2-medium (bf16 autocast on CUDA), bundled corpus.
DATA="$OUT/sotu"
[ -f "$DATA/manifest.json" ] || "$BIN" prepare --input datasets/sotu/sotu.parquet --out "$DATA" --preset generic --val-fraction 0.02 > /dev/null
if [ "$DEVICE" = cuda ]; then MODEL='preset = "gpt2-medium"'; B=8; T=1024; else MODEL=$'preset = "gpt2-tiny"\n[model.overrides]\nvocab_size = 50304\nn_positions = 64\nn_embd = 64\nn_head = 2\nn_layer = 2'; B=2; T=64; fi
cat > "$OUT/medium.toml" <<EOF
[model]
$MODEL
[data]
dir = "$DATA"
[train]
micro_batch = $B
seq_len = $T
grad_accum = 1
max_steps = $STEPS
warmup_steps = 5
eval_interval = 100000
eval_iters = 1
EOF
rm -rf "$OUT/m-solo" "$OUT/m-world1"
"$BIN" train --config "$OUT/medium.toml" --run "$OUT/m-solo" --device "$DEVICE" > /dev/null
"$PY" -m torch.distributed.run --no-python --standalone --nproc-per-node 1 \
    "$BIN" train --config "$OUT/medium.toml" --run-dir "$OUT/m-world1" --device "$DEVICE" > /dev/null
"$PY" - "$OUT" <<'EOF' | tee -a "$summary"
import json, sys, statistics
out = sys.argv[1]
def rate(run):
    tps = [json.loads(l)["tokens_per_s"] for l in open(f"{out}/{run}/metrics.jsonl") if '"train"' in l]
    return statistics.median(tps[5:])
a, b = rate("m-solo"), rate("m-world1")
print(f"step cost: one process {a:.0f} tok/s, a world of 1 (NCCL on CUDA, Gloo on CPU) {b:.0f} tok/s, ratio {b / a:.3f}")
EOF
NUMEL=$([ "$DEVICE" = cuda ] && echo 354599936 || echo 10000000)
"$PY" -m torch.distributed.run --no-python --standalone --nproc-per-node 1 \
    "$BIN" bench allreduce --numel "$NUMEL" --device "$DEVICE" | tail -n 1 | tee -a "$summary"
say "done"
