#!/usr/bin/env bash
# How the H200 results of the third session (2026-11-30) were produced: one background
# session on a lent 2-GPU machine (the lease's calls only start it and poll it). The wheels
# it needs (Streamlit and its missing dependencies, onnxruntime-gpu 1.31.1, TensorRT-RTX
# 1.7) were carried in parts to /tmp/p (docs/gpu-testing.md). The earlier session's script
# (TensorRT-RTX's answer, diagnostics, the ORT gap) is this file at commit d8ba6e6.
#
#   GPU 0: the GPU test suite, then half of the zoo, then torch.compile for two of them
#   GPU 1: the ResNet50 stability run (issue 14), the other half, torch.compile for two
#   both: more models at batch 1 and 32 while time is left (deadline: SESSION_S)
#
#   setsid nohup bash benchmarks/results/h200/session.sh COMMIT TREE > /tmp/session.log 2>&1 &
#
# Run again, it resumes: the committed zoo JSONs are copied in first, so only what is missing
# runs (on 2026-11-30: efficientnet_v2_s, shufflenet_v2_x1_0 and torch.compile for four
# models); STABILITY=0 skips the ResNet50 run. Times per model on the H200 that day: 55 s
# (squeezenet1_1) to 204 s (efficientnet_b0) for auto mode at three batch sizes; compile
# 98 s (vit_b_16) and 301 s (resnet50).
set -u
cd "$(dirname "$0")/../../.."
export VISIONBENCH_COMMIT=${1:-unknown} VISIONBENCH_TREE=${2:-unknown}
R=/tmp/vbout && mkdir -p $R
SITE=/tmp/visionbench-gpu-site
END=$(($(date +%s) + ${SESSION_S:-1080}))
left() { echo $((END - $(date +%s))); }
cat /tmp/p/part.* > /tmp/wheels.tar && tar xf /tmp/wheels.tar -C /tmp && rm -f /tmp/wheels.tar
# Resume the committed zoo: models with a JSON are skipped, compile rows are added to them.
mkdir -p $R/zoo && cp benchmarks/results/zoo/*.json $R/zoo/ 2>/dev/null
echo "gpus: $(nvidia-smi -L | wc -l)" | tee $R/session.txt
export PYTHONUNBUFFERED=1
py=python3

zoo() {  # GPU, models, compile models, more models
  local gpu=$1 models=$2 compile=$3 more=$4
  export CUDA_VISIBLE_DEVICES=$gpu VISIONBENCH_CACHE=/tmp/vbcache-$gpu VISIONBENCH_DATA=/tmp/vbdata-$gpu
  $py benchmarks/zoo.py --out $R/zoo --compile-models "" --budget-s $(($(left) - 240)) \
    --models "$models" > $R/zoo-$gpu.txt 2>&1
  $py benchmarks/zoo.py --out $R/zoo --compile-only --compile-models "$compile" \
    --budget-s $(($(left) - 200)) >> $R/zoo-$gpu.txt 2>&1
  $py benchmarks/zoo.py --out $R/zoo-more --compile-models "" --batch 1,32 \
    --budget-s $(($(left) - 90)) --models "$more" >> $R/zoo-$gpu.txt 2>&1
  echo "zoo on GPU $gpu done" >> $R/session.txt
}

# GPU 0: the GPU test suite (installs the missing wheels into $SITE first), then the zoo.
(
  CUDA_VISIBLE_DEVICES=0 VISIONBENCH_CACHE=/tmp/vbcache-tests bash scripts/test-gpu.sh /tmp/w $R/gpu-tests.log \
    > $R/gpu-tests.out 2>&1
  echo "tests done rc=$?" >> $R/session.txt
  export PYTHONPATH=$SITE
  zoo 0 vit_b_16,efficientnet_b0,efficientnet_v2_s,mobilenet_v2,shufflenet_v2_x1_0,squeezenet1_1 \
    vit_b_16,efficientnet_b0 \
    vit_b_32,maxvit_t,swin_v2_t,efficientnet_b3,convnext_small,resnet18,mobilenet_v3_small,densenet169
) &
for _ in $(seq 150); do [ -d $SITE/onnxruntime ] && break; sleep 2; done
export PYTHONPATH=$SITE

# GPU 1: issue 14's run (TFLOP/s, % of peak, clocks and throttle reasons per point).
[ "${STABILITY:-1}" = 1 ] && (
  export CUDA_VISIBLE_DEVICES=1 VISIONBENCH_CACHE=/tmp/vbcache-1 VISIONBENCH_DATA=/tmp/vbdata-1
  $py -m engine bench --model resnet50 --backend torch,ort --device cuda \
    --precision fp32,fp16 --batch 1,32,256 --warmup 10 --iters 100 --max-time 5 --inline \
    --json $R/resnet50-stability.json > $R/resnet50-stability.txt 2>&1
  echo "stability bench rc=$?" >> $R/session.txt
)
zoo 1 resnet50,convnext_tiny,swin_t,regnet_y_1_6gf,densenet121,resnext50_32x4d,mobilenet_v3_large \
  resnet50,mobilenet_v3_large \
  wide_resnet50_2,mnasnet1_0,googlenet,inception_v3,regnet_x_3_2gf,vgg16_bn,resnet101,alexnet
wait
$py benchmarks/zoo.py --out $R/zoo --merge >> $R/session.txt 2>&1
$py benchmarks/zoo.py --out $R/zoo-more --merge >> $R/session.txt 2>&1
echo "session done" >> $R/session.txt
