"""MedicalNet 3-D ResNet-10 (shortcut type B) as a 512-d deep feature encoder.

The network is the backbone of Tencent's MedicalNet ``resnet10(shortcut_type='B')``: a
segmentation ResNet whose layer3/layer4 use dilation instead of stride, so a 64³ cube gives a
512 × 8 × 8 × 8 map at layer4; global average pooling of that map is the 512-d feature vector
(named ``dl_000`` … ``dl_511``). Parameter names are MedicalNet's own, so an official checkpoint
(``{'state_dict': {'module.<key>': tensor}}``) maps onto this model 1:1 once the ``module.``
prefix is stripped; its ``conv_seg.*`` segmentation head is not part of the encoder and is ignored.

Input cubes are indexed (z, y, x). Before the network sees them they are normalised as MedicalNet
did during pre-training: zero mean and unit variance over the non-zero voxels
(:func:`medicalnet_normalise`).

Weights are read only as plain tensors (``torch.load(..., weights_only=True)`` or safetensors);
any problem with a weights file — missing, not a checkpoint, a missing/unknown/mis-shaped key — is
a :class:`~pipeline.core.errors.BundleError` whose message names the problem.

Example:
    >>> import numpy as np
    >>> extractor = DeepFeatureExtractor(model=seeded_backbone(0), num_threads=1)
    >>> features = extractor.encode(np.random.default_rng(0).normal(size=(16, 16, 16)))
    >>> features.shape, features.dtype
    ((512,), dtype('float32'))
    >>> deep_feature_names()[:2]
    ['dl_000', 'dl_001']
"""

from __future__ import annotations

import copy

import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from pipeline.core.errors import BundleError

ARCHITECTURE = "medicalnet-resnet10-shortcut-b"
"""Architecture name written into (and required from) backbone safetensors metadata."""

from models.deep_common import FEATURE_DIM, deep_feature_names, medicalnet_normalise  # noqa: E402,F401 (re-exported)

_DATA_PARALLEL_PREFIX = "module."
_SEGMENTATION_HEAD_PREFIX = "conv_seg."
_MAX_KEYS_LISTED = 5
# Batch-norm statistics stay float32 in safetensors files: they are tiny (~7.7 k values) and a
# near-zero running variance would lose most of its precision as a float16 subnormal.
_STATISTICS_SUFFIXES = (".running_mean", ".running_var")


# --------------------------------------------------------------------------------------------
# Network
# --------------------------------------------------------------------------------------------


def _conv3x3x3(in_planes: int, planes: int, *, stride: int = 1, dilation: int = 1) -> nn.Conv3d:
    """3×3×3 convolution without bias; padding = dilation keeps the size at stride 1."""
    return nn.Conv3d(in_planes, planes, kernel_size=3, stride=stride, padding=dilation,
                     dilation=dilation, bias=False)


class BasicBlock(nn.Module):
    """MedicalNet's residual BasicBlock (two 3×3×3 convs) with an optional shortcut-B projection."""

    def __init__(self, in_planes: int, planes: int, *, stride: int = 1, dilation: int = 1,
                 downsample: nn.Sequential | None = None) -> None:
        super().__init__()
        self.conv1 = _conv3x3x3(in_planes, planes, stride=stride, dilation=dilation)
        self.bn1 = nn.BatchNorm3d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = _conv3x3x3(planes, planes, dilation=dilation)
        self.bn2 = nn.BatchNorm3d(planes)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + shortcut)


def _layer(in_planes: int, planes: int, *, stride: int, dilation: int) -> nn.Sequential:
    """One ResNet-10 stage: a single BasicBlock; shortcut B (1×1×1 conv + BN) when the shape changes."""
    downsample = None
    if stride != 1 or in_planes != planes:
        downsample = nn.Sequential(
            nn.Conv3d(in_planes, planes, kernel_size=1, stride=stride, bias=False),
            nn.BatchNorm3d(planes),
        )
    return nn.Sequential(BasicBlock(in_planes, planes, stride=stride, dilation=dilation,
                                    downsample=downsample))


