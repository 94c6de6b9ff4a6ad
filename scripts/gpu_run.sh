#!/usr/bin/env bash
# The GPU and bigger-CPU tables (issue 16), in one run on a machine with an NVIDIA GPU:
#
#     bash scripts/gpu_run.sh            # writes gpu-results/ (or $OUT), about 10 minutes on an H200
#     bash scripts/gpu_run.sh --cpu-only # no GPU: steps 1, 4 and 5 on the CPU, small (the script
#                                        # known to work before a GPU is lent)
#
# 1. environment: GPU, torch/CUDA, ONNX Runtime's providers (Piper needs onnxruntime-gpu
#    for CUDAExecutionProvider: pip install -r requirements-gpu.txt);
# 2. bench.py on the GPU with full-size random-weight VITS and SpeechT5: throughput at 1, 4,
#    8 and 16 HTTP clients with batching off and on (target: 8 clients with batching >= 3x
#    one client), first audio of a 1,500-character text streamed from inside the sentence;
# 3. bench_families.py: each family's RTF in float32 beside its CUDA dtype;
# 4. intelligibility of the Piper voice on the CUDA execution provider (Whisper tiny.en),
#    against piper on the CPU (scripts/intelligibility_device.py);
# 5. the machine's CPU: throughput with 1, 2, 4 and 8 CPU slots against piper's own server;
# 6. bench_cloning.py: the cloning families (CSM, Pocket TTS, Dia) on random full-size weights
#    built from the real configs: first audio and RTF with and without a cloned voice, batch of
#    4 against one at a time (building and saving the 1-1.6B models takes minutes of each limit).
# Each step's output is kept in its own file; a failed step does not stop the others.
set -u
CPU_ONLY=0
case "${1:-}" in
    --cpu-only) CPU_ONLY=1 ;;
    "") ;;
    *) echo "usage: bash scripts/gpu_run.sh [--cpu-only]" >&2; exit 2 ;;
esac
cd "$(dirname "$0")/.."
OUT="${OUT:-gpu-results}"
mkdir -p "$OUT"
step() {  # step NAME SECONDS COMMAND...: run with a time limit, keep its output, say how it ended
    local name=$1 limit=$2; shift 2
    echo "== $name: $*"
    timeout "$limit" "$@" >"$OUT/$name.txt" 2>&1
    local code=$?
    echo "   exit $code ($OUT/$name.txt)"
    tail -n 60 "$OUT/$name.txt"
}
step env 60 python -c "
import onnxruntime, torch
print('torch', torch.__version__, 'cuda', torch.version.cuda, 'available', torch.cuda.is_available())
print('gpu', torch.cuda.get_device_name(0) if torch.cuda.is_available() else None)
print('onnxruntime', onnxruntime.__version__, onnxruntime.get_available_providers())"
[ "$CPU_ONLY" = 1 ] || step bench 300 env TTS_DEVICE=auto python bench.py --vits-full --speecht5-full --quick \
    --out "$OUT/bench.json"
[ "$CPU_ONLY" = 1 ] || step families 150 python bench_families.py --device cuda --families speecht5,bark --rounds 3
if [ "$CPU_ONLY" = 1 ]; then
    echo "== bench, families: skipped (--cpu-only: they are the CUDA rows)"
    step intelligibility 600 python scripts/intelligibility_device.py --device cpu --sentences 10
    step cpu_slots 600 python scripts/cpu_slots.py --slots 1,2 --clients 1,4 --passes 1 --requests 4
    exit 0
fi
step intelligibility 300 python scripts/intelligibility_device.py --device cuda
step cpu_slots 240 python scripts/cpu_slots.py --slots 1,2,4,8 --passes 1 --requests 32
step cloning_csm 500 python scripts/bench_cloning.py --device cuda --families csm --rounds 3 --batch 4
step cloning_pocket 300 python scripts/bench_cloning.py --device cuda --families pocket --rounds 3 --batch 4
step cloning_dia 500 python scripts/bench_cloning.py --device cuda --families dia --rounds 3 --batch 4
