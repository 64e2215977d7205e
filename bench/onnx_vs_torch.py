"""MedicalNet ResNet-10 (64³) at inference: torch vs ONNX Runtime (issue 20).

    python bench/onnx_vs_torch.py --onnx resnet10.onnx --phantoms DIR [--reps 3]

DIR: a ``pleura synth`` folder (clinical.csv). The ONNX file is an export of the demo bundle's
BatchNorm-folded backbone (``torch.onnx.export(..., dynamo=False, opset_version=17)``, needs the
``onnx`` package). Measures, in fresh processes: import + load + first forward for each runtime;
warm forward time; the largest feature difference on the phantoms' real cubes and the resulting
difference in the demo model's probability. Exploratory: onnxruntime is not a dependency.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

# ``python bench/…`` puts bench/ first on sys.path, where bench/pipeline.py would shadow the package
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

TORCH_COLD = """
import time; t0 = time.perf_counter()
import numpy as np, torch
from models.medicalnet import load_backbone_safetensors, DeepFeatureExtractor
t1 = time.perf_counter()
ex = DeepFeatureExtractor(model=load_backbone_safetensors("weights/demo/backbone.safetensors"), fold_in_place=True)
t2 = time.perf_counter()
ex.encode(np.random.default_rng(0).normal(size=(64, 64, 64)))
t3 = time.perf_counter()
print(t1 - t0, t2 - t1, t3 - t2)
"""
ORT_COLD = """
import time; t0 = time.perf_counter()
import os; os.environ["ORT_DISABLE_TELEMETRY"] = "1"
import numpy as np, onnxruntime as ort
t1 = time.perf_counter()
s = ort.InferenceSession(%r, providers=["CPUExecutionProvider"])
t2 = time.perf_counter()
s.run(None, {"cube": np.random.default_rng(0).normal(size=(1, 1, 64, 64, 64)).astype(np.float32)})
t3 = time.perf_counter()
print(t1 - t0, t2 - t1, t3 - t2)
"""


def cold(code: str, reps: int) -> list[float]:
    runs = []
    for _ in range(reps):
        t = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
        runs.append([float(v) for v in out] + [time.perf_counter() - t])
    return [statistics.median(r[i] for r in runs) for i in range(4)]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--onnx", required=True)
    ap.add_argument("--phantoms", required=True)
    ap.add_argument("--reps", type=int, default=3)
    a = ap.parse_args()
    for name, code in (("torch", TORCH_COLD), ("onnxruntime", ORT_COLD % a.onnx)) if a.reps else ():
        imp, load, fwd, whole = cold(code, a.reps)
        print(f"{name:12s} cold process: import {imp:.2f} s, load {load:.2f} s, first forward {fwd:.2f} s, "
              f"whole process {whole:.2f} s (median of {a.reps})")

    from models.onnx_backbone import import_onnxruntime

    ort = import_onnxruntime()
    from models.medicalnet import medicalnet_normalise
    from pipeline.inputs.clinical import ClinicalValues
    from pipeline.serving.score import Scorer

    sess = ort.InferenceSession(a.onnx, providers=["CPUExecutionProvider"])
    scorer = Scorer()
    deep = next(g for g in scorer.extractors.groups if g.name == "deep")
    torch_encoder = deep.encoder

    class OrtEncoder:
        def encode(self, cube: np.ndarray) -> np.ndarray:
            x = medicalnet_normalise(cube)[None, None]
            return sess.run(None, {"cube": x})[0][0]

    cubes = []

    class Recording:
        def encode(self, cube: np.ndarray) -> np.ndarray:
            cubes.append(cube)
            return torch_encoder.encode(cube)

    rows = list(csv.DictReader(open(f"{a.phantoms}/clinical.csv")))
    probs = {}
    for label, enc in (("torch", Recording()), ("onnxruntime", OrtEncoder())):
        deep.encoder = enc
        probs[label] = [scorer.score(f"{a.phantoms}/{r['case_id']}_ct.nii.gz", f"{a.phantoms}/{r['case_id']}_roi.nii.gz",
                                     ClinicalValues(cea_ng_ml=float(r["CEA"]), ca125_u_ml=float(r["CA125"]),
                                                    age_years=float(r["age"]))).probability for r in rows]
    diffs = [np.abs(torch_encoder.encode(c) - OrtEncoder().encode(c)).max() for c in cubes]
    tt, to = [], []
    for c in cubes[:10]:
        t = time.perf_counter(); torch_encoder.encode(c); tt.append(time.perf_counter() - t)
        t = time.perf_counter(); OrtEncoder().encode(c); to.append(time.perf_counter() - t)
    dp = np.abs(np.array(probs["torch"]) - np.array(probs["onnxruntime"]))
    print(f"warm forward (incl. normalisation), median of {len(tt)}: torch {statistics.median(tt):.3f} s, "
          f"onnxruntime {statistics.median(to):.3f} s")
    print(f"features on {len(cubes)} phantom cubes: max |torch − onnxruntime| = {max(diffs):.2e}")
    print(f"demo-model probability: max |Δp| = {dp.max():.2e} (mean {dp.mean():.2e}) over {len(dp)} phantoms")
    print(json.dumps({"feature_max_abs": float(max(diffs)), "prob_max_abs": float(dp.max())}))


if __name__ == "__main__":
    main()
