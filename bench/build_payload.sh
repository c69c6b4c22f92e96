#!/usr/bin/env bash
# Build the payload a lent GPU machine (no network, Python 3.12, torch 2.11.0+cu130 preinstalled)
# needs to run vLLM: vllm plus the other wheels pinned in requirements-gpu.txt, downloaded from
# PyPI for CPython 3.12 on x86_64 Linux, unpacked, trimmed, packed as one tar.xz and split into
# parts that each fit one call's 64 MiB carry; polars's wheels (Submission's data frames, not in
# the device image) go, not unpacked, into pol/. bench/h200_session.sh and
# bench/h200x4_session.sh join and unpack it on the device.
#
#   bench/build_payload.sh [OUTDIR]    default OUTDIR: .gpu in the repo root (ignored by git)
#
# Writes OUTDIR/p1, OUTDIR/p2 (more parts only if the archive outgrows 2 x 60 MiB; the session
# scripts join p1 and p2), OUTDIR/pol/*.whl and OUTDIR/SHA256SUMS; prints each part's sha256.
# A bash script because every step is a stock tool (pip download, unzip, strip, tar, xz, split).
#
# Trimmed, for Hopper (H100/H200) only - an L4 (sm89) needs FlashAttention 2: ship the whole
# wheel to Kaggle. Each path must exist, so a new vLLM whose layout moved fails here:
#   * FlashAttention 2 kernels (Hopper runs FA3), the optional Rust front-end binary (vllm-rs),
#     the Blackwell-only fmha_sm100 kernels, DeepGEMM's builds for other Pythons and its JIT
#     headers (cutlass, cute, deep_gemm under third_party/deep_gemm/include);
#   * the symbols of vLLM's six largest extensions (strip --strip-unneeded).
# _moe_C and third_party/triton_kernels stay (gpt-oss's MXFP4 MoE runs on them).
#
# Reproducible: wheels pinned, unzip under TZ=UTC, entries sorted, owner 0 and one fixed mtime,
# xz -9 with a fixed block size in multi-threaded mode (its bytes are the same for any thread
# count >= 2, but not for -T1). Variables: XZ_THREADS (default 2), PART_MAX (default 60 MiB),
# PYTHON (the pip to download with; default .venv/bin/python, else python3).
set -euo pipefail
umask 022
export TZ=UTC LC_ALL=C

PY=3.12
PY_TAG=cpython-312
POLARS=(polars==2.1.0 polars-runtime-32==2.1.0)   # what requirements.txt resolved to when pinned
TRIM=(
  vllm/vllm_flash_attn/_vllm_fa2_C.abi3.so
  vllm/vllm-rs
  vllm/third_party/fmha_sm100
  vllm/third_party/deep_gemm/include
)
STRIP=(
  vllm/_C_stable_libtorch.abi3.so
  vllm/_moe_C_stable_libtorch.abi3.so
  vllm/vllm_flash_attn/_vllm_fa3_C.abi3.so
  vllm/_flashmla_C.abi3.so
  vllm/_qutlass_C.abi3.so
  vllm/_rust_tool_parser.abi3.so
)
MTIME=@1767225600          # 2026-01-01 00:00 UTC, every entry of the tar
XZ_BLOCK=201326592         # 192 MiB: xz -9's own multi-threaded block size, fixed here
XZ_THREADS=${XZ_THREADS:-2}
PART_MAX=${PART_MAX:-62914560}

here="$(cd "$(dirname "$0")/.." && pwd)"
python=${PYTHON:-$here/.venv/bin/python}   # any Python with pip; only pip download runs
[ -x "$python" ] || python=python3
out="$(mkdir -p "${1:-$here/.gpu}" && cd "${1:-$here/.gpu}" && pwd)"
[ "$XZ_THREADS" -ge 2 ] || { echo "XZ_THREADS must be >= 2 (-T1 writes other bytes)"; exit 2; }
for tool in unzip strip tar xz split sha256sum; do
  command -v "$tool" >/dev/null || { echo "missing tool: $tool"; exit 2; }
done
work="$(mktemp -d "${TMPDIR:-/tmp}/payload.XXXXXX")"
trap 'rm -rf "$work"' EXIT
t0=$SECONDS

# pip picks, for each pin, the wheel the device can load: CPython 3.12, x86_64, glibc up to 2.31
# (pip 23 does not widen a manylinux_2_X platform to older ones, so each is named).
plat=()
for v in $(seq 31 -1 17); do plat+=(--platform "manylinux_2_${v}_x86_64"); done
plat+=(--platform manylinux2014_x86_64 --platform manylinux2010_x86_64 --platform manylinux1_x86_64)
download() {  # DEST REQUIREMENT...
  "$python" -m pip download -q --no-deps --only-binary=:all: --python-version "$PY" \
    --implementation cp "${plat[@]}" -d "$@"
}
grep -vE '^[[:space:]]*(#|$)' "$here/requirements-gpu.txt" > "$work/requirements.txt"
download "$work/whl" -r "$work/requirements.txt"
rm -rf "$out/pol"
download "$out/pol" "${POLARS[@]}"
echo "downloaded in $((SECONDS - t0)) s: $(ls "$work/whl" | wc -l) wheels, $(ls "$out/pol" | wc -l) polars wheels"

site="$work/site"
mkdir -p "$site"
for w in "$work"/whl/*.whl; do unzip -q -o "$w" -d "$site"; done
before=$(du -sb "$site" | cut -f1)
for p in "${TRIM[@]}"; do
  [ -e "$site/$p" ] || { echo "trim path missing from the wheels: $p"; exit 3; }
  rm -rf "${site:?}/$p"
done
others=$(find "$site/vllm/third_party/deep_gemm" -maxdepth 1 -name '_C.cpython-*.so' \
  ! -name "_C.$PY_TAG-*.so" -print -delete | wc -l)
[ "$others" -gt 0 ] || { echo "no DeepGEMM builds for other Pythons found"; exit 3; }
for p in "${STRIP[@]}"; do
  [ -f "$site/$p" ] || { echo "strip path missing from the wheels: $p"; exit 3; }
  strip --strip-unneeded "$site/$p"
done
echo "unpacked $((before / 1000000)) MB, trimmed to $(($(du -sb "$site" | cut -f1) / 1000000)) MB"

t=$SECONDS
rm -f "$out"/p[0-9]* "$out/SHA256SUMS"
tar -C "$site" --format=gnu --sort=name --owner=0 --group=0 --numeric-owner --mtime="$MTIME" \
  -cf - . | xz -9 -T"$XZ_THREADS" --block-size="$XZ_BLOCK" > "$work/payload.tar.xz"
size=$(stat -c %s "$work/payload.tar.xz")
echo "packed in $((SECONDS - t)) s: $size bytes"
parts=$(( (size + PART_MAX - 1) / PART_MAX ))
split -n "$parts" -a 1 --numeric-suffixes=1 "$work/payload.tar.xz" "$out/p"
[ "$parts" -eq 2 ] || echo "NOTE: $parts parts; the session scripts join p1 and p2 only"
(cd "$out" && sha256sum p[0-9]* pol/*.whl > SHA256SUMS)
sha256sum "$work/payload.tar.xz" | sed 's|  .*|  payload.tar.xz (the joined parts)|' >> "$out/SHA256SUMS"
ls -l "$out"/p[0-9]* | awk '{print $5, $NF}'
cat "$out/SHA256SUMS"
echo "done in $((SECONDS - t0)) s -> $out"
