#!/usr/bin/env bash
# The GPU benchmark on a bare GPU machine, in one go (under 8 minutes on an H100-class GPU):
# installs what it needs from the package registry, then runs bench/gpu.py, which writes
# bench/results/gpu-<name>.{json,md,png}. Run from the repository root: bash bench/gpu.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false BENTOML_DO_NOT_TRACK=true
if [ ! -x .venv-gpu/bin/python ]; then
  "$PYTHON" -m venv .venv-gpu
  .venv-gpu/bin/pip install --quiet --upgrade pip
  .venv-gpu/bin/pip install --quiet "torch==2.13.0"   # PyPI's build carries CUDA
  .venv-gpu/bin/pip install --quiet -e ".[bench]"
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
.venv-gpu/bin/python -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print(torch.__version__, torch.cuda.get_device_name())"
exec .venv-gpu/bin/python -m bench.gpu "$@"
