"""Model export and the bundled assets.

Everything here except the ``slow`` test runs without torch: CI has none, and the bundled model
exists precisely so that nothing else needs it.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from PIL import Image

from qsplit.assets import bundled_model_path, sample_images, sample_images_dir
from qsplit.errors import DependencyError, InputError
from qsplit.model.export import (
    DEAD_STD,
    activation_health,
    architecture_name,
    default_output_name,
    export_yolo,
    int8_roundtrip_rms,
    letterbox,
)

REQUIRED_METADATA = (
    "qsplit.weights",
    "qsplit.rescaling",
    "qsplit.task",
    "qsplit.imgsz",
    "qsplit.exporter",
)


@pytest.fixture(scope="module")
def bundled() -> onnx.ModelProto:
    return onnx.load(str(bundled_model_path("yolo11n")))


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return letterbox(sample_images_dir() / "astronaut.jpg", 640)


# --- the bundled model ------------------------------------------------------------------------


def test_bundled_model_is_valid_onnx(bundled: onnx.ModelProto) -> None:
    onnx.checker.check_model(bundled)
    assert max(o.version for o in bundled.opset_import if o.domain in ("", "ai.onnx")) >= 13


def test_bundled_model_metadata_says_random_rescaled(bundled: onnx.ModelProto) -> None:
    meta = {p.key: p.value for p in bundled.metadata_props}
    for key in REQUIRED_METADATA:
        assert meta.get(key), f"missing metadata {key}"
    assert meta["qsplit.weights"] == "random-rescaled"
    assert meta["qsplit.task"] == "detect"
    assert meta["qsplit.imgsz"] == "640"
    assert "LSUV" in meta["qsplit.rescaling"]


def test_bundled_model_has_static_640_input(bundled: onnx.ModelProto) -> None:
    initializers = {t.name for t in bundled.graph.initializer}
    inputs = [i for i in bundled.graph.input if i.name not in initializers]
    assert [i.name for i in inputs] == ["images"]
    dims = [d.dim_value for d in inputs[0].type.tensor_type.shape.dim]
    assert dims == [1, 3, 640, 640]


def test_bundled_model_node_names_keep_module_prefixes(bundled: onnx.ModelProto) -> None:
    """Block coarsening groups nodes by the Ultralytics module path in their names."""
    names = [n.name for n in bundled.graph.node]
    assert all(re.match(r"^/model\.\d+/", n) for n in names), "every node under /model.N/"
    assert "/model.10/m/m.0/attn/qkv/conv/Conv" in names
    assert {int(n.split("/")[1].split(".")[1]) for n in names} == set(range(24))


def test_bundled_model_outputs_are_alive(astronaut: np.ndarray) -> None:
    session = ort.InferenceSession(str(bundled_model_path()), providers=["CPUExecutionProvider"])
    (out,) = session.run(None, {"images": astronaut[None]})
    assert out.shape == (1, 84, 8400)
    assert np.isfinite(out).all()
    scores = out[0, 4:]
    assert scores.std() > DEAD_STD
    assert scores.min() >= 0.0 and scores.max() <= 1.0


def test_bundled_model_activations_are_alive_on_every_sample() -> None:
    """No Conv output is dead on any sample and int8 quantization error is visibly non-zero."""
    for image in sample_images():
        health = activation_health(bundled_model_path(), letterbox(image, 640))
        assert health.healthy, (image.name, health.dead_convs, health.median_int8_rms)
        assert len(health.conv_stds) == 88


def test_bundled_model_output_depends_on_the_image(astronaut: np.ndarray) -> None:
    """Default init gives the same output for every image; rescaled weights must not."""
    session = ort.InferenceSession(str(bundled_model_path()), providers=["CPUExecutionProvider"])
    other = letterbox(sample_images_dir() / "coffee.jpg", 640)
    (a,) = session.run(None, {"images": astronaut[None]})
    (b,) = session.run(None, {"images": other[None]})
    assert np.abs(a[0, 4:] - b[0, 4:]).max() > 0.1


def test_unknown_bundled_model_names_the_available_ones() -> None:
    with pytest.raises(InputError, match="yolo11n") as info:
        bundled_model_path("yolo99")
    assert info.value.field == "model"


def test_models_readme_records_the_bundled_sha256() -> None:
    import hashlib

    path = bundled_model_path()
    readme = (path.parent / "README.md").read_text(encoding="utf-8")
    assert hashlib.sha256(path.read_bytes()).hexdigest() in readme
    assert "AGPL-3.0" in readme


# --- sample images ----------------------------------------------------------------------------


def test_sample_images_open_and_are_small() -> None:
    images = sample_images()
    assert 4 <= len(images) <= 6
    for path in images:
        assert path.stat().st_size <= 150_000, path.name
        with Image.open(path) as img:
            img.verify()
        with Image.open(path) as img:
            assert img.mode == "RGB"
            assert min(img.size) >= 200


def test_sources_md_names_every_image_with_a_licence() -> None:
    sources = (sample_images_dir() / "SOURCES.md").read_text(encoding="utf-8")
    in_folder = {p.name for p in sample_images_dir().iterdir() if p.name != "SOURCES.md"}
    assert in_folder == {p.name for p in sample_images()}, "only images besides SOURCES.md"
    for name in in_folder:
        rows = [line for line in sources.splitlines() if f"`{name}`" in line]
        assert rows, f"{name} not in SOURCES.md"
        assert re.search(r"public domain|CC0", rows[0], re.IGNORECASE), name


def test_letterbox_keeps_aspect_and_pads_grey() -> None:
    array = letterbox(sample_images_dir() / "rocket.jpg", 320)  # 640x427 landscape
    assert array.shape == (3, 320, 320)
    assert array.dtype == np.float32
    assert array.min() >= 0.0 and array.max() <= 1.0
    np.testing.assert_allclose(array[:, 0, :], 114 / 255, atol=1e-6)  # top padding row
    assert np.abs(array[:, 160, :] - 114 / 255).max() > 0.1  # picture in the middle


def test_int8_roundtrip_rms_reads_zero_only_for_dead_tensors() -> None:
    rng = np.random.default_rng(0)
    alive = rng.standard_normal(10_000).astype(np.float32)
    assert int8_roundtrip_rms(alive) > 1e-3
    assert int8_roundtrip_rms(alive * 1e-10) < 1e-12
    assert int8_roundtrip_rms(np.zeros(4, np.float32)) == 0.0


# --- validation and the optional dependency -----------------------------------------------------


@pytest.mark.parametrize(
    ("model", "task", "expected"),
    [
        ("yolo11n", "detect", "yolo11n.yaml"),
        ("YOLO11s", "segment", "yolo11s-seg.yaml"),
        ("yolo11x", "classify", "yolo11x-cls.yaml"),
        ("yolo11n", "pose", "yolo11n-pose.yaml"),
    ],
)
def test_architecture_name(model: str, task: str, expected: str) -> None:
    assert architecture_name(model, task) == expected


def test_default_output_name() -> None:
    assert default_output_name("yolo11n") == "yolo11n.onnx"
    assert default_output_name("yolo11m", "classify") == "yolo11m-cls.onnx"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"model": "yolov8n"}, "model"),
        ({"model": "yolo11q"}, "model"),
        ({"model": "yolo11n", "task": "obb"}, "task"),
        ({"model": "yolo11n", "imgsz": 100}, "imgsz"),
        ({"model": "yolo11n", "imgsz": 0}, "imgsz"),
        ({"model": "yolo11n", "weights": Path("/nonexistent/best.pt")}, "weights"),
    ],
)
def test_bad_input_names_the_field(kwargs: dict[str, object], field: str, tmp_path: Path) -> None:
    model = kwargs.pop("model")
    with pytest.raises(InputError) as info:
        export_yolo(model, out=tmp_path / "x.onnx", **kwargs)  # type: ignore[arg-type]
    assert info.value.field == field
    assert info.value.fix


def test_weights_must_be_a_pt_file(tmp_path: Path) -> None:
    weights = tmp_path / "model.onnx"
    weights.write_bytes(b"")
    with pytest.raises(InputError, match=r"\.pt") as info:
        export_yolo("yolo11n", weights=weights, out=tmp_path / "x.onnx")
    assert info.value.field == "weights"


def test_missing_output_folder_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError) as info:
        export_yolo("yolo11n", out=tmp_path / "missing" / "x.onnx")
    assert info.value.field == "out"


@pytest.mark.parametrize("missing", ["torch", "ultralytics"])
def test_missing_extra_raises_dependency_error(
    missing: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, missing, None)
    with pytest.raises(DependencyError, match=re.escape("pip install 'qsplit[yolo]'")):
        export_yolo("yolo11n", imgsz=64, out=tmp_path / "x.onnx")
    assert not (tmp_path / "x.onnx").exists()


def test_cli_reports_bad_model_as_input_error() -> None:
    from typer.testing import CliRunner

    import qsplit.cli.model_cmd  # noqa: F401  (registers `model` on the root app)
    from qsplit.cli._app import app

    result = CliRunner().invoke(app, ["model", "export", "yolo11q"])
    assert isinstance(result.exception, InputError)
    assert result.exception.field == "model"


def test_cli_help_has_an_example() -> None:
    from typer.testing import CliRunner

    import qsplit.cli.model_cmd  # noqa: F401
    from qsplit.cli._app import app

    result = CliRunner().invoke(app, ["model", "export", "--help"])
    assert result.exit_code == 0
    assert "qsplit model export yolo11n" in result.output


# --- a real export (needs the 'yolo' extra) -----------------------------------------------------


@pytest.mark.slow
# torch's TorchScript exporter trips deprecation warnings inside torch itself; not ours to fix.
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_export_rescales_random_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("ultralytics")
    monkeypatch.chdir(tmp_path)
    result = export_yolo("yolo11n", imgsz=128, out=tmp_path / "n.onnx")

    assert sorted(p.name for p in tmp_path.iterdir()) == ["n.onnx"], "nothing left behind"
    assert result.rescaled and result.weights == "random-rescaled"
    _, median_before, _ = result.std_range("before")
    lo_after, _, hi_after = result.std_range("after")
    assert median_before < 1e-4, "default init is expected to be numerically dead"
    assert lo_after >= 0.9 and hi_after <= 1.1
    model = onnx.load(str(result.path))
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["qsplit.imgsz"] == "128"
    assert meta["qsplit.weights"] == "random-rescaled"
    dims = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims == [1, 3, 128, 128]
    health = activation_health(result.path, letterbox(sample_images()[0], 128))
    assert health.healthy
