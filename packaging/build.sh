#!/usr/bin/env bash
# Build the busviewer bundle: packaging/build.sh [cpu|cuda]  ->  dist/<variant>/busviewer/
# cpu (default): no NVIDIA/triton libraries (stubs, see packaging/cuda_stubs.py; needs cc
# and readelf); cuda: torch's CUDA libraries included. Prints build time and bundle size.
# Runs under `nice` so a build never starves the machine; PYTHON selects the build venv.
set -euo pipefail
cd "$(dirname "$0")/.."
VARIANT="${1:-cpu}"
PYTHON="${PYTHON:-.venv/bin/python}"
case "$VARIANT" in cpu|cuda) ;; *) echo "usage: $0 [cpu|cuda]" >&2; exit 2 ;; esac
"$PYTHON" -c 'import PyInstaller' 2>/dev/null || {
    echo "PyInstaller is missing: $PYTHON -m pip install -e '.[package]'" >&2; exit 2; }
if [ "$VARIANT" = cpu ]; then
    command -v cc >/dev/null && command -v readelf >/dev/null || {
        echo "the cpu variant needs a C compiler (cc) and binutils (readelf)" >&2; exit 2; }
fi
start=$(date +%s)
BUSVIEWER_VARIANT="$VARIANT" nice -n 19 "$PYTHON" -m PyInstaller --noconfirm --clean --log-level WARN \
    --distpath "dist/$VARIANT" --workpath "build/$VARIANT" packaging/busviewer.spec
took=$(( $(date +%s) - start ))
size=$(du -sb "dist/$VARIANT/busviewer" | cut -f1)
printf 'built dist/%s/busviewer in %d min %02d s: %.2f GB (%s bytes)\n' \
    "$VARIANT" $((took / 60)) $((took % 60)) "$(awk -v s="$size" 'BEGIN { print s / 1e9 }')" "$size"
