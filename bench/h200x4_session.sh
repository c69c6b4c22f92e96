#!/usr/bin/env bash
# Issue 18 on a lent machine of four H200s (device kind nvidia-h200-x4; no network there): the
# 4x L4 layouts TP 4, DP 4 and TP 2 x DP 2 (bench/layouts.py). Same payload as
# bench/h200_session.sh (vLLM 0.26.0 trimmed + requirements-gpu.txt wheels, one tar.xz split in
# two parts, .gpu/p1 and .gpu/p2) plus polars's wheels (.gpu/pol, for Submission's data frames),
# all built from PyPI by `bench/build_payload.sh` (run from the checkout's root, on a CPU machine).
# Each part is ~60 MB and a call carries at most 64 MiB, so the parts travel in back-to-back
# calls (the machine keeps /tmp while warm: 30 s after a call) - bench/results/l4_layouts_pending.md
# gives the exact calls:
#   bench/h200x4_session.sh stash DIR_OR_FILE...   copy carried payload parts to /tmp/p
#   bench/h200x4_session.sh start                  join, unpack, check the machine, start the pipeline
#   bench/h200x4_session.sh wait                   wait for the pipeline (at most $WAIT s), collect
#   bench/h200x4_session.sh pipeline               the measurements, in priority order
# NVLink multicast stays off (a program using it can take the host's GPUs out of service): the
# variables are exported here, so every process (vLLM's engine cores and workers too) inherits
# them, and bench/layouts.py sets and asserts them again before vLLM starts.
set -u
RES=/tmp/res
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1 \
  VLLM_ALLREDUCE_USE_SYMM_MEM=0 VLLM_ALLREDUCE_USE_FLASHINFER=0
export PYTHONPATH=/tmp/site HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 VLLM_NO_USAGE_STATS=1 \
  PYTHONUNBUFFERED=1 VLLM_WORKER_MULTIPROC_METHOD=spawn VLLM_USE_FLASHINFER_SAMPLER=0
here="$(cd "$(dirname "$0")/.." && pwd)"

collect() {  # at most 8 files come back: one archive of every result, and the log
  mkdir -p "$OUT"
  tar -czf "$OUT/results.tgz" -C "$RES" --exclude=site . 2>/dev/null
  cp "$RES"/log "$OUT"/log 2>/dev/null
  tail -c 8000 "$RES"/log 2>/dev/null
}

wait_pipeline() {
  local t0=$SECONDS
  while [ ! -f "$RES/DONE" ] && [ $((SECONDS - t0)) -lt "${WAIT:-540}" ]; do sleep 5; done
  collect
  [ -f "$RES/DONE" ] && echo "PIPELINE DONE" || echo "PIPELINE RUNNING"
}

case "$1" in
  stash)
    mkdir -p /tmp/p && cp -r "${@:2}" /tmp/p/ && ls -la /tmp/p && df -h /tmp | tail -1 ;;
  start)
    mkdir -p "$RES" /tmp/site
    [ "$(nvidia-smi -L | wc -l)" -ge 4 ] || { echo "fewer than 4 GPUs"; nvidia-smi -L; exit 2; }
    cat /tmp/p/p1 "${2:-.gpu/p2}" > /tmp/payload.tar.xz || exit 3
    sha256sum /tmp/payload.tar.xz
    t=$SECONDS; xz -dc -T0 /tmp/payload.tar.xz | tar -x -C /tmp/site || exit 4
    echo "unpacked in $((SECONDS - t)) s"; rm -f /tmp/payload.tar.xz /tmp/p/p1
    if ls /tmp/p/pol/*.whl >/dev/null 2>&1; then
      python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
        --target /tmp/site /tmp/p/pol/*.whl
    fi
    { nvidia-smi --query-gpu=index,name,memory.total,driver_version --format=csv,noheader
      nvidia-smi topo -m
      python3 -c "import torch; print('torch GPUs', torch.cuda.device_count())"
      env | grep -E 'NVLS|MULTICAST|SYMM_MEM|FLASHINFER' | sort; } > "$RES/machine.txt" 2>&1
    cat "$RES/machine.txt"
    cd "$here" && setsid nohup bash bench/h200x4_session.sh pipeline > "$RES/log" 2>&1 < /dev/null &
    sleep 2; wait_pipeline ;;
  wait) wait_pipeline ;;
  pipeline)
    cd "$here" || exit 1
    python3 -c "import vllm, torch, polars; print('vllm', vllm.__version__, 'torch', torch.__version__)"
    step() { echo "=== $* ($(date +%T))"; timeout "$1" python3 -m bench.layouts "${@:2}" \
             --out "$RES" ; echo "=== rc $? ($(date +%T))"; }
    # 1. the manifest's model (14B AWQ, Marlin) in the three layouts
    step 420 tables --layout tp4 --quantization awq
    step 420 tables --layout dp4 --quantization awq
    step 420 tables --layout tp2dp2 --quantization awq
    # 2. Submission on the tiny model: aborts reach every replica; a hung replica is restarted
    step 600 runner --layouts dp4,tp2dp2,tp4 --problems 6
    # 3. FP8 (the manifest's other 14B entries) in the same layouts
    step 420 tables --layout tp4 --quantization fp8
    step 420 tables --layout dp4 --quantization fp8
    step 420 tables --layout tp2dp2 --quantization fp8
    touch "$RES/DONE" ;;
  *) echo "usage: $0 stash|start|wait|pipeline"; exit 2 ;;
esac
