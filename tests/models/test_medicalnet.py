"""MedicalNet ResNet-10 encoder: architecture, strict checkpoint loading, safetensors, features."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from safetensors import safe_open
from safetensors.torch import save_file

from models.medicalnet import (
    ARCHITECTURE,
    FEATURE_DIM,
    DeepFeatureExtractor,
    MedicalNetResNet10,
    deep_feature_names,
    load_backbone_safetensors,
    load_medicalnet_checkpoint,
    medicalnet_normalise,
    save_backbone_safetensors,
    seeded_backbone,
)
from pipeline.core.errors import BundleError

KEYS_FIXTURE = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures" / "medicalnet_resnet10_keys.json"


@pytest.fixture(scope="module")
def official_shapes() -> dict[str, tuple[int, ...]]:
    """Every key (``module.``-prefixed, incl. ``conv_seg.*``) and shape of the official checkpoint."""
    keys = json.loads(KEYS_FIXTURE.read_text())["keys"]
    return {key: tuple(shape) for key, shape in keys.items()}


@pytest.fixture(scope="module")
def official_like_state(official_shapes) -> dict[str, torch.Tensor]:
    """Random tensors with exactly the official checkpoint's keys, shapes and dtypes."""
    generator = torch.Generator().manual_seed(7)
    state = {}
    for key, shape in official_shapes.items():
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(1234, dtype=torch.int64)
        elif key.endswith("running_var"):
            state[key] = torch.rand(shape, generator=generator) + 0.5
        else:
            state[key] = torch.randn(shape, generator=generator) * 0.05
    return state


@pytest.fixture(scope="module")
def official_like_checkpoint(tmp_path_factory, official_like_state) -> Path:
    path = tmp_path_factory.mktemp("checkpoint") / "resnet_10.pth"
    torch.save({"state_dict": official_like_state}, path)
    return path


@pytest.fixture(scope="module")
def backbone() -> MedicalNetResNet10:
    return seeded_backbone(0)


def _cube(seed: int, edge: int = 32) -> np.ndarray:
    """A CT-like (z, y, x) cube in HU: a bright sphere in air-like noise."""
    rng = np.random.default_rng(seed)
    z, y, x = np.mgrid[:edge, :edge, :edge] - (edge - 1) / 2
    cube = rng.normal(-700.0, 60.0, size=(edge,) * 3)
    cube[z**2 + y**2 + x**2 < (edge / 4) ** 2] += 750.0
    return cube


# ---------------------------------------------------------------- architecture


def test_64_cube_gives_finite_512_features_from_an_8cube_layer4_map(backbone):
    x = torch.from_numpy(medicalnet_normalise(_cube(0, edge=64)))[None, None]
    with torch.inference_mode():
        feature_map = backbone.feature_map(x)
        features = backbone(x)
    assert feature_map.shape == (1, 512, 8, 8, 8)
    assert features.shape == (1, 512)
    assert torch.isfinite(features).all()
    torch.testing.assert_close(features, feature_map.mean(dim=(2, 3, 4)))


def test_state_dict_is_the_official_layout_without_the_segmentation_head(backbone, official_shapes):
    ours = {f"module.{key}": tuple(value.shape) for key, value in backbone.state_dict().items()}
    official_backbone = {key: shape for key, shape in official_shapes.items() if ".conv_seg." not in key}
    assert len(official_backbone) == 72  # 86 keys minus the 14 of conv_seg
    assert ours == official_backbone
    n_parameters = sum(p.numel() for p in backbone.parameters())
    print(f"ResNet-10 backbone parameters: {n_parameters:,}")
    assert 14.3e6 < n_parameters < 14.4e6


def test_seeded_backbone_is_deterministic_eval_mode_and_leaves_global_rng_alone():
    rng_before = torch.get_rng_state()
    a, b, c = seeded_backbone(1), seeded_backbone(1), seeded_backbone(2)
    assert torch.equal(torch.get_rng_state(), rng_before)
    assert not a.training
    for key, value in a.state_dict().items():
        assert torch.equal(value, b.state_dict()[key]), key
    assert not torch.equal(a.conv1.weight, c.conv1.weight)
    # MedicalNet's initialisation: Kaiming normal (fan-out) convs, BN weight 1 / bias 0.
    fan_out = 64 * 7 * 7 * 7
    assert a.conv1.weight.std().item() == pytest.approx((2.0 / fan_out) ** 0.5, rel=0.05)
    assert torch.equal(a.layer4[0].bn2.weight, torch.ones(512))
    assert torch.equal(a.layer4[0].bn2.bias, torch.zeros(512))
    with pytest.raises(ValueError, match="seed"):
        seeded_backbone(-1)


# ---------------------------------------------------------------- official checkpoints


