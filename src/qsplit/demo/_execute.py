"""Running one configuration on the testbed and summarising what it measured."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort

from qsplit.errors import TransportError
from qsplit.infra import Infra
from qsplit.model import Preprocess
from qsplit.profile import ComputeProfile
from qsplit.report import Measured
from qsplit.runtime import RequestRecord, build_deployment, connect, save_results
from qsplit.runtime import summarize as summarize_records

Feeds = dict[str, np.ndarray]


def reference_outputs(model_path: Path, feeds: Sequence[Feeds]) -> list[list[np.ndarray]]:
    """The whole fp32 model's outputs, optimised like the agents' components."""
    options = ort.SessionOptions()
    options.log_severity_level = 3
    whole = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
    return [whole.run(None, feed) for feed in feeds]


def run_configuration(
    model_path: Path,
    assignment: dict[str, str],
    quantized: Sequence[str],
    infra: Infra,
    feeds: Sequence[Feeds],
    *,
    requests: int,
    timeout_s: float,
    calibration: Path,
    preprocess: Preprocess,
    profiles: Mapping[str, ComputeProfile],
    reference: Sequence[Sequence[np.ndarray]] | None,
    noise_feeds: int,
    results_path: Path,
    on_request: Callable[[], None],
    link_precision: Mapping[str, str] | None = None,
    link_codec: Mapping[str, str] | None = None,
) -> Measured:
    """Deploy, warm up with one request, measure ``requests`` more, undeploy.

    Requests run one at a time: the plans are priced for a single inference, and overlapping
    requests would share the emulated links and cores. ``reference`` (whole-model outputs per
    feed) is compared with fp32 configurations' outputs (lz4/zstd on links are lossless: still
    fp32); for quantized ones and those sending tensors at fp16/int8 (``link_precision``), the
    noise model's metric is measured on the first ``noise_feeds`` feeds (its evaluation images)
    instead.
    """
    lossy = bool(quantized or link_precision)
    deployment = build_deployment(
        model_path,
        assignment,
        infra,
        quantized=quantized,
        calibration=calibration,
        preprocess=preprocess,
        profiles=profiles,
        link_precision=link_precision,
        link_codec=link_codec,
    )
    records: list[RequestRecord] = []
    worst = 0.0
    noise: dict[int, float] = {}
    with connect(deployment, infra, timeout_s=timeout_s) as session:
        try:
            session.infer(feeds[0])  # connections finish their handshakes, sessions warm up
            start = time.perf_counter()
            for index in range(requests):
                feed = feeds[index % len(feeds)]
                outputs, record = session.infer_timed(feed)
                records.append(record)
                if reference is not None:
                    expected = reference[index % len(feeds)]
                    if not lossy:
                        for name, want in zip(deployment.model_outputs, expected, strict=True):
                            worst = max(worst, float(np.max(np.abs(outputs[name] - want))))
                    elif index % len(feeds) < noise_feeds:
                        first = outputs[deployment.model_outputs[0]]
                        noise[index % len(feeds)] = float(np.abs(first - expected[0]).mean())
                on_request()
            wall_s = time.perf_counter() - start
        except BaseException:
            # The request's failure is what the user must see; an agent that failed it (or died)
            # usually cannot undeploy either, and that second error would replace the first.
            with contextlib.suppress(TransportError):
                session.undeploy()
            raise
        session.undeploy()
    save_results(results_path, records, wall_s, {"deployment": deployment.id}, infra=infra)
    return summarize(
        records,
        infra,
        None if lossy or reference is None else worst,
        float(np.mean(list(noise.values()))) if noise else None,
    )


def summarize(
    records: Sequence[RequestRecord],
    infra: Infra,
    max_abs_diff: float | None,
    noise: float | None,
) -> Measured:
    """Medians over requests, from the runtime's own summary (energy: the cost model's prices
    at measured times). Transfers are per request and link, within-node hops excluded, as the
    cost model counts them."""
    summary = summarize_records(records, 0.0, infra=infra)
    return Measured(
        latency_s=summary["latency_s"]["median"],
        energy_j=summary["energy_j"]["median"],
        device_energy_j=summary["device_energy_j"]["median"],
        latency_p90_s=summary["latency_s"]["p90"],
        requests=summary["requests"],
        failed=summary["failed"],
        compute_s=summary["compute_s_per_node"],
        transfer_s={f"{lk['from']}->{lk['to']}": lk["transfer_s"] for lk in summary["links"]},
        max_abs_diff=max_abs_diff,
        noise=noise,
    )
