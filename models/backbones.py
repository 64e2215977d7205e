"""Choose the MedicalNet backbone a model is trained on, described honestly.

A backbone spec is ``seed:N`` (MedicalNet's own initialisation scheme, seeded: no pretrained
knowledge — this is what the shipped demo model uses, since the official checkpoints cannot be
downloaded here), a path to an official MedicalNet ``.pth`` checkpoint (loaded strictly), or a
``.safetensors`` file written by PleuraRisk.

Weights are rounded to float16 on load, because bundles store them as fp16 safetensors: features
computed at training time are then exactly those computed when the bundle is used.

Example:
    >>> model, source = resolve_backbone("seed:0")
    >>> source
    'seeded random initialisation (seed 0; MedicalNet kaiming scheme), not pretrained'
"""

from __future__ import annotations

from pathlib import Path

import torch

from .medicalnet import MedicalNetResNet10, load_backbone_safetensors, load_medicalnet_checkpoint, seeded_backbone

DEFAULT_BACKBONE = "seed:0"


def round_to_fp16(model: MedicalNetResNet10) -> MedicalNetResNet10:
    """Round every parameter to float16 precision (kept as float32), as the bundle stores them;
    batch-norm running statistics stay float32 (they are stored that way too)."""
    with torch.no_grad():
        for tensor in model.parameters():
            if tensor.is_floating_point():
                tensor.copy_(tensor.half().float())
    return model.eval()


def resolve_backbone(spec: str | None = None) -> tuple[MedicalNetResNet10, str]:
    """(backbone in eval mode, honest description of its origin) for a backbone spec."""
    spec = spec or DEFAULT_BACKBONE
    if spec.startswith("seed:"):
        try:
            seed = int(spec.split(":", 1)[1])
        except ValueError:
            raise ValueError(f"backbone spec {spec!r}: expected seed:<integer>") from None
        model = seeded_backbone(seed)
        source = f"seeded random initialisation (seed {seed}; MedicalNet kaiming scheme), not pretrained"
    else:
        path = Path(spec)
        if path.suffix == ".safetensors":
            model = load_backbone_safetensors(path)
            source = f"PleuraRisk safetensors backbone ({path.name})"
        else:
            model = load_medicalnet_checkpoint(path)
            source = f"official MedicalNet checkpoint ({path.name}), loaded strictly"
    return round_to_fp16(model), source


def backbone_fingerprint(model: MedicalNetResNet10) -> str:
    """sha256 over the backbone's tensors (names, shapes, values): identifies the weights."""
    import hashlib

    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(str(tuple(tensor.shape)).encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()