def test_official_layout_checkpoint_loads_strictly_and_values_land(official_like_checkpoint, official_like_state):
    model = load_medicalnet_checkpoint(official_like_checkpoint)
    assert not model.training
    state = model.state_dict()
    for key in ("conv1.weight", "layer4.0.conv2.weight", "layer3.0.downsample.1.running_var"):
        assert torch.equal(state[key], official_like_state[f"module.{key}"]), key
    assert state["bn1.num_batches_tracked"].item() == 1234
    assert not any(key.startswith("conv_seg") for key in state)  # the head in the file was ignored


def test_bare_unprefixed_state_dict_loads_too(tmp_path, official_like_state):
    bare = {key.removeprefix("module."): value for key, value in official_like_state.items()
            if ".conv_seg." not in key}
    torch.save(bare, tmp_path / "bare.pth")
    model = load_medicalnet_checkpoint(tmp_path / "bare.pth")
    assert torch.equal(model.conv1.weight, bare["conv1.weight"])


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ("missing", r"checkpoint is missing 2 backbone keys: layer4\.0\.conv2\.weight, layer4\.0\.bn2\.bias"),
        ("mis-shaped", r"shape mismatch for conv1\.weight: checkpoint \(64, 1, 3, 3, 3\) vs model \(64, 1, 7, 7, 7\)"),
        ("unknown", r"checkpoint has 1 unknown key .*: layer5\.0\.conv1\.weight"),
    ],
)
def test_checkpoint_problems_are_refused_naming_the_key(tmp_path, official_like_state, change, expected):
    state = dict(official_like_state)
    if change == "missing":
        del state["module.layer4.0.conv2.weight"], state["module.layer4.0.bn2.bias"]
    elif change == "mis-shaped":
        state["module.conv1.weight"] = torch.zeros(64, 1, 3, 3, 3)
    else:
        state["module.layer5.0.conv1.weight"] = torch.zeros(8, 8, 3, 3, 3)
    path = tmp_path / "broken.pth"
    torch.save({"state_dict": state}, path)
    with pytest.raises(BundleError, match=expected):
        load_medicalnet_checkpoint(path)


