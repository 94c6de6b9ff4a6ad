# TTS Studio for a CUDA GPU pod (RunPod, any Docker host with the NVIDIA runtime).
#   docker build -t tts-studio .                                   # GPU image, embedded voice
#   docker build -t tts-studio --build-arg TTS_MODELS="joe,facebook/mms-tts-eng" .   # bakes models in
#   docker build -t tts-studio-cpu --build-arg VARIANT=cpu --build-arg BASE_IMAGE=ubuntu:24.04 .
#   docker run --gpus all -p 7860:7860 -v tts-cache:/data/hf tts-studio   # the volume: run-time additions
# Serverless worker from the same image: docker run ... tts-studio python -m tts_core.runpod_worker
ARG BASE_IMAGE=nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04
FROM ${BASE_IMAGE}

# gpu: PyPI's CUDA build of torch and onnxruntime-gpu for Piper voices; cpu: CPU builds only.
ARG VARIANT=gpu
# The models to bake into the image; the same value is the container's default TTS_MODELS.
ARG TTS_MODELS=joe

ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    HF_HOME=/data/hf \
    TTS_VOICES_DIR=/data/voices \
    TTS_JOBS_DIR=/data/jobs \
    TTS_BAKED_HF_CACHE=/opt/hf/hub \
    GRADIO_SERVER_NAME=0.0.0.0 \
    GRADIO_SERVER_PORT=7860 \
    TTS_MODELS=${TTS_MODELS}

SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# python3 for the app, ffmpeg for streamed audio (and aac), curl for the health check.
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv ffmpeg curl ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 1000 studio \
    && mkdir -p /data/hf /data/voices /data/jobs /opt/hf /app \
    && chown -R studio:studio /data /opt/hf /app

WORKDIR /app
COPY requirements.txt requirements-gpu.txt requirements-runpod.txt ./
# The README's install command (plus the RunPod SDK, for the serverless worker) in a
# virtual environment; then the GPU extras.
RUN python3 -m venv /opt/venv \
    && if [ "$VARIANT" = cpu ]; then \
         pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu; \
       fi \
    && pip install -r requirements.txt -r requirements-runpod.txt \
    && if [ "$VARIANT" = gpu ]; then \
         pip uninstall -y onnxruntime && pip install -r requirements-gpu.txt; \
       fi

COPY --chown=studio:studio . .
USER 1000:1000
# Bake exactly what TTS_MODELS names into the image's own Hugging Face cache, /opt/hf: no
# download on start. Not /data/hf: a volume mounted there (a pod's) would hide it. At start
# the app makes the baked files visible in /data/hf (TTS_BAKED_HF_CACHE), where models added
# while serving are downloaded, so those survive restarts on the volume.
RUN HF_HOME=/opt/hf python -m tts_core.prefetch

VOLUME ["/data/hf", "/data/voices", "/data/jobs"]
EXPOSE 7860
# Home Assistant's Wyoming protocol, when TTS_WYOMING_URI=tcp://0.0.0.0:10200 is set
EXPOSE 10200
# /ready is 503 while the models warm and 200 once they are: the start period covers big models.
# (It probes port 7860: keep GRADIO_SERVER_PORT at 7860 inside the container, map it outside.)
HEALTHCHECK --interval=30s --timeout=5s --start-period=600s --retries=3 \
    CMD ["curl", "-fsS", "http://127.0.0.1:7860/ready"]

CMD ["python", "app.py"]
