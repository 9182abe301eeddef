#!/usr/bin/env bash
# GPU check (issue 11). On a machine with a CUDA GPU, runs:
#   1. the tests marked `cuda` (they skip elsewhere): one pass on the GPU vs the CPU,
#      autocast vs fp32, an analysis on CUDA whose Grad-CAM maps are served later;
#   2. a short training run with AMP (VGG-16, 64 px, a few steps; BUSI manifest from
#      $BUSVIEWER_BUSI if set, else a small synthetic manifest made here);
#   3. the 10-image patient timing (both models + Grad-CAM of every image, before vs
#      one pass, median of 5) on the GPU.
# Without CUDA it stops at once with exit status 2 and says so.
#
#   benchmarks/gpu_check.sh            (uses .venv/bin/python, else python3; PYTHON=... to override)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3

if ! "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
    echo "gpu_check: FAILED - no CUDA GPU visible to torch ($("$PY" -c 'import torch; print("torch", torch.__version__, "built for CUDA", torch.version.cuda)' 2>&1 | tail -1)); nothing was run" >&2
    exit 2
fi
"$PY" -c 'import torch; print("gpu_check on", torch.cuda.get_device_name(0), "| torch", torch.__version__, "| CUDA", torch.version.cuda)'

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export BUSVIEWER_HOME="$tmp/home"

echo "== 1/3 tests marked cuda"
CI=true QT_QPA_PLATFORM=offscreen MPLBACKEND=Agg "$PY" -m pytest -q -m cuda -p no:cacheprovider tests/ai/test_cuda.py

echo "== 2/3 short training run with AMP"
manifest="${BUSVIEWER_BUSI:-}/manifest.csv"
if [ -z "${BUSVIEWER_BUSI:-}" ] || [ ! -f "$manifest" ]; then
    manifest="$tmp/synthetic/manifest.csv"
    "$PY" - "$tmp/synthetic" <<'PYEOF'
import sys
from pathlib import Path

import numpy as np
from PIL import Image

root = Path(sys.argv[1])
(root / "img").mkdir(parents=True)
rng = np.random.default_rng(0)
rows = ["image,label,patient_id"]
for i in range(48):
    img = rng.integers(0, 80, (96, 128), dtype=np.uint8)
    label = ("benign", "malignant")[i % 2]
    if label == "malignant":  # a bright disc: something to learn
        yy, xx = np.mgrid[:96, :128]
        img[(yy - 48) ** 2 + (xx - 40 - i) ** 2 < 150] = 220
    Image.fromarray(img).save(root / "img" / f"{i}.png")
    rows.append(f"img/{i}.png,{label},P{i // 2:02d}")
(root / "manifest.csv").write_text("\n".join(rows) + "\n")
print(f"synthetic manifest: {root / 'manifest.csv'} (48 images, 24 patients)")
PYEOF
fi
"$PY" -c 'import sys; from busviewer.cli import main; sys.exit(main(sys.argv[1:]))' \
    train --model vgg16 --data "$manifest" --epochs 1 --patience 1 --batch-size 16 --input-size 64 \
    --device cuda --amp auto --max-steps 5 --no-pretrained --out "$tmp/run" --no-register --no-checkpoints --quiet
test -f "$tmp/run/metrics.json" && echo "training run: metrics.json written"

echo "== 3/3 10-image patient timing on the GPU"
"$PY" benchmarks/bench_inference.py --device cuda --models shipped --patient-images 10 --repeats 5

echo "gpu_check: all passed"