class _RunsCodeWhenUnpickled:
    """A pickle payload that would create ``marker`` if loaded with an unrestricted unpickler."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_files_that_are_not_plain_tensor_checkpoints_are_refused(tmp_path):
    text = tmp_path / "notes.pth"
    text.write_text("this is not a checkpoint\n")
    marker = tmp_path / "code-ran"
    malicious = tmp_path / "malicious.pth"
    torch.save({"state_dict": {"conv1.weight": _RunsCodeWhenUnpickled(marker)}}, malicious)
    tensor_list = tmp_path / "list.pth"
    torch.save([torch.zeros(3)], tensor_list)

    for path in (text, malicious):
        with pytest.raises(BundleError, match="not a PyTorch checkpoint"):
            load_medicalnet_checkpoint(path)
    assert not marker.exists()
    with pytest.raises(BundleError, match="does not hold a state dict"):
        load_medicalnet_checkpoint(tensor_list)
    with pytest.raises(BundleError, match="not found"):
        load_medicalnet_checkpoint(tmp_path / "absent.pth")


# ---------------------------------------------------------------- safetensors


def test_safetensors_round_trip_at_float16(tmp_path):
    model = seeded_backbone(0)
    with torch.no_grad():  # non-trivial batch-norm statistics, so they are checked too
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm3d):
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.5, 1.5)
                module.num_batches_tracked.fill_(321)
    path = save_backbone_safetensors(model, tmp_path / "backbone.safetensors")
    size_mb = path.stat().st_size / 1e6
    print(f"backbone.safetensors at float16: {size_mb:.1f} MB")
    assert 27.5 < size_mb < 30.0

    with safe_open(path, framework="pt") as reader:
        assert reader.metadata()["architecture"] == ARCHITECTURE
        assert reader.get_tensor("conv1.weight").dtype == torch.float16
        assert reader.get_tensor("bn1.running_var").dtype == torch.float32
        assert reader.get_tensor("bn1.num_batches_tracked").dtype == torch.int64

    loaded = load_backbone_safetensors(path)
    assert not loaded.training
    assert all(p.dtype == torch.float32 for p in loaded.parameters())
    assert loaded.layer2[0].downsample[1].num_batches_tracked.item() == 321
    assert torch.equal(loaded.bn1.running_var, model.bn1.running_var)

    cubes = [_cube(1), _cube(2)]
    reference = DeepFeatureExtractor(model=model).encode_batch(cubes)
    restored = DeepFeatureExtractor(model=loaded).encode_batch(cubes)
    worst = np.abs(restored - reference).max() / np.abs(reference).max()
    print(f"float16 round trip: max feature error {worst:.2e} of the largest feature")
    assert worst < 1e-2


def test_safetensors_problems_are_refused(tmp_path, backbone):
    partial = tmp_path / "partial.safetensors"
    save_file({"conv1.weight": backbone.conv1.weight.detach().half()}, partial,
              metadata={"architecture": ARCHITECTURE})
    with pytest.raises(BundleError, match=r"weights file is missing 71 backbone keys: bn1\.weight"):
        load_backbone_safetensors(partial)

    other = tmp_path / "other.safetensors"
    save_file({"w": torch.zeros(2)}, other, metadata={"architecture": "resnet50"})
    with pytest.raises(BundleError, match="architecture 'resnet50'"):
        load_backbone_safetensors(other)

    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x00\x01 definitely not safetensors")
    with pytest.raises(BundleError, match="not a readable safetensors file"):
        load_backbone_safetensors(garbage)


# ---------------------------------------------------------------- normalisation and features


@settings(max_examples=40, deadline=None)
@given(arrays(np.float64, (3, 4, 5), elements=st.integers(-50, 50).map(float)))
def test_normalisation_gives_zero_mean_unit_variance_over_non_zero_voxels(cube):
    out = medicalnet_normalise(cube)
    assert out.dtype == np.float32 and out.shape == cube.shape
    assert np.isfinite(out).all()
    foreground = cube != 0
    assert (out[~foreground] == 0).all()
    if len(np.unique(cube[foreground])) > 1:
        assert out[foreground].mean() == pytest.approx(0.0, abs=1e-5)
        assert out[foreground].std() == pytest.approx(1.0, abs=1e-5)
        np.testing.assert_allclose(medicalnet_normalise(3.5 * cube), out, atol=1e-5)
    else:
        assert (out == 0).all()


def test_normalisation_edge_cases_never_give_nan():
    assert (medicalnet_normalise(np.zeros((4, 4, 4))) == 0).all()
    assert (medicalnet_normalise(np.full((4, 4, 4), 0.1)) == 0).all()
    cube = np.array([[[0.0, 2.0, 4.0]]])
    assert medicalnet_normalise(cube).tolist() == [[[0.0, -1.0, 1.0]]]
    assert cube.tolist() == [[[0.0, 2.0, 4.0]]]  # input untouched
    with pytest.raises(ValueError, match="3-D"):
        medicalnet_normalise(np.ones((4, 4)))
    with pytest.raises(ValueError, match="NaN"):
        medicalnet_normalise(np.full((2, 2, 2), np.nan))


def test_encode_is_deterministic_and_matches_encode_batch(backbone):
    threads_before = torch.get_num_threads()
    extractor = DeepFeatureExtractor(model=backbone, num_threads=1, batch_size=2)
    cubes = [_cube(seed) for seed in range(3)]
    first = extractor.encode(cubes[0])
    assert torch.get_num_threads() == threads_before
    assert first.shape == (FEATURE_DIM,) and first.dtype == np.float32 and np.isfinite(first).all()
    np.testing.assert_array_equal(extractor.encode(cubes[0]), first)
    np.testing.assert_array_equal(
        DeepFeatureExtractor(model=seeded_backbone(0)).encode(cubes[0]), first)

    batch = extractor.encode_batch(cubes)
    assert batch.shape == (3, FEATURE_DIM)
    np.testing.assert_allclose(batch[0], first, rtol=1e-4, atol=1e-5)
    assert not np.allclose(batch[1], batch[0])
    assert extractor.encode_batch([]).shape == (0, FEATURE_DIM)


def test_extractor_refuses_bad_settings_and_inputs(backbone):
    with pytest.raises(ValueError, match="num_threads"):
        DeepFeatureExtractor(model=backbone, num_threads=0)
    with pytest.raises(TypeError):
        DeepFeatureExtractor(backbone)  # keyword-only
    extractor = DeepFeatureExtractor(model=backbone)
    with pytest.raises(ValueError, match="same"):
        extractor.encode_batch([np.ones((8, 8, 8)), np.ones((8, 8, 16))])
    with pytest.raises(ValueError, match="single cube"):
        extractor.encode_batch(np.ones((8, 8, 8)))


def test_deep_feature_names():
    names = deep_feature_names()
    assert len(names) == len(set(names)) == FEATURE_DIM
    assert names[0] == "dl_000" and names[-1] == "dl_511"


def test_folding_in_place_gives_the_same_features_without_a_second_copy():
    """A scorer that owns its backbone folds it in place: same features as the copying
    extractor, and the model it holds is the folded one (no BatchNorm layers left)."""
    rng = np.random.default_rng(3)
    cubes = rng.normal(size=(2, 16, 16, 16)).astype(np.float32)
    copying = DeepFeatureExtractor(model=seeded_backbone(0))
    owned = seeded_backbone(0)
    folding = DeepFeatureExtractor(model=owned, fold_in_place=True)
    assert folding._runtime is owned
    assert not any(isinstance(m, torch.nn.BatchNorm3d) for m in owned.modules())
    assert any(isinstance(m, torch.nn.BatchNorm3d) for m in copying.model.modules())
    np.testing.assert_allclose(folding.encode_batch(cubes), copying.encode_batch(cubes), rtol=1e-5, atol=1e-6)
