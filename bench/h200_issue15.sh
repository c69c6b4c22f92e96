#!/usr/bin/env bash
# Issue 15's second H200 session (bench/results/hardware_h200.md, section "2026-12-02, second
# session"): the engine overhead on a dense model, the tiny model under vLLM, the runner, the
# harmony path through vLLM, the width sweep. Same payload as bench/h200_session.sh (vLLM 0.26.0
# trimmed + requirements-gpu.txt wheels in .gpu/p1 + .gpu/p2, polars wheels in .gpu/pol, all
# from `bench/build_payload.sh`) plus OpenAI's o200k_base.tiktoken in .gpu/enc (harmony offline).
# The device receives the session's own checkout, so a helper's changed files travel in
# .gpu/tree (ignored) and each call first copies them over the tree:
#
#   run(carry=[".gpu/tree", ".gpu/p1"],             "cp -r .gpu/tree/. . && bash bench/h200_issue15.sh stash .gpu/p1")
#   run(carry=[".gpu/tree", ".gpu/pol", ".gpu/enc"], "cp -r .gpu/tree/. . && bash bench/h200_issue15.sh stash .gpu/pol .gpu/enc")
#   run(carry=[".gpu/tree", ".gpu/p2"],             "cp -r .gpu/tree/. . && WAIT=500 bash bench/h200_issue15.sh start .gpu/p2 pipeline1")
#   run(carry=[".gpu/tree"],                        "cp -r .gpu/tree/. . && WAIT=560 bash bench/h200_issue15.sh wait pipeline1")
#   run(carry=[".gpu/tree"],                        "cp -r .gpu/tree/. . && WAIT=560 bash bench/h200_issue15.sh launch pipeline2")
# The second pipeline ran on a fresh machine: the same stash calls, start .gpu/p2 pipeline2, then
# wait calls carrying .gpu/gtok (gpt-oss's tokenizer.json, 28 MB, written by
# bench.harmony_vllm.write_tokenizer on the CPU machine; without it the device builds it).
#
# stash copies carried parts to /tmp/p (kept while the machine stays warm, 30 s after a call);
# start joins and unpacks the payload, then launches the named pipeline in the background;
# launch starts another pipeline (it waits for the one before to finish); wait collects.
# Every reply brings $OUT/results.tgz (all JSON results) and the pipeline's log. Do not pipe the
# output of start or launch (`| tail`): the pipe stays open until the background pipeline ends,
# so the call runs into its limit.
set -u
RES=/tmp/res
here="$(cd "$(dirname "$0")/.." && pwd)"
export PYTHONPATH=/tmp/site:$here HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 VLLM_NO_USAGE_STATS=1 \
  PYTHONUNBUFFERED=1 VLLM_WORKER_MULTIPROC_METHOD=spawn VLLM_USE_FLASHINFER_SAMPLER=0
[ -f /tmp/p/enc/o200k_base.tiktoken ] && export TIKTOKEN_ENCODINGS_BASE=/tmp/p/enc

collect() {  # $1: pipeline name
  mkdir -p "$OUT"
  tar -czf "$OUT/results.tgz" -C "$RES" --exclude='*.tgz' . 2>/dev/null
  cp "$RES/log_$1" "$OUT/log_$1" 2>/dev/null
  tail -c 7000 "$RES/log_$1" 2>/dev/null
}

wait_pipeline() {  # $1: pipeline name
  local t0=$SECONDS
  while [ ! -f "$RES/DONE_$1" ] && [ $((SECONDS - t0)) -lt "${WAIT:-540}" ]; do sleep 5; done
  collect "$1"
  [ -f "$RES/DONE_$1" ] && echo "PIPELINE $1 DONE" || echo "PIPELINE $1 RUNNING"
}

launch() {  # $1: pipeline name
  cd "$here" && setsid nohup bash bench/h200_issue15.sh "$1" > "$RES/log_$1" 2>&1 < /dev/null &
  sleep 2; wait_pipeline "$1"
}

step() {  # TIMEOUT COMMAND...: one measurement, its time and exit status in the log
  echo "=== ${*:2} ($(date +%T))"; timeout "$1" "${@:2}"; echo "=== rc $? ($(date +%T))"
}

case "$1" in
  stash)
    mkdir -p /tmp/p && cp -r "${@:2}" /tmp/p/ && ls -la /tmp/p && df -h /tmp | tail -1 ;;
  start)
    mkdir -p "$RES" /tmp/site
    cat /tmp/p/p1 "$2" > /tmp/payload.tar.xz || exit 3
    sha256sum /tmp/payload.tar.xz
    t=$SECONDS; xz -dc -T0 /tmp/payload.tar.xz | tar -x -C /tmp/site || exit 4
    echo "unpacked in $((SECONDS - t)) s"; rm -f /tmp/payload.tar.xz /tmp/p/p1
    if ls /tmp/p/pol/*.whl >/dev/null 2>&1; then
      python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
        --target /tmp/site /tmp/p/pol/*.whl
    fi
    { nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
      nproc; python3 --version; } > "$RES/machine.txt" 2>&1
    cat "$RES/machine.txt"
    launch "$3" ;;
  launch) mkdir -p "$RES"; launch "$2" ;;
  wait) wait_pipeline "$2" ;;
  pipeline1)
    cd "$here" || exit 1
    python3 -c "import vllm, torch, polars; print('vllm', vllm.__version__, 'torch', torch.__version__)"
    # issue 15 item 2 first (short): the tiny model, vLLM against transformers on the GPU
    step 600 python3 -m bench.tiny_vllm_check --out "$RES"
    # item 1: wrapper and solver against plain vLLM on the dense 14B (two engines at once)
    step 900 python3 -m bench.bench_hardware engine --model r1-distill-qwen-14b --format awq \
      --gpu-mem 0.42 --out "$RES"
    touch "$RES/DONE_engine"
    # issue 12: fixed per-step cost against bandwidth cost, three widths of 48 layers
    step 1300 python3 -m bench.bench_hardware widths --hidden 2560,7680,5120 --out "$RES"
    touch "$RES/DONE_pipeline1" ;;
  pipeline2)
    cd "$here" || exit 1
    while [ -f "$RES/log_pipeline1" ] && [ ! -f "$RES/DONE_pipeline1" ]; do sleep 2; done
    # the runner rehearsal with room after the model load (the first session's 150 s lost 89 s
    # to it, and the scheduler cut the first problems to 32 tokens a sample)
    step 660 python3 -m bench.bench_hardware runner --budget 360 --out "$RES"
    step 500 python3 -m bench.harmony_vllm --out "$RES"
    touch "$RES/DONE_pipeline2" ;;
  *) echo "usage: $0 stash|start|launch|wait|pipeline1|pipeline2"; exit 2 ;;
esac
