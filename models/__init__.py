"""Learned models used by PleuraRisk.

* :mod:`models.medicalnet` — the MedicalNet 3-D ResNet-10 (shortcut B) used as a 512-d deep
  feature encoder, with a strict loader for the official checkpoints and safetensors I/O.
* :mod:`models.backbones` — which backbone a model is trained on (``seed:N``, an official
  ``.pth``, or a ``.safetensors``), described honestly and rounded to fp16 as bundles store it.
* :mod:`models.forest` — :class:`~models.forest.PSOForestClassifier`, a random forest whose
  hyper-parameters are tuned by particle swarm optimisation (pyswarms) on stratified k-fold AUC.
* :mod:`models.fusion` — late fusion: one selector + PSO forest per feature group, stacked.
* :mod:`models.deploy` — the fitted forest (+ logistic recalibration) a bundle stores.

Submodules are imported explicitly (``from models.medicalnet import ...``) so that importing
this package never pulls in torch for callers that do not need it.
"""
