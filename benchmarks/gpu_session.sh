#!/usr/bin/env bash
# Every GPU check and GPU benchmark of the degradation path in one pass, for a machine
# with CUDA (about 10 minutes on one H100 / H200). Writes into reports/ (or $OUT).
#
#   bash benchmarks/gpu_session.sh [path/to/basicsr-1.4.2.tar.gz]
#
# The BasicSR source archive (pip download --no-deps --no-binary :all: basicsr==1.4.2)
# adds the Real-ESRGAN rows (BasicSR's own functions on the same GPU) to ops_throughput.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-reports}
basicsr=${1:-}
python -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'"
python -m pytest -q -p no:cacheprovider -k "cuda or gpu or host_waits" tests
python benchmarks/jpeg_codecs.py --device cuda --batch 256 --repeats 5 \
    --out "$out/jpeg_codecs_cuda.md"
python benchmarks/device_agreement.py --device cuda --batch 64 \
    --out "$out/device_agreement_cuda.md"
python benchmarks/ops_throughput.py --devices cuda --batch-sizes 64 256 --repeats 5 \
    ${basicsr:+--basicsr-src "$basicsr"} --out "$out/ops_throughput_h100.md"
python benchmarks/build_throughput.py --device cuda --per-image 8 1 --repeats 3 \
    --out "$out/build_throughput_h100.md"
