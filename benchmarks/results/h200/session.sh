#!/usr/bin/env bash
# How the H200 results of 2026-11-30 were produced: one background session on the lent
# machine (the lease's calls only start it and poll it). The wheels it needs (Streamlit and
# its missing dependencies, onnxruntime-gpu 1.31.1, TensorRT-RTX 1.7) were carried in parts
# to /tmp/p (docs/gpu-testing.md). With two GPUs, the GPU tests run on the first while the
# benchmarks run on the second; with one, one after the other.
#
#   setsid nohup bash benchmarks/results/h200/session.sh COMMIT TREE > /tmp/session.log 2>&1 &
set -u
cd "$(dirname "$0")/../../.."
export VISIONBENCH_COMMIT=${1:-unknown} VISIONBENCH_TREE=${2:-unknown}
R=/tmp/vbout && mkdir -p $R
SITE=/tmp/visionbench-gpu-site
cat /tmp/p/part.* > /tmp/wheels.tar && tar xf /tmp/wheels.tar -C /tmp && rm -f /tmp/wheels.tar
ngpu=$(nvidia-smi -L | wc -l)
second=$([ "$ngpu" -ge 2 ] && echo 1 || echo 0)
echo "gpus: $ngpu; benchmarks on GPU $second" | tee $R/session.txt

# 1. The GPU test suite (installs the missing wheels into $SITE first).
( CUDA_VISIBLE_DEVICES=0 VISIONBENCH_CACHE=/tmp/vbcache-tests \
    bash scripts/test-gpu.sh /tmp/w $R/gpu-tests.log > $R/gpu-tests.out 2>&1
  echo "tests done rc=$?" >> $R/session.txt ) &
tests=$!
while [ ! -d $SITE/streamlit ] && kill -0 $tests 2>/dev/null; do sleep 2; done
[ "$second" = 0 ] && wait $tests
export PYTHONPATH=$SITE CUDA_VISIBLE_DEVICES=$second VISIONBENCH_CACHE=/tmp/vbcache-bench
export VISIONBENCH_DATA=/tmp/vbdata-bench PYTHONUNBUFFERED=1
py=python3

# 2. TensorRT-RTX's honest answer on Hopper: CLI, build without running, diagnostics.
{
  $py -m engine bench --model resnet18 --image-size 64 --backend tensorrt --device cuda \
    --precision fp16 --batch 1 --inline; echo "bench tensorrt rc=$?"
  $py -m engine trt-build --model resnet18 --image-size 64 --precision fp16 --batch 1,8 \
    --out /tmp/r18.plan; echo "trt-build rc=$?"
  $py -m engine diagnose --json $R/diagnose-h200.json; echo "diagnose rc=$?"
} > $R/tensorrt-rtx-h200.txt 2>&1

# 3. Issue 14: TFLOP/s, % of peak, clocks and throttle reasons per point.
$py -m engine bench --model resnet50 --backend torch,ort --device cuda \
  --precision fp32,fp16 --batch 1,32,256 --warmup 10 --iters 100 --max-time 5 --inline \
  --json $R/resnet50-stability.json > $R/resnet50-stability.txt 2>&1
echo "stability bench rc=$?" >> $R/session.txt

# 4. Issue 12: the zoo (auto mode per model, ORT as shipped and PyTorch FP32 beside it).
$py benchmarks/zoo.py --out $R/zoo --compile-models "" --budget-s ${ZOO_BUDGET_S:-420} \
  --models ${ZOO_MODELS:-resnet50,vit_b_16,convnext_tiny,efficientnet_b0,mobilenet_v3_large,swin_t,regnet_y_1_6gf,densenet121,resnext50_32x4d,efficientnet_v2_s,mobilenet_v2,shufflenet_v2_x1_0,squeezenet1_1} \
  > $R/zoo.txt 2>&1
$py benchmarks/zoo.py --out $R/zoo --merge >> $R/zoo.txt 2>&1
echo "zoo done" >> $R/session.txt

# 5. Issue 12 item 5: the engine's tuned ORT path against a plain script, alternating.
$py benchmarks/ort_gap.py --model resnet50 --batch 32,256 --rounds 5 --out $R/ort_gap.json \
  > $R/ort_gap.txt 2>&1
echo "gap done" >> $R/session.txt
wait
echo "session done" >> $R/session.txt
