#!/usr/bin/env bash
# GPU lanes: strata's parity tests and forward benchmark on an NVIDIA GPU, through CUDA and,
# where `vulkaninfo` shows NVIDIA's Vulkan driver, through Vulkan. Each step's output goes to
# a log under --out; a summary follows, and the exit status is non-zero if any step failed.
#
#   bash scripts/gpu-lanes.sh [--cuda-device N] [--skip-vulkan] [--skip-bench] [--out DIR]
#
# Environment: STRATA_BENCH_BATCH, STRATA_BENCH_SEQ, STRATA_BENCH_ITERS (default 4, 256, 5)
# size the forward benchmark; CARGO_NET_OFFLINE=true builds from a filled cargo cache.
# Everything builds with --release (one profile for tests and benchmark, so the
# dependencies compile once per backend).
set -uo pipefail
script="$(cd "$(dirname "$0")" && pwd)/$(basename "$0")"
cd "$(dirname "$script")/.." || exit 2
export CARGO_TERM_COLOR=never
# wgpu (the Vulkan lane) wants a runtime directory, which a headless session may lack.
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}"

cuda_device=0
skip_vulkan=false
skip_bench=false
out=target/gpu-lanes
usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$script"; }
while [ $# -gt 0 ]; do
  case "$1" in
    --cuda-device) cuda_device="${2:?--cuda-device needs an index}"; shift 2 ;;
    --skip-vulkan) skip_vulkan=true; shift ;;
    --skip-bench) skip_bench=true; shift ;;
    --out) out="${2:?--out needs a folder}"; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    *) echo "gpu-lanes: unknown argument \`$1\`" >&2; usage >&2; exit 2 ;;
  esac
done
case "$cuda_device" in
  '' | *[!0-9]*) echo "gpu-lanes: --cuda-device takes an index, not \`$cuda_device\`" >&2; exit 2 ;;
esac
batch="${STRATA_BENCH_BATCH:-4}"
seq="${STRATA_BENCH_SEQ:-256}"
iters="${STRATA_BENCH_ITERS:-5}"
mkdir -p "$out"
bench_model=target/bench/gpt2-small-random
example=target/release/examples/forward_throughput

results=()
benchmarks=()
failed=0
flex_timed=false
start=$(date +%s)

# run NAME COMMAND...: runs one step, its output to the terminal and to $out/NAME.log, and
# records PASS or FAIL with its wall time.
run() {
  local name="$1"
  shift
  local log="$out/$name.log" t0 status
  t0=$(date +%s)
  echo "== $name: $* ($(($(date +%s) - start))s)"
  "$@" 2>&1 | tee "$log"
  status=${PIPESTATUS[0]}
  if [ "$status" -eq 0 ]; then
    results+=("PASS  $name ($(($(date +%s) - t0))s)")
  else
    results+=("FAIL  $name (exit $status after $(($(date +%s) - t0))s; log: $log)")
    failed=1
  fi
  return "$status"
}

skip() {
  results+=("SKIP  $1: $2")
  echo "== $1: skipped, $2"
}

# bench LANE FEATURE DEVICE: builds the forward benchmark with FEATURE and times it on
# DEVICE (and the Flex CPU baseline on the same machine, once), keeping the JSON lines.
bench() {
  local lane="$1" feature="$2" device="$3"
  if [ "$skip_bench" = true ]; then
    skip "$lane-bench" "--skip-bench"
    return 0
  fi
  run "$lane-bench-build" cargo build --release --features "$feature" --example forward_throughput || return 1
  if [ ! -f "$bench_model/model.safetensors" ]; then
    run "bench-model" "$example" write-random "$bench_model" || return 1
  fi
  local target
  for target in flex "$device"; do
    if [ "$target" = flex ]; then
      [ "$flex_timed" = true ] && continue
      flex_timed=true
    fi
    local name="bench-${target//:/}"
    if run "$lane-$name" "$example" time "$bench_model" "$batch" "$seq" "$iters" "$target"; then
      tail -n 1 "$out/$lane-$name.log" >"$out/$name.json"
      benchmarks+=("forward gpt2-small ${batch}x${seq} on $target: $(cat "$out/$name.json")")
    fi
  done
  if run "$lane-gemm-peak" "$example" gemm-peak 4096 "$device"; then
    benchmarks+=("gemm 4096 on $device: $(tail -n 1 "$out/$lane-gemm-peak.log")")
  fi
}

# The GPU itself.
if ! command -v nvidia-smi >/dev/null 2>&1; then
  echo "gpu-lanes: nvidia-smi not found: this machine has no NVIDIA driver" >&2
  exit 1
fi
run nvidia-smi nvidia-smi --query-gpu=index,name,driver_version,memory.total --format=csv || {
  echo "gpu-lanes: nvidia-smi sees no GPU" >&2
  exit 1
}
if ! ldconfig -p 2>/dev/null | grep -q libnvrtc; then
  echo "gpu-lanes: warning: libnvrtc is not in the linker cache; burn's CUDA backend compiles" \
    "its kernels with NVRTC at run time, so set LD_LIBRARY_PATH to the CUDA toolkit's lib64 if the tests fail to load it"
fi

# The CUDA lane.
export STRATA_CUDA_DEVICE="$cuda_device"
run cuda-parity cargo test --release -p strata-core --features cuda --test parity_cuda
bench cuda cuda "cuda:$cuda_device"

# The Vulkan lane, on NVIDIA's driver only (Mesa's software driver is CI's wgpu lane).
if [ "$skip_vulkan" = true ]; then
  skip vulkan "--skip-vulkan"
elif ! command -v vulkaninfo >/dev/null 2>&1; then
  skip vulkan "vulkaninfo not found (Debian: apt-get install vulkan-tools)"
elif ! vulkaninfo --summary 2>/dev/null | grep -Eiq 'DRIVER_ID_NVIDIA_PROPRIETARY|vendorID *= *0x10de'; then
  skip vulkan "vulkaninfo shows no NVIDIA Vulkan driver"
else
  run vulkan-info vulkaninfo --summary
  run vulkan-parity cargo test --release -p strata-core --features vulkan --test parity_vulkan
  bench vulkan vulkan vulkan
fi

echo
echo "== summary ($(($(date +%s) - start))s; logs in $out)"
printf '%s\n' "${results[@]}"
if [ "${#benchmarks[@]}" -gt 0 ]; then
  printf '%s\n' "${benchmarks[@]}"
fi
exit "$failed"
