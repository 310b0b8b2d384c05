"""What ``qsplit demo`` does, as one value: model, scenarios, plan grid, requests, caches."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from qsplit.assets import bundled_model_path, sample_images_dir
from qsplit.model import ModelSpec, resolve_model_spec
from qsplit.plan import LatencyModel
from qsplit.profile import HostReference

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@dataclass(frozen=True)
class ScenarioSpec:
    """A named infrastructure file; its nodes must all exist in the testbed's infrastructure."""

    name: str
    infra: Path


def default_scenarios() -> tuple[ScenarioSpec, ...]:
    """The papers' three settings: the device alone, device + edge, device + edge + cloud."""
    return (
        ScenarioSpec("device", EXAMPLES / "device-only.yaml"),
        ScenarioSpec("device+edge", EXAMPLES / "device-edge.yaml"),
        ScenarioSpec("device+edge+cloud", EXAMPLES / "three-tier.yaml"),
    )


@dataclass(frozen=True)
class DemoConfig:
    """Everything the demo varies. The defaults are the README's main command."""

    out: Path
    """The run directory (created; an existing ``run.json`` there is replaced)."""
    model: Path = field(default_factory=bundled_model_path)
    preprocess: Path | None = None
    """The model's description (preprocessing, task); default: the one beside the model, if
    any, else YOLO's letterbox to [0, 1]."""
    testbed_infra: Path = EXAMPLES / "three-tier.yaml"
    """The testbed to start: every scenario runs on (a subset of) its nodes."""
    scenarios: tuple[ScenarioSpec, ...] = field(default_factory=default_scenarios)
    images: Path = field(default_factory=sample_images_dir)
    """Calibration images, and the inputs of the measured requests."""
    cache: Path = Path(".qsplit/cache")
    """Profiles and noise models are reused from here when model, node and settings match."""
    w_latency: tuple[float, ...] = (1.0, 0.5)
    """Latency weights of the plans (energy weight = 1 − latency weight)."""
    noise_fractions: tuple[float, ...] = (0.0, 0.3, 1.0)
    """Noise bounds, as fractions of the predicted noise of quantizing every candidate block
    (0: nothing quantized)."""
    latency_model: LatencyModel = "sum"
    requests: int = 5
    """Measured requests per configuration (after one warm-up request)."""
    noise_samples: int = 80
    noise_top_k: int = 12
    """Candidate blocks for quantization: the top K by MACs (the detection head excluded)."""
    link_tensors: int = 4
    """The largest crossing tensors the noise study also sends at fp16 and int8, so plans may
    send them at lower precision (0: links stay fp32; lz4/zstd are offered either way)."""
    profile_repetitions: int = 20
    timeout_s: float = 120.0
    """Per request."""
    dilation: float = 1.0
    """Time dilation (:func:`qsplit.testbed.dilated_infra`): every node and link of the testbed
    and the scenarios this many times slower, for a host too slow to emulate them as they are.
    Predicted and measured times in the run are the dilated ones; ``settings.dilation`` in
    ``run.json`` says by how much to divide them."""
    host: HostReference | None = None
    """This host's measurement for the testbed (:func:`qsplit.testbed.load_host_file`, saved by
    ``qsplit testbed calibrate --out``); ``None``: measured when the testbed starts."""

    @property
    def spec(self) -> ModelSpec:
        """The model's preprocessing and task, read from its description file."""
        return resolve_model_spec(self.model, self.preprocess)
