#!/usr/bin/env bash
# Benchmarks 1-5 and contrastive pretraining on a GPU: mixed_float16 (Keras adds loss
# scaling), XLA on by Keras's default there, longer runs than the CPU defaults. Needs
# the project installed (`python3 dev.py test` makes .venv/; or `pip install -e .`)
# and a GPU TensorFlow sees.
#
#   bash benchmarks/gpu.sh   # writes docs/results/benchmark_{throughput,contrastive}_gpu*.json
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
"$PYTHON" -c "import sys, tensorflow as tf; gpus = tf.config.list_physical_devices('GPU'); \
print('GPUs:', gpus); sys.exit(0 if gpus else 'benchmarks/gpu.sh: TensorFlow sees no GPU')"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true
# Mixed precision, the configuration a GPU user runs.
"$PYTHON" benchmarks/throughput.py --precision mixed_float16 --steps 100 --warmup 10 \
    --repeats 3 --batches 50 --epochs 5 --out docs/results/benchmark_throughput_gpu.json
# float32 for the same comparisons (MFU then against the float32 matmul peak).
"$PYTHON" benchmarks/throughput.py --only mlm mfu --steps 100 --warmup 10 --repeats 3 \
    --batches 50 --out docs/results/benchmark_throughput_gpu_float32.json
# Contrastive pretraining (SimCLR, BYOL) of a ResNet-18-size ConvNet: images/s and MFU.
"$PYTHON" benchmarks/contrastive.py --precision mixed_float16 --batch 512 --steps 50 \
    --warmup 5 --repeats 3 --out docs/results/benchmark_contrastive_gpu.json
