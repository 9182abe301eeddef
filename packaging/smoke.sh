#!/usr/bin/env bash
# Build the bundle and prove it works: packaging/smoke.sh [cpu|cuda] [--no-build]
#
# From the bundle (dist/<variant>/busviewer/busviewer), in a temporary BUSVIEWER_HOME:
#  1. --version (commit, torch/torchvision, shipped models' sha256, variant)
#  2. cpu: no NVIDIA/triton library over 256 kB in the bundle (the stubs are a few kB)
#  3. import of pydicom-data DICOM files: JPEG 2000 (lossy + lossless), RLE, JPEG Lossless,
#     JPEG-LS (found through pydicom's data manager, never copied into the repository)
#  4. the models: the shipped ones; while models/ ships none, a tiny VGG-16 and ensemble are
#     trained from synthetic PNGs by the bundle itself (1 epoch, 64 px) and activated
#  5. predict with Grad-CAM (--cam-dir) on the JPEG 2000 ultrasound patient
#  6. report (PDF with the Grad-CAM overlay)
#  7. the GUI offscreen as the desktop entry starts it (`busviewer PATH`): time to the window
#     with the bundle's files evicted from the page cache (cold) and again (warm), the folder
#     imported, the models loaded, and no error in its log
# Helpers run with the build's Python (packaging/smoke_tools.py). Exit status 0 = all passed.
set -euo pipefail
cd "$(dirname "$0")/.."
VARIANT=cpu BUILD=1
for arg in "$@"; do
    case "$arg" in cpu|cuda) VARIANT="$arg" ;; --no-build) BUILD=0 ;;
        *) echo "usage: $0 [cpu|cuda] [--no-build]" >&2; exit 2 ;; esac
done
PYTHON="${PYTHON:-.venv/bin/python}"
TOOLS="nice -n 19 $PYTHON packaging/smoke_tools.py"
[ "$BUILD" = 1 ] && packaging/build.sh "$VARIANT"
BUNDLE="dist/$VARIANT/busviewer"
BIN="$PWD/$BUNDLE/busviewer"
[ -x "$BIN" ] || { echo "no bundle at $BUNDLE (run packaging/build.sh $VARIANT)" >&2; exit 2; }

WORK="$(mktemp -d "${TMPDIR:-/tmp}/busviewer-smoke.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
export BUSVIEWER_HOME="$WORK/home" QT_QPA_PLATFORM=offscreen MPLBACKEND=Agg
unset BUSVIEWER_STORE BUSVIEWER_SHIPPED_MODELS BUSVIEWER_SHARED_DIR
bv() { nice -n 19 "$BIN" "$@"; }
n=0
step() { n=$((n + 1)); STEP_T0=$(date +%s.%N); echo; echo "== $n. $*"; }
took() { awk -v a="$STEP_T0" -v b="$(date +%s.%N)" 'BEGIN { printf "   (%.1f s)\n", b - a }'; }
fail() { echo "SMOKE FAILED at step $n: $*" >&2; exit 1; }

echo "bundle: $BUNDLE ($(du -sh "$BUNDLE" | cut -f1)), work folder $WORK"

step "busviewer --version"
bv --version | tee "$WORK/version.txt"
grep -q "^build: $VARIANT bundle" "$WORK/version.txt" || fail "not a $VARIANT bundle"
grep -q "^commit: [0-9a-f]\{40\}" "$WORK/version.txt" || fail "no git commit recorded"
grep -q "^torch: " "$WORK/version.txt" && grep -q "^torchvision: " "$WORK/version.txt" || fail "no library versions"
took

if [ "$VARIANT" = cpu ]; then
    step "no CUDA or triton library in the cpu bundle"
    $PYTHON packaging/cuda_stubs.py "$BUNDLE" || fail "CUDA libraries in the cpu bundle"
    took
fi

step "import pydicom-data files (JPEG 2000, RLE, JPEG Lossless, JPEG-LS)"
mapfile -t DICOM < <($TOOLS dicom)
printf '   %s\n' "${DICOM[@]}"
bv import -q "${DICOM[@]}" | tee "$WORK/import.txt"
grep -q "^${#DICOM[@]} image(s) added, 0 already in the store, 0 relocated, 0 problem(s)" "$WORK/import.txt" \
    || fail "not every DICOM file was imported"
bv patients | tee "$WORK/patients.txt"
grep -q "13US1" "$WORK/patients.txt" || fail "patient 13US1 (JPEG 2000 ultrasound) not listed"
took

$TOOLS pngs "$WORK/pngs"
if grep -q "^shipped models: none" "$WORK/version.txt"; then
    step "no shipped model in models/: train a tiny VGG-16 and ensemble with the bundle"
    for arch in vgg16 ensemble; do
        bv train --model "$arch" --data "$WORK/pngs/manifest.csv" --epochs 1 --input-size 64 --batch-size 8 \
            --no-pretrained --workers 0 --device cpu --name "smoke-$arch" -q --out "$WORK/run-$arch" \
            || fail "training $arch in the bundle"
        bv models activate "smoke-$arch:1" || fail "activating smoke-$arch:1"
    done
    MODELS="trained in the smoke test (smoke-vgg16:1, smoke-ensemble:1)"
else
    step "shipped models"
    MODELS="shipped: $(grep '^shipped model ' "$WORK/version.txt" | cut -d' ' -f3 | tr '\n' ' ')"
fi
bv models list | tee "$WORK/models.txt"
took

step "predict 13US1 with Grad-CAM"
bv predict 13US1 --json --cam-dir "$WORK/cams" --device cpu > "$WORK/predict.json" || fail "predict"
$PYTHON - "$WORK/predict.json" <<'PY' || fail "predict output"
import json, sys
data = json.load(open(sys.argv[1]))
text = json.dumps(data)
assert "verdicts" in text and "mean_malignant_probability" in text, text[:400]
print("   " + text[:300] + ("..." if len(text) > 300 else ""))
PY
CAMS=$($TOOLS cams "$WORK/cams") || fail "no Grad-CAM overlay in $WORK/cams"
echo "   Grad-CAM overlays written: $CAMS"
took

step "report 13US1 (PDF with Grad-CAM)"
CAM_ARCH=ensemble
grep -q "ensemble" "$WORK/models.txt" || CAM_ARCH=vgg16
bv report 13US1 --out "$WORK/report.pdf" --cam "$CAM_ARCH" --device cpu || fail "report"
head -c 5 "$WORK/report.pdf" | grep -q "%PDF-" || fail "report.pdf is not a PDF"
echo "   report.pdf: $(stat -c %s "$WORK/report.pdf") bytes"
took

step "GUI offscreen: busviewer PATH (desktop entry), cold then warm start"
$TOOLS gui "$BIN" "$BUSVIEWER_HOME" "$WORK/pngs/gui" --cold --models --seconds 5 || fail "GUI (cold start)"
$TOOLS gui "$BIN" "$BUSVIEWER_HOME" "$WORK/pngs/gui" --models --seconds 3 || fail "GUI (warm start)"
took

echo
echo "SMOKE PASSED: $VARIANT bundle $BUNDLE ($(du -sh "$BUNDLE" | cut -f1)); models $MODELS"