class MedicalNetResNet10(nn.Module):
    """MedicalNet ResNet-10 backbone (no ``conv_seg`` head): ``(N, 1, D, H, W) -> (N, 512)``.

    Spatial axes are (z, y, x). Strides: conv1 2, maxpool 2, layer2 2; layer3/layer4 keep the
    size and dilate by 2/4, so every edge shrinks by 8 overall (64³ → 8³ at layer4).
    ``MedicalNetResNet10()`` is initialised as MedicalNet does (Kaiming normal, fan-out, for the
    convolutions; BN weight 1, bias 0) from torch's global RNG; use :func:`seeded_backbone` for a
    reproducible model and the loaders for trained weights.
    """

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv3d(1, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm3d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool3d(kernel_size=3, stride=2, padding=1)
        self.layer1 = _layer(64, 64, stride=1, dilation=1)
        self.layer2 = _layer(64, 128, stride=2, dilation=1)
        self.layer3 = _layer(128, 256, stride=1, dilation=2)
        self.layer4 = _layer(256, FEATURE_DIM, stride=1, dilation=4)
        self.init_weights()

    def init_weights(self, *, generator: torch.Generator | None = None) -> None:
        """(Re)initialise every parameter and buffer as MedicalNet does.

        Args:
            generator: random source for the convolution weights; ``None`` uses torch's global RNG.
        """
        if self.conv1.weight.is_meta:  # shapes only (see _empty_backbone): nothing to draw, and
            return  # random draws on the meta device import torch's compiler stack (~2 s)
        for module in self.modules():
            if isinstance(module, nn.Conv3d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu",
                                        generator=generator)
            elif isinstance(module, nn.BatchNorm3d):
                module.reset_running_stats()
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        """The layer4 map: ``(N, 1, D, H, W) -> (N, 512, ⌈D/8⌉, ⌈H/8⌉, ⌈W/8⌉)``."""
        if x.ndim != 5 or x.shape[1] != 1:
            raise ValueError(f"input must be shaped (N, 1, D, H, W), got {tuple(x.shape)}")
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Global average pooling of :meth:`feature_map`: ``(N, 1, D, H, W) -> (N, 512)``."""
        return self.feature_map(x).mean(dim=(2, 3, 4))


def _empty_backbone() -> MedicalNetResNet10:
    """A backbone with allocated but uninitialised tensors (built on the meta device, so no time
    is spent on an initialisation that is overwritten and torch's global RNG is not touched)."""
    with torch.device("meta"):
        model = MedicalNetResNet10()
    return model.to_empty(device="cpu")


def seeded_backbone(seed: int) -> MedicalNetResNet10:
    """A reproducibly initialised backbone (MedicalNet's initialisation), in eval mode.

    The same ``seed`` always gives the same weights; torch's global RNG is left untouched.

    Example:
        >>> a, b = seeded_backbone(3), seeded_backbone(3)
        >>> torch.equal(a.conv1.weight, b.conv1.weight)
        True
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**63:
        raise ValueError(f"seed must be an integer in [0, 2**63), got {seed!r}")
    model = _empty_backbone()
    model.init_weights(generator=torch.Generator().manual_seed(int(seed)))
    return model.eval()


# --------------------------------------------------------------------------------------------
# Strict weight loading
# --------------------------------------------------------------------------------------------


def _counted(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _listed(keys: Sequence[str]) -> str:
    shown = ", ".join(keys[:_MAX_KEYS_LISTED])
    return shown + (", …" if len(keys) > _MAX_KEYS_LISTED else "")


def _load_strict(state: Mapping[str, torch.Tensor], *, source: str) -> MedicalNetResNet10:
    """A backbone holding exactly ``state`` (cast to the model's dtypes), in eval mode.

    Every backbone key must be present with the model's shape, finite, and of the same kind
    (floating point or integer); unknown keys are refused. ``source`` names the file kind in
    messages ("checkpoint", "weights file").
    """
    with torch.device("meta"):  # no storage: every tensor is replaced by the checked one below
        model = MedicalNetResNet10()
    expected = model.state_dict()
    missing = [key for key in expected if key not in state]
    if missing:
        raise BundleError(f"{source} is missing {_counted(len(missing), 'backbone key')}: {_listed(missing)}")
    unknown = [key for key in state if key not in expected]
    if unknown:
        raise BundleError(f"{source} has {_counted(len(unknown), 'unknown key')} that the ResNet-10 "
                          f"backbone does not have: {_listed(unknown)}")
    for key, target in expected.items():
        value = state[key]
        if tuple(value.shape) != tuple(target.shape):
            raise BundleError(f"shape mismatch for {key}: {source} {tuple(value.shape)} "
                              f"vs model {tuple(target.shape)}")
        if value.is_floating_point() != target.is_floating_point():
            raise BundleError(f"dtype mismatch for {key}: {source} {value.dtype} vs model {target.dtype}")
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise BundleError(f"{source} holds non-finite values (NaN or Inf) in {key}")
    # assign=True takes the (cast) tensors as the parameters instead of copying them into
    # allocated ones: no 57 MB of throw-away storage, and no meta→CPU materialisation
    model.load_state_dict({key: state[key].to(target.dtype).contiguous() for key, target in expected.items()},
                          strict=True, assign=True)
    stray = [name for name, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
    if stray:  # cannot happen with strict=True; a guard against a future non-persistent buffer
        raise BundleError(f"{source} left {_counted(len(stray), 'tensor')} unset: {_listed(stray)}")
    return model.eval()


def _backbone_entries(raw: Mapping[object, object]) -> dict[str, torch.Tensor]:
    """Checkpoint entries without the ``module.`` prefix and without the ``conv_seg.*`` head."""
    entries: dict[str, torch.Tensor] = {}
    for key, value in raw.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise BundleError(f"checkpoint entry {key!r} is not a tensor; expected a state dict of tensors")
        name = key.removeprefix(_DATA_PARALLEL_PREFIX)
        if name.startswith(_SEGMENTATION_HEAD_PREFIX):
            continue
        if name in entries:
            raise BundleError(f"checkpoint holds {name} twice (with and without the 'module.' prefix)")
        entries[name] = value
    return entries


def load_medicalnet_checkpoint(path: str | os.PathLike[str]) -> MedicalNetResNet10:
    """Load an official MedicalNet ResNet-10 ``.pth`` (e.g. ``resnet_10_23dataset.pth``), strictly.

    Accepts ``{'state_dict': {...}}`` or a bare state dict, keys with or without the ``module.``
    prefix of ``nn.DataParallel``; the ``conv_seg.*`` segmentation head is ignored. The file is read
    with ``torch.load(weights_only=True)``: only tensors and plain containers, never arbitrary
    pickled objects.

    Returns:
        The backbone in eval mode, float32.

    Raises:
        BundleError: file missing or not a PyTorch checkpoint of tensors; a backbone key missing,
            mis-shaped, non-finite or unknown (the message names the keys).
    """
    path = Path(path)
    if not path.is_file():
        raise BundleError(f"MedicalNet checkpoint not found: {path.name}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types (RuntimeError, UnpicklingError, EOFError, …)
        raise BundleError(f"{path.name} is not a PyTorch checkpoint of plain tensors "
                          "(it cannot be read with weights_only=True)") from err
    if isinstance(payload, Mapping) and isinstance(payload.get("state_dict"), Mapping):
        payload = payload["state_dict"]
    if not isinstance(payload, Mapping):
        raise BundleError(f"{path.name} does not hold a state dict (found {type(payload).__name__})")
    return _load_strict(_backbone_entries(payload), source="checkpoint")


def save_backbone_safetensors(model: MedicalNetResNet10, path: str | os.PathLike[str], *,
                              dtype: torch.dtype = torch.float16) -> Path:
    """Write the backbone's state dict to a safetensors file (about 29 MB at float16).

    Weights are stored as ``dtype``; batch-norm running statistics stay float32 and
    ``num_batches_tracked`` stays int64. The metadata records ``architecture``
    (:data:`ARCHITECTURE`), ``feature_dim`` and ``weights_dtype``. The file is written beside
    ``path`` and moved into place, so a crash never leaves a half-written file at ``path``.

    Raises:
        ValueError: ``model``/``dtype`` of the wrong kind, or a weight that overflows ``dtype``.
    """
    if not isinstance(model, MedicalNetResNet10):
        raise ValueError(f"model must be a MedicalNetResNet10, got {type(model).__name__}")
    if dtype not in (torch.float16, torch.bfloat16, torch.float32):
        raise ValueError(f"dtype must be torch.float16, torch.bfloat16 or torch.float32, got {dtype}")
    tensors: dict[str, torch.Tensor] = {}
    for key, value in model.state_dict().items():
        value = value.detach().cpu()
        if value.is_floating_point() and not key.endswith(_STATISTICS_SUFFIXES):
            value = value.to(dtype)
            if not bool(torch.isfinite(value).all()):
                raise ValueError(f"{key} has values outside the range of {dtype}")
        tensors[key] = value.contiguous()
    metadata = {
        "architecture": ARCHITECTURE,
        "feature_dim": str(FEATURE_DIM),
        "weights_dtype": str(dtype).removeprefix("torch."),
    }
    path = Path(path)
    partial = path.with_name(path.name + ".partial")
    save_file(tensors, partial, metadata=metadata)
    os.replace(partial, path)
    return path


def load_backbone_safetensors(path: str | os.PathLike[str]) -> MedicalNetResNet10:
    """Load a file written by :func:`save_backbone_safetensors`, strictly, upcast to float32.

    Raises:
        BundleError: file missing or not safetensors; metadata naming another architecture; a
            backbone key missing, mis-shaped, non-finite or unknown (the message names the keys).
    """
    path = Path(path)
    if not path.is_file():
        raise BundleError(f"backbone weights file not found: {path.name}")
    try:
        with safe_open(path, framework="pt", device="cpu") as reader:
            metadata = reader.metadata() or {}
            state = {key: reader.get_tensor(key) for key in reader.keys()}
    except Exception as err:  # SafetensorError, OSError, …: the file is not usable either way
        raise BundleError(f"{path.name} is not a readable safetensors file") from err
    architecture = metadata.get("architecture")
    if architecture != ARCHITECTURE:
        raise BundleError(f"{path.name} holds weights for architecture {architecture!r}, "
                          f"expected {ARCHITECTURE!r}")
    return _load_strict(state, source="weights file")


# --------------------------------------------------------------------------------------------
# Feature extraction
# --------------------------------------------------------------------------------------------


@contextmanager
def _torch_threads(num_threads: int | None) -> Iterator[None]:
    """Run with ``num_threads`` intra-op threads, then restore the caller's setting."""
    previous = torch.get_num_threads()
    if num_threads is None or num_threads == previous:
        yield
        return
    torch.set_num_threads(num_threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def inference_model(model: MedicalNetResNet10, *, in_place: bool = False) -> MedicalNetResNet10:
    """An inference-only copy of ``model``: every BatchNorm folded into the convolution before it
    (eval-mode statistics, so the output is the same up to float rounding: max abs difference
    1.2e-7 on 64³ features). Measured on the 2-core benchmark machine, 8 alternating 64³ forward
    passes: 0.58 s median vs 0.69 s unfused; channels-last 3-D layout was slower (0.60 s) and is
    not used. ``model`` itself is not changed, unless ``in_place``: then ``model`` is folded and
    returned (no second copy of the 14.4 M weights, 58 MB in float32).

    Example:
        >>> m = seeded_backbone(0); x = torch.randn(1, 1, 16, 16, 16)
        >>> with torch.inference_mode():
        ...     bool(torch.allclose(m.eval()(x), inference_model(m)(x), rtol=1e-4, atol=1e-5))
        True
    """
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    fused = (model if in_place else copy.deepcopy(model)).eval()
    pairs = [(fused, "conv1", "bn1")]
    for layer in (fused.layer1, fused.layer2, fused.layer3, fused.layer4):
        for block in layer:
            pairs += [(block, "conv1", "bn1"), (block, "conv2", "bn2")]
            if block.downsample is not None:
                pairs.append((block.downsample, "0", "1"))
    for owner, conv, bn in pairs:
        setattr(owner, conv, fuse_conv_bn_eval(getattr(owner, conv), getattr(owner, bn)))
        setattr(owner, bn, nn.Identity())
    return fused


@dataclass(frozen=True, kw_only=True, eq=False)
class DeepFeatureExtractor:
    """Turns normalised (z, y, x) cubes into 512-d MedicalNet features.

    Attributes:
        model: the backbone. Cubes run through :func:`inference_model` of it (BatchNorm folded
            into the convolutions), made once here, under ``torch.inference_mode``.
        num_threads: torch intra-op threads while encoding, or ``None`` for torch's current
            setting. The previous setting is restored after each call (torch's setting is
            process-wide, so concurrent callers in other threads briefly share it).
        batch_size: cubes per forward pass in :meth:`encode_batch` (bounds memory: a 64³ cube
            needs about 8 MB of activations at conv1).
        fold_in_place: fold ``model`` itself instead of a copy (``model`` then has no BatchNorm
            layers); for callers that own the model and need nothing else from it, such as a
            batch worker's scorer (saves 58 MB per process).

    Example:
        >>> extractor = DeepFeatureExtractor(model=seeded_backbone(0))
        >>> extractor.encode_batch([np.ones((8, 8, 8))] * 3).shape
        (3, 512)
    """

    model: MedicalNetResNet10
    num_threads: int | None = None
    batch_size: int = 8
    fold_in_place: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.model, MedicalNetResNet10):
            raise ValueError(f"model must be a MedicalNetResNet10, got {type(self.model).__name__}")
        if self.num_threads is not None and (
            isinstance(self.num_threads, bool) or not isinstance(self.num_threads, int) or self.num_threads < 1
        ):
            raise ValueError(f"num_threads must be None or an integer >= 1, got {self.num_threads!r}")
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ValueError(f"batch_size must be an integer >= 1, got {self.batch_size!r}")
        object.__setattr__(self, "_runtime", inference_model(self.model, in_place=bool(self.fold_in_place)))

    def encode(self, cube: np.ndarray) -> np.ndarray:
        """Features of one (z, y, x) cube (any real intensities): shape (512,), float32."""
        return self.encode_batch([cube])[0]

    def encode_batch(self, cubes: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
        """Features of equally shaped (z, y, x) cubes (a sequence or an (N, z, y, x) array):
        shape (N, 512), float32, row i for cube i. Each cube is normalised on its own."""
        if isinstance(cubes, np.ndarray) and cubes.ndim != 4:
            raise ValueError(f"encode_batch expects (N, z, y, x) cubes, got shape {cubes.shape}; "
                             "use encode for a single cube")
        normalised = [medicalnet_normalise(cube) for cube in cubes]
        shapes = sorted({cube.shape for cube in normalised})
        if len(shapes) > 1:
            raise ValueError(f"all cubes in a batch must have the same (z, y, x) shape, got {shapes}")
        features = np.empty((len(normalised), FEATURE_DIM), dtype=np.float32)
        with _torch_threads(self.num_threads), torch.inference_mode():
            for start in range(0, len(normalised), self.batch_size):
                batch = torch.from_numpy(np.stack(normalised[start:start + self.batch_size]))
                features[start:start + len(batch)] = self._runtime(batch[:, None]).numpy()
        return features
