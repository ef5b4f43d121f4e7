# GPU pipeline image: the pipeline image (docker/Dockerfile) plus the CUDA 12.3 / cuDNN 8.9 runtime
# libraries TensorFlow 2.16 is built against, so that the Trainer trains on NVIDIA GPUs: as a Vertex
# AI Pipelines task with an accelerator, in a Vertex AI Training job, or locally with docker --gpus.
# The GPU driver comes from the host (Vertex AI's GPU machines; locally the NVIDIA Container Toolkit).
#
# Build (from the repository root), the pipeline image first (`make image-gpu` builds both):
#   docker build -f docker/Dockerfile -t rqvalue-pipeline:0.1.0 .
#   docker build -f docker/gpu.Dockerfile --build-arg PIPELINE_IMAGE=rqvalue-pipeline:0.1.0 \
#       -t rqvalue-pipeline-gpu:0.1.0 .
# Check that TensorFlow sees the GPUs:
#   docker run --rm --gpus all --entrypoint python rqvalue-pipeline-gpu:0.1.0 \
#       -c "import tensorflow as tf; print(tf.config.list_physical_devices('GPU'))"
# Run the pipeline on this machine's GPUs (runs land in ./runs):
#   docker run --rm --gpus all --entrypoint rqvalue -v "$PWD/runs:/pipeline/runs" rqvalue-pipeline-gpu:0.1.0 \
#       run --output-dir runs
#
# The CUDA libraries are NVIDIA's wheels at exactly the versions of tensorflow's [and-cuda] extra
# (for 2.16.2: CUDA 12.3, cuDNN 8.9.7, NCCL 2.19), installed with the lock as constraints so that
# nothing else changes. Their libraries are linked into one folder at the front of
# LD_LIBRARY_PATH, so they win over any CUDA the base image carries.
ARG PIPELINE_IMAGE=rqvalue-pipeline:0.1.0
FROM ${PIPELINE_IMAGE}

ENV LD_LIBRARY_PATH=/opt/cuda-wheels/lib${LD_LIBRARY_PATH:+:${LD_LIBRARY_PATH}}

RUN pip install --no-cache-dir -c requirements.lock "tensorflow[and-cuda]==2.16.2" \
    && mkdir -p /opt/cuda-wheels/lib \
    && python -c "import glob, os, nvidia; [os.symlink(p, os.path.join('/opt/cuda-wheels/lib', os.path.basename(p))) for d in nvidia.__path__ for p in sorted(glob.glob(os.path.join(d, '*', 'lib', 'lib*.so*')))]" \
    && python -c "import ctypes; [ctypes.CDLL(n) for n in ('libcudart.so.12', 'libcublas.so.12', 'libcudnn.so.8', 'libnccl.so.2')]" \
    && python -c "import tensorflow as tf; b = tf.sysconfig.get_build_info(); assert (b['cuda_version'], b['cudnn_version']) == ('12.3', '8'), b"
