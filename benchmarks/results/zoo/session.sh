#!/usr/bin/env bash
# The zoo on a lent one-GPU machine (issue 30): one background session, started by the
# lease's last carrying call and polled by short calls after it. Written on 2026-12-06, when
# no machine could be started (14 tries); checked only up to the CUDA-provider test, on a
# machine without a GPU.
#
#   setsid nohup bash benchmarks/results/zoo/session.sh COMMIT TREE WORK > WORK/session.log 2>&1 &
#
# WORK is a scratch folder on the device machine. onnxruntime-gpu 1.31.1 (the machine has only
# the CPU-only onnxruntime) is carried as its wheel's files in an xz-compressed tar (195 MiB
# against the wheel's 244), split into four parts of under 52 MB, each in its own git-ignored
# folder carried by one call and copied to WORK/p; made on a machine with network access:
#   pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_28_x86_64 -d W onnxruntime-gpu==1.31.1
#   (cd X && unzip -q W/onnxruntime_gpu-*.whl && tar cf - . | xz -T0 -6) > ort.tar.xz
#   split -n 4 -d ort.tar.xz part.                  # part.00 .. part.03
# This script joins and unpacks them into WORK/site, uninstalls the CPU-only package, and
# stops unless ONNX Runtime's CUDA execution provider loads. Then, on the one GPU, never overlapping:
#
#   1. auto mode for MODELS at batch 1, 32 and 256, until SESSION_S - COMPILE_RESERVE_S; at
#      batch 32 with its compiled engines (built there, minutes each) unless WITH_COMPILE=0;
#   2. torch.compile max-autotune at batch 32 for COMPILE (default: MODELS), each started
#      compile running to its timed row, none started in the last STOP_S seconds.
#
# The committed zoo JSONs are copied in first, so a run resumes: complete models are skipped,
# a model cut short resumes at its first batch size not measured, compiled models are not
# compiled again; a model measured without compiled engines at batch 32 (the 2026-11-30 zoo)
# is measured anew with them. Results: WORK/out/zoo/*.json and WORK/out/zoo.txt (the
# progress log).
#
# GPUS=N (a machine of N GPUs): MODELS are dealt round-robin to N processes, each given one
# GPU (CUDA_VISIBLE_DEVICES; the product's device lock is the physical GPU's) and its own
# slice of the CPU cores (taskset, and Inductor's compile threads to match), so one GPU's
# compile never shares cores with another's timing; each runs steps 1 and 2 for its models
# and logs to WORK/out/zoo-gpuI.txt. Each sweep's busy check still records the others.
set -u
cd "$(dirname "$0")/../../.."
export VISIONBENCH_COMMIT=${1:-unknown} VISIONBENCH_TREE=${2:-unknown}
WORK=${3:?usage: session.sh COMMIT TREE WORK}
zoo_models() { python3 -c 'import sys; sys.path.insert(0, "benchmarks"); import zoo; print(zoo.DEFAULT_MODELS)'; }
MODELS=${MODELS:-$(zoo_models)}  # the zoo's 18 (benchmarks/zoo.py DEFAULT_MODELS)
COMPILE=${COMPILE:-$MODELS}
END=$(($(date +%s) + ${SESSION_S:-1300}))
left() { echo $((END - $(date +%s))); }
R=$WORK/out && mkdir -p "$R/zoo"
log() { echo "$(date -u +%H:%M:%S) $*" | tee -a "$R/zoo.txt"; }

. benchmarks/results/gpu-machine.sh && gpu_machine "$WORK" "$R/zoo.txt"
cp benchmarks/results/zoo/*.json "$R/zoo/" 2>/dev/null

engines=() && [ "${WITH_COMPILE:-1}" = 1 ] && engines=(--with-compile)
# One GPU's share: its models' auto mode, then their torch.compile rows.
zoo_on() {  # zoo_on MODELS COMPILE LOG [PIN...]
  local models=$1 compile=$2 out=$3 && shift 3
  "$@" python3 benchmarks/zoo.py --out "$R/zoo" --models "$models" --compile-models "" \
    "${engines[@]}" --budget-s $(($(left) - ${COMPILE_RESERVE_S:-420})) >> "$out" 2>&1
  "$@" python3 benchmarks/zoo.py --out "$R/zoo" --compile-only --compile-models "$compile" \
    --budget-s $(($(left) - ${STOP_S:-240})) >> "$out" 2>&1
}
GPUS=${GPUS:-1}
if [ "$GPUS" = 1 ]; then
  log "auto mode, then torch.compile: $MODELS / $COMPILE"
  zoo_on "$MODELS" "$COMPILE" "$R/zoo.txt"
else
  IFS=, read -ra all <<< "$MODELS"
  per=$(($(nproc) / GPUS)) && [ "$per" -ge 1 ] || per=1
  for ((i = 0; i < GPUS; i++)); do
    mine="" && for ((k = i; k < ${#all[@]}; k += GPUS)); do mine+=${mine:+,}${all[k]}; done
    [ -n "$mine" ] || continue
    comp=$(tr , '\n' <<< "$mine" | grep -Fxf <(tr , '\n' <<< "$COMPILE") | paste -sd, -)
    pin=() && [ "$(nproc)" -ge $((2 * GPUS)) ] && command -v taskset >/dev/null && pin=(taskset -c "$((i * per))-$((i * per + per - 1))")
    log "GPU $i (cores ${pin[2]:-all}): $mine / torch.compile: ${comp:-none}"
    (export CUDA_VISIBLE_DEVICES=$i TORCHINDUCTOR_COMPILE_THREADS=$per
     zoo_on "$mine" "$comp" "$R/zoo-gpu$i.txt" "${pin[@]}") &
  done
  wait
  python3 benchmarks/zoo.py --out "$R/zoo" --merge >> "$R/zoo.txt" 2>&1
fi
log "session done"
