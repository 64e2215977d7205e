"""Learned models used by PleuraRisk.

* :mod:`models.medicalnet` — the MedicalNet 3-D ResNet-10 (shortcut B) used as a 512-d deep
  feature encoder, with a strict loader for the official checkpoints and safetensors I/O.

Submodules are imported explicitly (``from models.medicalnet import ...``) so that importing
this package never pulls in torch for callers that do not need it.
"""
