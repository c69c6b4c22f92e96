#!/usr/bin/env bash
# How bench/results/*_h200* were produced on the lent H200 (no network there). The payload is
# vLLM 0.26.0 (PyPI wheel, trimmed for Hopper) plus the wheels of requirements-gpu.txt, unpacked
# into one tar.xz split in two parts that travel in two back-to-back calls, and polars's wheels.
# Build it on a CPU machine with PyPI from a fresh checkout (what is trimmed: its header):
#   bench/build_payload.sh              -> .gpu/p1, .gpu/p2, .gpu/pol/*.whl, .gpu/SHA256SUMS
#   bench/h200_session.sh start PART2   join the parts, unpack to /tmp/site, start the pipeline
#   bench/h200_session.sh wait          wait for the pipeline (at most $WAIT s), copy results
#   bench/h200_session.sh pipeline      the measurements, in priority order
set -u
RES=/tmp/res
export PYTHONPATH=/tmp/site HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 VLLM_NO_USAGE_STATS=1 \
  PYTHONUNBUFFERED=1 VLLM_WORKER_MULTIPROC_METHOD=spawn VLLM_USE_FLASHINFER_SAMPLER=0
here="$(cd "$(dirname "$0")/.." && pwd)"

collect() {
  mkdir -p "$OUT"
  cp "$RES"/*.json "$OUT"/ 2>/dev/null
  cp "$RES"/log "$OUT"/log 2>/dev/null
  tail -c 6000 "$RES"/log 2>/dev/null
}

wait_pipeline() {
  local t0=$SECONDS
  while [ ! -f "$RES/DONE" ] && [ $((SECONDS - t0)) -lt "${WAIT:-540}" ]; do sleep 5; done
  collect
  [ -f "$RES/DONE" ] && echo "PIPELINE DONE" || echo "PIPELINE RUNNING"
}

case "$1" in
  start)
    mkdir -p "$RES" /tmp/site
    cat /tmp/p/p1 "$2" > /tmp/payload.tar.xz || exit 3
    # polars (the gateway's data frames) is not in the device image: its wheels, if carried
    [ -n "${3:-}" ] && python3 -m pip install -q --no-index --no-deps --no-compile \
      --no-cache-dir --target /tmp/site "$3"/*.whl
    sha256sum /tmp/payload.tar.xz
    t=$SECONDS; xz -dc -T0 /tmp/payload.tar.xz | tar -x -C /tmp/site || exit 4
    echo "unpacked in $((SECONDS - t)) s"; rm -f /tmp/payload.tar.xz /tmp/p/p1
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
    cd "$here" && setsid nohup bash bench/h200_session.sh pipeline > "$RES/log" 2>&1 < /dev/null &
    sleep 2; wait_pipeline ;;
  wait) wait_pipeline ;;
  pipeline)
    cd "$here" || exit 1
    python3 -c "import vllm, torch; print('vllm', vllm.__version__, 'torch', torch.__version__)"
    run() { echo "=== $* ($(date +%T))"; timeout "$1" python3 -m bench.bench_hardware "${@:2}" \
            --out "$RES" ; echo "=== rc $? ($(date +%T))"; }
    if [ -z "${SKIP_TABLES:-}" ]; then
      run 480 tables --model gpt-oss-120b --format mxfp4 --fallback-layers 12
      run 360 tables --model r1-distill-qwen-14b --format awq
    fi
    # the first session's engine bench (plain LLM after the wrapper, one at a time); the command
    # now runs two engines at once, interleaved: bench/h200_issue15.sh, on the dense 14B
    run 600 engine --model gpt-oss-120b --format mxfp4
    echo "=== runner ($(date +%T))"; timeout 300 python3 -m bench.bench_hardware runner --budget 150 --out "$RES"
    touch "$RES/DONE" ;;
esac
