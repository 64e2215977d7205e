"""The MedicalNet ResNet-10 encoder at inference with ONNX Runtime, without importing torch.

A bundle stores, beside ``backbone.safetensors`` (the weights, loaded strictly by
:mod:`models.medicalnet` for training and for bundles without it), ``backbone.onnx``: the same
encoder with every BatchNorm folded into its convolution (:func:`models.medicalnet.inference_model`),
exported once by :func:`export_backbone_onnx` (torch's exporter, opset 17, dynamic batch).
Scoring then imports ``onnxruntime`` (≈ 0.5 s) instead of torch (≈ 2–4 s) and runs the 64³
forward pass about twice as fast on the 2-core reference machine (``bench/onnx_vs_torch.py``);
features differ from torch's by at most ~3e-8 (float rounding), the demo model's probabilities
on 20 phantoms not at all.

Example (needs torch and onnx to export; a few seconds)::

    >>> import tempfile, numpy as np
    >>> from models.medicalnet import DeepFeatureExtractor, seeded_backbone
    >>> m = seeded_backbone(0); path = tempfile.mkdtemp() + "/b.onnx"
    >>> export_backbone_onnx(m, path)
    >>> cube = np.random.default_rng(0).normal(size=(16, 16, 16))
    >>> a = OnnxBackbone(path).encoder().encode(cube); b = DeepFeatureExtractor(model=m).encode(cube)
    >>> a.shape, bool(np.abs(a - b).max() < 1e-5)
    ((512,), True)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from models.deep_common import FEATURE_DIM, medicalnet_normalise
from pipeline.core.errors import BundleError

INPUT_NAME = "cube"
OUTPUT_NAME = "features"
OPSET = 17


def export_backbone_onnx(model: Any, path: str | os.PathLike[str]) -> None:  # noqa: ANN401 - a MedicalNetResNet10
    """Write ``model`` (a :class:`models.medicalnet.MedicalNetResNet10`) as ONNX, BatchNorm folded
    (needs torch and the ``onnx`` package). Input ``cube`` (N, 1, z, y, x) float32, output
    ``features`` (N, 512)."""
    import torch

    from models.medicalnet import inference_model

    folded = inference_model(model)
    example = torch.zeros(1, 1, 16, 16, 16)
    path = Path(path)
    partial = path.with_name(path.name + ".partial")
    with torch.inference_mode():
        torch.onnx.export(folded, (example,), str(partial), dynamo=False, input_names=[INPUT_NAME],
                          output_names=[OUTPUT_NAME], opset_version=OPSET,
                          dynamic_axes={INPUT_NAME: {0: "n", 2: "z", 3: "y", 4: "x"}, OUTPUT_NAME: {0: "n"}})
    os.replace(partial, path)


@dataclass(frozen=True, eq=False)
class OnnxEncoder:
    """Turns (z, y, x) cubes into 512-d features with one ONNX Runtime session (thread-safe runs)."""

    session: Any

    def encode(self, cube: np.ndarray) -> np.ndarray:
        """Features of one (z, y, x) cube (any real intensities): shape (512,), float32."""
        return self.encode_batch([cube])[0]

    def encode_batch(self, cubes: Any) -> np.ndarray:
        """(N, 512) float32 features of equally shaped cubes, each normalised on its own."""
        x = np.stack([medicalnet_normalise(c) for c in cubes])[:, None].astype(np.float32, copy=False)
        out = self.session.run([OUTPUT_NAME], {INPUT_NAME: x})[0]
        return np.asarray(out, dtype=np.float32).reshape(len(x), FEATURE_DIM)



def import_onnxruntime():  # noqa: ANN201 - the onnxruntime module
    """Import ONNX Runtime with its telemetry off.

    Since 1.29 the Linux wheels collect telemetry by default: they write a device id under
    ``~/.cache`` and try HTTPS uploads, which an offline hospital workstation must never do.
    ``ORT_DISABLE_TELEMETRY=1`` (read when ONNX Runtime creates its environment) turns all of it
    off; it is forced here, before the first import, and the runtime switch is called as well.
    """
    os.environ["ORT_DISABLE_TELEMETRY"] = "1"
    import onnxruntime as ort

    ort.disable_telemetry_events()
    return ort

class OnnxBackbone:
    """A bundle's ``backbone.onnx``, read once; :meth:`encoder` makes a session.

    Raises:
        BundleError: the file is missing or ONNX Runtime cannot load it, or its output is not 512 wide.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise BundleError(f"backbone file not found: {self.path.name}")
        self._bytes = self.path.read_bytes()
        self._encoders: dict[int | None, OnnxEncoder] = {}

    def encoder(self, *, num_threads: int | None = None) -> OnnxEncoder:
        """An encoder running with ``num_threads`` intra-op threads (``None``: ONNX Runtime's default, one per core)."""
        if num_threads not in self._encoders:
            ort = import_onnxruntime()
            options = ort.SessionOptions()
            if num_threads is not None:
                options.intra_op_num_threads = int(num_threads)
            options.inter_op_num_threads = 1
            try:
                session = ort.InferenceSession(self._bytes, sess_options=options, providers=["CPUExecutionProvider"])
            except Exception as exc:  # noqa: BLE001 - ONNX Runtime raises its own exception types
                raise BundleError(f"{self.path.name} could not be loaded by ONNX Runtime ({type(exc).__name__})") from None
            outputs = session.get_outputs()
            if [i.name for i in session.get_inputs()] != [INPUT_NAME] or [o.name for o in outputs] != [OUTPUT_NAME] \
                    or outputs[0].shape[-1] != FEATURE_DIM:
                raise BundleError(f"{self.path.name} is not a PleuraRisk backbone export (inputs/outputs differ)")
            self._encoders[num_threads] = OnnxEncoder(session)
        return self._encoders[num_threads]
