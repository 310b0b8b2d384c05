"""Export YOLO11 models to ONNX, offline, with weights whose activations are usable.

Why this module exists: qsplit plans where to cut a network and how much quantization noise each
part tolerates. That needs a real graph (YOLO11 from Ultralytics) and *numerically alive*
weights. No pretrained weights can be downloaded here, and the default random initialisation of
YOLO11 is numerically dead: each block shrinks the signal, so deep activations end up around
1e-11 and every quantization error reads as zero. Without ``weights`` we therefore rescale the
random initialisation layer by layer (LSUV-style) until every layer's output has unit variance,
and say so in the ONNX metadata. With ``weights`` (a trained ``.pt``) the same code path exports
the trained model unchanged.

torch and Ultralytics (AGPL-3.0) belong to the optional ``yolo`` extra: they are imported
inside :func:`export_yolo` only, so the core of qsplit never needs them. Everything that does not
need them (name validation, letterboxing, verification with onnxruntime) works without.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import importlib.util
import os
import re
import shutil
import tempfile
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from statistics import median
from typing import Any

import numpy as np
import onnx

from qsplit.errors import DependencyError, InputError, ModelError

#: Model scales of the YOLO11 family, smallest first.
SIZES = ("n", "s", "m", "l", "x")
#: Task → suffix of the Ultralytics architecture file (``yolo11n-seg.yaml``).
TASK_SUFFIX = {"detect": "", "segment": "-seg", "classify": "-cls", "pose": "-pose"}
#: opset 17 covers every op YOLO11 exports to and is run by every onnxruntime qsplit accepts;
#: fixing it (rather than "newest") keeps exports comparable across torch versions.
OPSET = 17
#: A layer counts as rescaled when its output std is within this fraction of 1.
RESCALE_TOLERANCE = 0.10
#: Below this std an activation is "dead": int8 quantization error would print as 0.
DEAD_STD = 1e-3
#: Below this RMS an int8 round-trip error is considered to read as zero.
ZERO_QUANT_ERROR = 1e-4
#: Grey used by Ultralytics for letterbox padding; matching it keeps calibration realistic.
LETTERBOX_GREY = 114

_MAX_PASSES = 3
_FIX_EXTRA = "pip install 'qsplit[yolo]'"
_MODEL_RE = re.compile(r"^yolo11([a-z])$")


@dataclass(frozen=True)
class LayerStats:
    """Standard deviation of one layer's (pre-activation) output before and after rescaling."""

    name: str
    std_before: float
    std_after: float


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export_yolo` wrote and how the weights were made usable.

    ``layers`` is empty when trained weights were exported (nothing was rescaled).
    """

    path: Path
    sha256: str
    model: str
    task: str
    imgsz: int
    rescaled: bool
    weights: str
    layers: tuple[LayerStats, ...]
    metadata: dict[str, str]

    def std_range(self, which: str = "after") -> tuple[float, float, float]:
        """(min, median, max) over layers of ``std_before`` or ``std_after``."""
        if not self.layers:
            return (float("nan"),) * 3
        values = [getattr(s, f"std_{which}") for s in self.layers]
        return min(values), median(values), max(values)


# --------------------------------------------------------------------------------------------
# Validation: pure Python, so bad input fails fast and without torch.


def architecture_name(model: str, task: str = "detect") -> str:
    """Ultralytics architecture file for ``model`` and ``task``, e.g. ``yolo11n-seg.yaml``.

    Raises :class:`InputError` naming the offending field, so the CLI can say what to change.
    """
    name = model.strip().lower()
    match = _MODEL_RE.match(name)
    if match is None or match.group(1) not in SIZES:
        raise InputError(
            f"unknown model {model!r}: only the YOLO11 family is supported",
            field="model",
            fix=f"use one of {', '.join('yolo11' + s for s in SIZES)}",
        )
    if task not in TASK_SUFFIX:
        raise InputError(
            f"unknown task {task!r}",
            field="task",
            fix=f"use one of {', '.join(TASK_SUFFIX)}",
        )
    return f"{name}{TASK_SUFFIX[task]}.yaml"


def default_output_name(model: str, task: str = "detect") -> str:
    """File name ``export`` writes by default: ``yolo11n.onnx``, ``yolo11n-cls.onnx``, …"""
    return architecture_name(model, task).removesuffix(".yaml") + ".onnx"


def _check_imgsz(imgsz: int) -> None:
    # YOLO11's largest stride is 32; other sizes get silently rounded by Ultralytics, which
    # would make the recorded imgsz lie about the exported input shape.
    if isinstance(imgsz, bool) or not isinstance(imgsz, int) or not 32 <= imgsz <= 4096:
        raise InputError(f"image size {imgsz!r} out of range", field="imgsz", fix="use 32…4096")
    if imgsz % 32:
        raise InputError(
            f"image size {imgsz} is not a multiple of 32 (the model's largest stride)",
            field="imgsz",
            fix=f"use {max(32, round(imgsz / 32) * 32)}",
        )


def _check_weights(weights: Path | None) -> Path | None:
    if weights is None:
        return None
    weights = Path(weights)
    if not weights.is_file():
        raise InputError(
            "weights file not found",
            file=weights,
            field="weights",
            fix="pass an existing Ultralytics .pt checkpoint, or omit --weights for random ones",
        )
    if weights.suffix != ".pt":
        raise InputError(
            f"expected an Ultralytics .pt checkpoint, got {weights.suffix or 'no suffix'}",
            file=weights,
            field="weights",
            fix="pass the .pt file written by Ultralytics training",
        )
    return weights


def _check_out(out: Path) -> Path:
    out = Path(out)
    if not out.parent.is_dir():
        raise InputError(
            "output folder does not exist",
            file=out,
            field="out",
            fix=f"create {out.parent} first or choose another path",
        )
    if out.is_dir():
        raise InputError("output path is a folder", file=out, field="out", fix="name a .onnx file")
    return out


# --------------------------------------------------------------------------------------------
# Calibration input: bundled photographs, prepared the way Ultralytics prepares them.


def letterbox(image: Path, imgsz: int) -> np.ndarray:
    """Load ``image`` as a ``(3, imgsz, imgsz)`` float32 RGB array in [0, 1], letterboxed.

    Letterboxing (keep aspect ratio, pad with grey) is what Ultralytics does at inference, so
    statistics measured on these arrays are the ones the deployed model will see.
    """
    from PIL import Image

    with Image.open(image) as img:
        rgb = img.convert("RGB")
    scale = imgsz / max(rgb.size)
    size = (max(1, round(rgb.width * scale)), max(1, round(rgb.height * scale)))
    resized = rgb.resize(size, Image.Resampling.BILINEAR)
    canvas = Image.new("RGB", (imgsz, imgsz), (LETTERBOX_GREY,) * 3)
    canvas.paste(resized, ((imgsz - size[0]) // 2, (imgsz - size[1]) // 2))
    return np.asarray(canvas, dtype=np.float32).transpose(2, 0, 1) / 255.0


def calibration_batch(images: Sequence[Path] | None, imgsz: int, *, seed: int = 0) -> np.ndarray:
    """Stack letterboxed ``images`` into ``(N, 3, imgsz, imgsz)``; bundled samples by default.

    Falls back to seeded uniform noise only when no image is available at all, because noise
    has very different statistics from photographs and would mis-scale the first layers.
    """
    if images is None:
        from qsplit.assets import sample_images

        images = sample_images()
    arrays = [letterbox(Path(p), imgsz) for p in images]
    if arrays:
        return np.stack(arrays)
    rng = np.random.default_rng(seed)
    return rng.random((4, 3, imgsz, imgsz), dtype=np.float32)


# --------------------------------------------------------------------------------------------
# The torch side. Everything below receives the lazily imported modules as arguments.


def _import_backend() -> tuple[Any, Any]:
    """Import torch and Ultralytics, offline and without auto-install, or explain the extra.

    Ultralytics reads these switches when it is first imported, so they are set before; the
    module flag is also cleared in case it was imported earlier in this process.
    """
    os.environ["YOLO_OFFLINE"] = "1"
    os.environ["YOLO_AUTOINSTALL"] = "0"
    os.environ.setdefault("YOLO_VERBOSE", "False")
    try:
        import torch  # noqa: TID251 - optional extra, imported lazily on purpose
        from ultralytics import YOLO
        from ultralytics.utils import checks
    except ImportError as exc:
        raise DependencyError(
            f"model export needs the optional 'yolo' extra (torch, ultralytics): {exc}. "
            f"Fix: {_FIX_EXTRA}"
        ) from exc
    checks.AUTOINSTALL = False
    return torch, YOLO


def _target_layers(torch: Any, net: Any) -> list[tuple[str, Any]]:
    """Conv/Linear layers whose weights LSUV may rescale, in module order.

    The DFL convolution is excluded: its weights are the fixed integers 0…15 that turn a
    distribution into an expected box distance, not learnable parameters.
    """
    kinds = (torch.nn.Conv2d, torch.nn.ConvTranspose2d, torch.nn.Linear)
    frozen = {
        id(sub)
        for module in net.modules()
        if type(module).__name__ == "DFL"
        for sub in module.modules()
    }
    return [
        (name, m) for name, m in net.named_modules() if isinstance(m, kinds) and id(m) not in frozen
    ]


def _weighted_part(torch: Any, module: Any, output: Any) -> Any:
    """``W·x`` of a layer's output, i.e. the output without its bias.

    Scaling only the weights keeps the biases Ultralytics initialises on purpose (box prior of
    1.0, class prior log(5/nc/…)): they encode sensible priors, not scale.
    """
    bias = getattr(module, "bias", None)
    if bias is None:
        return output
    shape = [1] * output.dim()
    shape[-1 if isinstance(module, torch.nn.Linear) else 1] = -1
    return output - bias.view(shape)


def _measure(torch: Any, net: Any, layers: list[tuple[str, Any]], batch: Any) -> dict[str, float]:
    """Std of every layer's full output (bias included) on one forward pass."""
    stds: dict[str, float] = {}

    def record(_module: Any, _inputs: Any, out: Any, name: str) -> None:
        # Must return None: a forward hook's return value replaces the layer's output.
        stds.setdefault(name, float(out.float().std()))

    _forward_with_hooks(torch, net, layers, batch, record)
    return stds


def _rescale_pass(torch: Any, net: Any, layers: list[tuple[str, Any]], batch: Any) -> None:
    """One forward pass that rescales every layer in execution order.

    Each hook divides its layer's weights by the std of ``W·x`` and returns the output the
    rescaled layer would have produced, so later layers already see rescaled inputs: one pass
    does what LSUV does with one forward per layer. Conv outputs are linear in the weights, so
    the correction is exact up to rounding; further passes only catch layers run twice.
    """
    done: set[str] = set()

    def hook(module: Any, _inputs: Any, output: Any, name: str) -> Any:
        if name in done:
            return None
        done.add(name)
        weighted = _weighted_part(torch, module, output)
        std = float(weighted.float().std())
        if not np.isfinite(std) or std <= 0.0:
            return None  # a constant output has no scale to fix; leave the layer alone
        module.weight.mul_(1.0 / std)
        return output - weighted + weighted / std

    _forward_with_hooks(torch, net, layers, batch, hook)


def _forward_with_hooks(
    torch: Any, net: Any, layers: list[tuple[str, Any]], batch: Any, hook: Any
) -> None:
    """One forward pass of ``net`` on ``batch`` with ``hook(module, inputs, output, name)``
    on every layer; the hooks are removed afterwards, whatever happens."""
    handles = [
        module.register_forward_hook(lambda m, i, o, name=name: hook(m, i, o, name))
        for name, module in layers
    ]
    try:
        with torch.no_grad():
            net(batch)
    finally:
        for handle in handles:
            handle.remove()


def rescale_to_unit_variance(torch: Any, net: Any, batch: Any) -> tuple[LayerStats, ...]:
    """LSUV-style rescaling of a randomly initialised network, in place.

    BatchNorm is folded into the preceding convolution first (Ultralytics' ``fuse``). In eval
    mode a BN layer is just a fixed per-channel affine map, so folding loses nothing, leaves the
    conv weight as the only scale to adjust (rescaling BN's gamma as well would be a second,
    redundant knob) and makes the rescaled tensor exactly the one written to ONNX, which is fused
    anyway. Each layer's pre-activation output is brought to unit std; passes repeat until every
    layer is within :data:`RESCALE_TOLERANCE` (normally one pass is enough).
    """
    net.fuse(verbose=False)
    net.eval()
    layers = _target_layers(torch, net)
    before = _measure(torch, net, layers, batch)
    after = before
    for _ in range(_MAX_PASSES):
        _rescale_pass(torch, net, layers, batch)
        after = _measure(torch, net, layers, batch)
        if all(
            abs(s - 1.0) <= RESCALE_TOLERANCE for s in _weighted_stds(torch, net, layers, batch)
        ):
            break
    return tuple(LayerStats(n, before[n], after[n]) for n, _ in layers if n in before)


def _weighted_stds(torch: Any, net: Any, layers: list[tuple[str, Any]], batch: Any) -> list[float]:
    """Std of ``W·x`` per layer: the quantity rescaling targets (biases may shift the total)."""
    stds: list[float] = []
    handles = [
        module.register_forward_hook(
            lambda m, _i, out: stds.append(float(_weighted_part(torch, m, out).float().std()))
        )
        for _, module in layers
    ]
    try:
        with torch.no_grad():
            net(batch)
    finally:
        for handle in handles:
            handle.remove()
    return [s for s in stds if s > 0.0]


def _load_yolo(yolo_cls: Any, arch: str, weights: Path | None, workdir: Path, task: str) -> Any:
    """Build from the architecture (random) or load ``weights`` copied into ``workdir``.

    The checkpoint is copied because Ultralytics writes the export next to the ``.pt`` file.
    """
    if weights is None:
        return yolo_cls(arch, task=task)
    local = workdir / weights.name
    shutil.copyfile(weights, local)
    try:
        yolo = yolo_cls(str(local))
    except Exception as exc:  # Ultralytics raises many kinds for an unreadable checkpoint
        raise InputError(
            f"cannot load checkpoint: {exc}",
            file=weights,
            field="weights",
            fix="pass a .pt written by Ultralytics",
        ) from exc
    scale = (getattr(yolo.model, "yaml", None) or {}).get("scale")
    wanted = arch.removesuffix(".yaml").split("-")[0]
    if scale and f"yolo11{scale}" != wanted:
        raise InputError(
            f"checkpoint is a yolo11{scale} model, not {wanted}",
            file=weights,
            field="model",
            fix=f"pass yolo11{scale} as the model",
        )
    if yolo.task != task:
        raise InputError(
            f"checkpoint is a {yolo.task!r} model, not {task!r}",
            file=weights,
            field="task",
            fix=f"pass --task {yolo.task}",
        )
    return yolo


def _export_onnx(torch: Any, yolo: Any, imgsz: int, workdir: Path) -> Path:
    """Run Ultralytics' ONNX exporter (TorchScript-based, not dynamo) inside ``workdir``.

    The working directory is switched because Ultralytics names the file after the yaml/pt
    and writes it relative to the cwd; qsplit must not leave files behind there.
    """
    simplify = importlib.util.find_spec("onnxslim") is not None
    with contextlib.chdir(workdir), warnings.catch_warnings():
        # The TorchScript exporter is chosen on purpose (it keeps /model.N/ node names, which
        # block coarsening relies on); torch >= 2.9 flags it as deprecated. Tracer warnings
        # (shape-dependent Python branches in the head) are expected: the input is static.
        warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export")
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        written = yolo.export(
            format="onnx",
            imgsz=imgsz,
            opset=OPSET,
            dynamic=False,
            batch=1,
            simplify=simplify,
            nms=False,
            device="cpu",
        )
    path = Path(written)
    return path if path.is_absolute() else workdir / path


# --------------------------------------------------------------------------------------------
# After export: metadata and a torch-free health check with onnxruntime.


def _versions() -> str:
    names = ("qsplit", "ultralytics", "torch", "onnx", "onnxslim")
    parts = []
    for name in names:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            parts.append(f"{name} {importlib.metadata.version(name)}")
    return "; ".join(parts)


def _annotate(path: Path, metadata: dict[str, str]) -> None:
    """Add ``metadata`` to the model's ``metadata_props`` (replacing equal keys)."""
    model = onnx.load(str(path))
    kept = [p for p in model.metadata_props if p.key not in metadata]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    for key, value in metadata.items():
        model.metadata_props.add(key=key, value=value)
    onnx.save(model, str(path))


def int8_roundtrip_rms(x: np.ndarray) -> float:
    """RMS error of symmetric per-tensor int8 quantization of ``x``.

    Used as the canary for "numerically dead": on default-init YOLO11 this is ~1e-13.
    """
    peak = float(np.max(np.abs(x)))
    if peak == 0.0 or not np.isfinite(peak):
        return 0.0
    scale = peak / 127.0
    restored = np.clip(np.round(x / scale), -127, 127) * scale
    return float(np.sqrt(np.mean((x - restored) ** 2)))


@dataclass(frozen=True)
class HealthReport:
    """Activation statistics of an ONNX model on one input, from onnxruntime."""

    conv_stds: dict[str, float]
    output_stds: dict[str, float]
    median_int8_rms: float

    @property
    def dead_convs(self) -> list[str]:
        return [n for n, s in self.conv_stds.items() if not s > DEAD_STD]

    @property
    def healthy(self) -> bool:
        outputs_ok = all(np.isfinite(s) and s > 0.0 for s in self.output_stds.values())
        return outputs_ok and not self.dead_convs and self.median_int8_rms > ZERO_QUANT_ERROR


def activation_health(path: Path, image: np.ndarray) -> HealthReport:
    """Run ``path`` on one ``(3, H, W)`` image and measure every Conv output.

    Conv outputs are exposed as extra graph outputs and ORT graph optimisation is off, so the
    tensors measured are exactly the ones the model file describes.
    """
    import onnxruntime as ort

    model = onnx.load(str(path))
    graph_outputs = [o.name for o in model.graph.output]
    conv_outputs = [n.output[0] for n in model.graph.node if n.op_type == "Conv"]
    for name in conv_outputs:
        model.graph.output.append(onnx.ValueInfoProto(name=name))
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.log_severity_level = 3
    session = ort.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )
    feed = {session.get_inputs()[0].name: image[None].astype(np.float32)}
    names = graph_outputs + conv_outputs
    values = dict(zip(names, session.run(names, feed), strict=True))
    convs = {n: float(np.std(values[n])) for n in conv_outputs}
    return HealthReport(
        conv_stds=convs,
        output_stds={n: float(np.std(values[n])) for n in graph_outputs},
        median_int8_rms=median(int8_roundtrip_rms(values[n]) for n in conv_outputs)
        if conv_outputs
        else 0.0,
    )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# --------------------------------------------------------------------------------------------


def export_yolo(
    model: str,
    *,
    task: str = "detect",
    imgsz: int = 640,
    weights: Path | None = None,
    out: Path | None = None,
    calibration_images: Sequence[Path] | None = None,
    seed: int = 0,
) -> ExportResult:
    """Export a YOLO11 model to ONNX (opset 17, static batch 1, input ``images``).

    Without ``weights`` the architecture is built with seed ``seed`` and rescaled to unit
    activation variance on ``calibration_images`` (bundled samples by default); with
    ``weights`` the trained checkpoint is exported unchanged. Either way the result is checked
    with onnxruntime and its provenance is recorded under ``qsplit.*`` in ``metadata_props``.
    Never touches the network and never installs anything.
    """
    arch = architecture_name(model, task)
    _check_imgsz(imgsz)
    weights = _check_weights(weights)
    out = _check_out(
        Path(out) if out is not None else Path.cwd() / default_output_name(model, task)
    )
    torch, yolo_cls = _import_backend()  # before the images: a missing extra fails fast
    if calibration_images is None:
        from qsplit.assets import sample_images

        calibration_images = sample_images()
    batch = calibration_batch(calibration_images, imgsz, seed=seed)
    calibration = (
        ", ".join(Path(p).name for p in calibration_images) or f"uniform noise (seed {seed})"
    )

    with tempfile.TemporaryDirectory(prefix="qsplit-export-") as tmp:
        workdir = Path(tmp)
        torch.manual_seed(seed)
        yolo = _load_yolo(yolo_cls, arch, weights, workdir, task)
        layers: tuple[LayerStats, ...] = ()
        if weights is None:
            layers = rescale_to_unit_variance(torch, yolo.model, torch.from_numpy(batch))
        written = _export_onnx(torch, yolo, imgsz, workdir)
        metadata = _metadata(arch, task, imgsz, weights, layers, batch, seed, calibration)
        _annotate(written, metadata)
        health = activation_health(written, batch[0])
        if not health.healthy:
            raise ModelError(
                f"exported model is numerically dead ({len(health.dead_convs)} Conv outputs "
                f"with std <= {DEAD_STD}, median int8 error {health.median_int8_rms:.2e})",
                file=out,
                fix="export without --weights to rescale, or check the checkpoint",
            )
        shutil.move(str(written), out)

    return ExportResult(
        path=out,
        sha256=_sha256(out),
        model=arch.removesuffix(".yaml"),
        task=task,
        imgsz=imgsz,
        rescaled=weights is None,
        weights=metadata["qsplit.weights"],
        layers=layers,
        metadata=metadata,
    )


def _metadata(
    arch: str,
    task: str,
    imgsz: int,
    weights: Path | None,
    layers: tuple[LayerStats, ...],
    batch: np.ndarray,
    seed: int,
    calibration: str,
) -> dict[str, str]:
    """The ``qsplit.*`` provenance keys; readers rely on ``qsplit.weights`` to warn users."""
    meta = {
        "qsplit.model": arch.removesuffix(".yaml"),
        "qsplit.task": task,
        "qsplit.imgsz": str(imgsz),
        "qsplit.exporter": _versions(),
    }
    if weights is not None:
        meta["qsplit.weights"] = f"file:{weights.name}"
        meta["qsplit.weights_sha256"] = _sha256(weights)
        meta["qsplit.rescaling"] = "none: trained weights exported unchanged"
        return meta
    before = sorted(s.std_before for s in layers)
    after = sorted(s.std_after for s in layers)
    meta["qsplit.weights"] = "random-rescaled"
    meta["qsplit.seed"] = str(seed)
    meta["qsplit.calibration"] = calibration
    meta["qsplit.rescaling"] = (
        "LSUV-style: random init (torch seed {seed}), BatchNorm folded into Conv, then every "
        "Conv/Linear weight (DFL excepted, biases kept) scaled in forward order so that its "
        "output has unit std on {n} calibration images; layer output std before: "
        "min {b0:.2e} median {b1:.2e}, after: min {a0:.2f} median {a1:.2f} max {a2:.2f}. "
        "Weights are NOT trained: outputs are meaningless as predictions."
    ).format(
        seed=seed,
        n=batch.shape[0],
        b0=before[0] if before else float("nan"),
        b1=median(before) if before else float("nan"),
        a0=after[0] if after else float("nan"),
        a1=median(after) if after else float("nan"),
        a2=after[-1] if after else float("nan"),
    )
    return meta
