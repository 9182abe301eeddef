"""ONNX Runtime vs eager fp32 on the shipped models (issue 11 candidate; not a dependency).

    pip install --target /tmp/ortpkg onnxruntime        # kept out of the venv
    BUSVIEWER_ORT_PATH=/tmp/ortpkg .venv/bin/python benchmarks/bench_onnxruntime.py [--threads N]

Exports each shipped model (legacy TorchScript exporter), then times, interleaved over 5
rounds with the 2048^3 matmul peak probe: eager channels-last ``Predictor.predict``, the
ONNX Runtime CPU session on the same preprocessed batch, and the one-pass predict+CAM;
ms/image median (min-max) for 16 BUSI images, and ORT's largest probability difference.
ORT has no gradient, so it could serve predictions only, never the Grad-CAM pass.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))
if os.environ.get("BUSVIEWER_ORT_PATH"):
    sys.path.append(os.environ["BUSVIEWER_ORT_PATH"])  # after the venv: its numpy wins

import numpy as np  # noqa: E402
import torch  # noqa: E402
from bench_inference import as_flops, load_images, load_models, matmul  # noqa: E402

from busviewer.ai.inference import Predictor  # noqa: E402
from busviewer.ai.preprocess import preprocess  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    try:
        import onnxruntime as ort
    except ImportError:
        print("onnxruntime is not installed (see the module docstring); nothing measured")
        return 1
    if args.threads:
        torch.set_num_threads(args.threads)
    imgs, source = load_images(16)
    print(f"onnxruntime {ort.__version__}, torch {torch.__version__}, {torch.get_num_threads()} threads; {source}")
    for arch, (model, card) in load_models("shipped", 224).items():
        model.to(memory_format=torch.contiguous_format)
        x = torch.stack([preprocess(im, card) for im in imgs])
        path = Path(tempfile.mkdtemp()) / f"{arch}.onnx"
        try:
            torch.onnx.export(
                model,
                x[:1],
                str(path),
                dynamo=False,
                input_names=["x"],
                output_names=["y"],
                dynamic_axes={"x": {0: "n"}, "y": {0: "n"}},
            )
        except Exception as exc:  # noqa: BLE001 - reported, the other model goes on
            print(f"{arch}: ONNX export failed: {str(exc).splitlines()[0][:150]}")
            continue
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = torch.get_num_threads()
        sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        predictor = Predictor(model, card, "cpu")

        def run_ort(sess=sess, card=card) -> torch.Tensor:  # type: ignore[no-untyped-def]
            xb = torch.stack([preprocess(im, card) for im in imgs]).numpy()
            return torch.softmax(torch.from_numpy(sess.run(None, {"x": xb})[0]) / card.temperature, 1)

        fns = {
            "peak": matmul(),
            "eager channels-last": lambda p=predictor: p.predict(imgs),
            "onnxruntime": run_ort,
            "one pass predict+CAM": lambda p=predictor: p.predict_with_cams(imgs),
        }
        for fn in fns.values():
            fn()
        times: dict[str, list[float]] = {k: [] for k in fns}
        for _ in range(5):
            for name, fn in fns.items():
                t0 = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t0)
        ref = np.array([[q.probabilities[c] for c in card.classes] for q in predictor.predict(imgs)])
        dp = float(np.abs(run_ort().numpy() - ref).max())
        peak = as_flops((statistics.median(times["peak"]), min(times["peak"]), max(times["peak"])))
        rows = "; ".join(
            f"{k} {1000 * statistics.median(v) / len(imgs):.1f} ({1000 * min(v) / len(imgs):.1f}-"
            f"{1000 * max(v) / len(imgs):.1f}) ms/img"
            for k, v in times.items()
            if k != "peak"
        )
        print(f"{arch}: peak {peak[0] / 1e9:.0f} GFLOP/s; {rows}; ORT max |dp| vs eager {dp:.1e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
