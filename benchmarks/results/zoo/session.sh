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
# compiled again. Results: WORK/out/zoo/*.json and WORK/out/zoo.txt (the progress log).
set -u
cd "$(dirname "$0")/../../.."
export VISIONBENCH_COMMIT=${1:-unknown} VISIONBENCH_TREE=${2:-unknown}
WORK=${3:?usage: session.sh COMMIT TREE WORK}
MODELS=${MODELS:-efficientnet_v2_s,shufflenet_v2_x1_0,mnasnet1_0,googlenet,maxvit_t,efficientnet_b1,regnet_x_400mf}
COMPILE=${COMPILE:-$MODELS}
END=$(($(date +%s) + ${SESSION_S:-1300}))
left() { echo $((END - $(date +%s))); }
R=$WORK/out && mkdir -p "$R/zoo"
log() { echo "$(date -u +%H:%M:%S) $*" | tee -a "$R/zoo.txt"; }

. benchmarks/results/gpu-machine.sh && gpu_machine "$WORK" "$R/zoo.txt"
cp benchmarks/results/zoo/*.json "$R/zoo/" 2>/dev/null

log "auto mode: $MODELS"
engines=() && [ "${WITH_COMPILE:-1}" = 1 ] && engines=(--with-compile)
python3 benchmarks/zoo.py --out "$R/zoo" --models "$MODELS" --compile-models "" "${engines[@]}" \
  --budget-s $(($(left) - ${COMPILE_RESERVE_S:-420})) >> "$R/zoo.txt" 2>&1
log "torch.compile: $COMPILE"
python3 benchmarks/zoo.py --out "$R/zoo" --compile-only --compile-models "$COMPILE" \
  --budget-s $(($(left) - ${STOP_S:-240})) >> "$R/zoo.txt" 2>&1
log "session done"
