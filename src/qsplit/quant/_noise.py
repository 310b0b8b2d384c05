"""The noise model: sample quantization masks, measure their noise, fit a polynomial to it.

The planner needs ``noise(mask)`` for every mask it considers, far too many to measure. Measured
noise of quantizing blocks together is close to additive with small pairwise interactions, so a
low-degree polynomial in the quantization bits, fitted on a few hundred measured masks, predicts
it well. Degree 1–3 (interaction terms only, since q² = q) is chosen by held-out error.

A mask's bits may also be *link variables* (``link:<tensor>:fp16|int8``, see
:func:`qsplit.quant.link_variable`): the tensor is then sent over links at that precision,
applied to the whole model with the same surgery the runtime deploys
(:func:`qsplit.quant.link_quantized_proto`), so link noise is sampled and fitted like block
noise.
"""

from __future__ import annotations

import itertools
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from qsplit._jsonio import write_json
from qsplit.errors import InputError
from qsplit.model import LayerGraph, TaskSpec
from qsplit.quant._link import link_candidates, link_quantized_proto
from qsplit.quant._metrics import task_metric
from qsplit.quant._noise_poly import NoisePolynomial, NoiseTerm, is_link_variable, link_variable
from qsplit.quant._ptq import Quantizer

SAMPLES_KIND = "noise-samples"
SCHEMA_VERSION = 1
CV_FOLDS = 5
LASSO_ALPHAS = 30
"""Lasso penalties tried per fit (sklearn spaces them down from the least that zeroes all)."""
POWERS = (1, 2)
"""Targets tried: noise itself, and noise² (see :class:`NoisePolynomial`)."""


@dataclass(frozen=True)
class NoiseSample:
    """One measured mask: which blocks were quantized and what that cost."""

    blocks: tuple[str, ...]
    """Quantized blocks, and link variables of link-quantized tensors."""
    noise: float
    """Mean over inputs of mean |fp32 output − quantized output| (the papers' metric)."""
    task: float | None
    """The task metric against the fp32 outputs (e.g. mAP50 of a detector, top-1 agreement of
    a classifier; see :func:`qsplit.quant.task_metric`), ``None`` without one."""
    seconds: float
    """Wall time of this mask in its worker (several masks are measured at once)."""


def candidate_blocks(
    graph: LayerGraph, quantizer: Quantizer, top_k: int = 12, include_head: bool = False
) -> tuple[str, ...]:
    """The ``top_k`` quantizable blocks with the most MACs, in graph order.

    Without ``include_head``, blocks producing a model output (a detector's final decode and
    concat) are left out: static int8 there can collapse detections.
    """
    pool = [
        b
        for b in quantizer.quantizable
        if include_head
        or not any(graph.tensor_by_name[t].is_model_output for t in graph.block(b).outputs)
    ]
    if not 1 <= top_k <= len(pool):
        raise InputError(
            f"top-K {top_k} is out of range: this model has {len(pool)} quantizable blocks",
            field="--top-k",
            fix=f"choose K between 1 and {len(pool)}",
        )
    chosen = set(sorted(pool, key=lambda b: -graph.block(b).macs)[:top_k])
    return tuple(b for b in graph.block_names if b in chosen)


def random_masks(n_blocks: int, count: int, seed: int = 0) -> list[tuple[int, ...]]:
    """``count`` distinct 0/1 masks: the empty and the full one, each single block when that
    takes at most a quarter of ``count``, then random ones.

    Uniform random masks quantize about half the blocks, so a fit on them alone extrapolates to
    masks of one or two blocks, exactly where tight noise bounds send the planner. Measuring
    every block alone pins those down: on YOLO11n at 80 samples, held-out R² 0.970 → 0.984 and
    the error on masks of 2–3 or 10–11 blocks 9.7 % → 3.2 % (docs/quantization.md). In a
    smaller design they would crowd out the masks that show how blocks interact.
    """
    count = min(count, 2**n_blocks)
    rng = np.random.default_rng(seed)
    singles = [tuple(int(i == j) for i in range(n_blocks)) for j in range(n_blocks)]
    fixed = [(0,) * n_blocks, (1,) * n_blocks, *(singles if 4 * n_blocks <= count else [])]
    masks = list(dict.fromkeys(fixed))[:count]
    seen = set(masks)
    while len(masks) < count:
        mask = tuple(int(b) for b in rng.integers(0, 2, n_blocks))
        if mask not in seen:
            seen.add(mask)
            masks.append(mask)
    return masks


def candidate_links(graph: LayerGraph, top_k: int) -> tuple[str, ...]:
    """The ``top_k`` largest tensors whose link precision can be chosen, in graph order: where
    fewer bytes per element save most time on a slow link."""
    pool = link_candidates(graph)
    chosen = set(sorted(pool, key=lambda t: -graph.tensor_by_name[t].bytes)[:top_k])
    return tuple(t for t in pool if t in chosen)


def link_masks(
    graph: LayerGraph,
    blocks: Sequence[str],
    tensors: Sequence[str],
    count: int,
    seed: int = 0,
) -> tuple[tuple[str, ...], list[tuple[int, ...]]]:
    """Variables (``blocks``, then fp16 and int8 of each of ``tensors``) and ``count``
    distinct masks over them, like :func:`random_masks`.

    A tensor is at most at one link precision, and at none when its producer is quantized in
    the mask (its output then already crosses as int8, and the planner allows nothing more).
    The design holds the empty mask, all blocks, all links at int8, then each variable alone
    when that takes at most a quarter of ``count``, then random ones: each block quantized with
    probability ½, each tensor fp32, fp16 or int8 with probability ⅓.
    """
    variables = (*blocks, *(link_variable(t, p) for t in tensors for p in ("fp16", "int8")))
    producer = {t: graph.tensor_by_name[t].producer for t in tensors}

    def mask(chosen: set[str]) -> tuple[int, ...]:
        for t in tensors:
            if producer[t] in chosen:
                chosen -= {link_variable(t, "fp16"), link_variable(t, "int8")}
        return tuple(int(v in chosen) for v in variables)

    singles = [mask({v}) for v in variables]
    fixed = [
        mask(set()),
        mask(set(blocks)),
        mask({link_variable(t, "int8") for t in tensors}),
        *(singles if 4 * len(variables) <= count else []),
    ]
    total = min(count, 3 ** len(tensors) * 2 ** len(blocks))
    masks = list(dict.fromkeys(fixed))[:total]
    seen = set(masks)
    rng = np.random.default_rng(seed)
    while len(masks) < total:
        chosen = {b for b in blocks if rng.random() < 0.5}
        for t in tensors:
            level = rng.integers(0, 3)
            if level:
                chosen.add(link_variable(t, ("fp16", "int8")[level - 1]))
        drawn = mask(chosen)
        if drawn not in seen:
            seen.add(drawn)
            masks.append(drawn)
    return variables, masks


def sample_noise(
    quantizer: Quantizer,
    blocks: Sequence[str],
    masks: Sequence[tuple[int, ...]],
    feeds: Sequence[dict[str, np.ndarray]],
    on_sample: Callable[[NoiseSample], None] | None = None,
    *,
    workers: int | None = None,
    task: TaskSpec | None = None,
    reference: Sequence[np.ndarray] | None = None,
) -> list[NoiseSample]:
    """Quantize each mask's blocks (and link-quantize its link variables' tensors), run it on
    ``feeds`` and compare with the float model.

    ``reference`` is the float model's first output on each feed (:func:`float_outputs`),
    computed here when not given; ``task`` chooses the task metric (default: guessed from
    the output's shape).

    Masks are measured ``workers`` at a time (default: one per core), each in its own
    single-threaded session: session creation is a third of a mask's cost and only
    parallelises this way. Sessions use ``ORT_ENABLE_ALL`` like the runtime, because the
    optimisation level changes which int8 kernels run and so the noise itself.
    Results come back in mask order; ``on_sample`` is called in that order too.
    """
    workers = max(1, workers or os.cpu_count() or 1)
    threads = max(1, (os.cpu_count() or 1) // workers)
    if reference is None:
        reference = float_outputs(quantizer, feeds)
    metric = task_metric(task or TaskSpec(), reference)

    def measure(mask: tuple[int, ...]) -> NoiseSample:
        start = time.perf_counter()
        chosen = tuple(b for b, bit in zip(blocks, mask, strict=True) if bit)
        outputs = _run(_configured(quantizer, chosen), feeds, threads)
        pairs = zip(reference, outputs, strict=True)
        noise = float(np.mean([np.abs(r - o).mean() for r, o in pairs]))
        score = None if metric is None else metric(outputs)
        return NoiseSample(chosen, noise, score, time.perf_counter() - start)

    samples = []
    with ThreadPoolExecutor(workers) as pool:
        for sample in pool.map(measure, masks):
            samples.append(sample)
            if on_sample is not None:
                on_sample(sample)
    return samples


def _configured(quantizer: Quantizer, chosen: Sequence[str]) -> onnx.ModelProto:
    """The whole model with the blocks of ``chosen`` quantized and its link variables'
    tensors sent at their link precision."""
    links = {}
    for name in chosen:
        if is_link_variable(name):
            tensor, _, precision = name.removeprefix("link:").rpartition(":")
            links[tensor] = precision
    proto = quantizer.quantize([b for b in chosen if not is_link_variable(b)])
    if not links:
        return proto
    return link_quantized_proto(proto, quantizer.graph, links, quantizer.calibration)


def float_outputs(quantizer: Quantizer, feeds: Sequence[dict[str, np.ndarray]]) -> list[np.ndarray]:
    """The unquantized model's first output on each feed: what every mask is compared with."""
    return _run(quantizer.quantize(()), feeds, os.cpu_count() or 1)


def _run(
    model: onnx.ModelProto, feeds: Sequence[dict[str, np.ndarray]], threads: int
) -> list[np.ndarray]:
    """First output of ``model`` on each feed (one session for all of them)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    session = ort.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )
    return [np.asarray(session.run(None, f)[0], dtype=np.float32) for f in feeds]


# -- fitting ------------------------------------------------------------------------------------
def fit_noise(
    samples: Sequence[NoiseSample],
    blocks: Sequence[str],
    model_sha256: str,
    *,
    test_fraction: float = 0.25,
    seed: int = 0,
    settings: Mapping[str, Any] | None = None,
) -> NoisePolynomial:
    """Polynomial of degree 1–3 in the quantization bits for noise or noise², fitted by lasso.

    ``blocks`` are the mask's variables: block names and link variables (recorded apart, in
    the model's ``quantizable`` and ``links``).

    A share ``test_fraction`` of the samples is held out and only scored. On the rest, each
    degree and target (noise or noise², see :class:`NoisePolynomial`) gets a lasso penalty
    chosen by inner cross-validation, and the pair with the least 5-fold cross-validated error
    *in noise units* wins; choosing on the held-out share would make its R² optimistic.

    Lasso, not ridge: blocks interact with few others, so most of the 78 or 298 monomials of
    degree 2 or 3 are zero, and a sparse fit both generalises better from a few hundred samples
    (on YOLO11n at 300 samples: held-out R² 0.995 against ridge's 0.982) and leaves the planner
    fewer product variables. Features are left unscaled, so a rare high-order monomial pays
    more for its coefficient than a single block does. Only non-empty masks are fitted: the
    empty mask has no noise by definition, which :class:`NoisePolynomial` enforces whatever the
    intercept. ``settings`` (how the samples were measured, e.g. :attr:`Quantizer.settings`)
    is recorded in the fit.
    """
    from sklearn.metrics import r2_score
    from sklearn.model_selection import KFold, cross_val_score

    start = time.perf_counter()
    used = [s for s in samples if s.blocks]
    x = np.array([[b in s.blocks for b in blocks] for s in used], dtype=float)
    y = np.array([s.noise for s in used])
    order = np.random.default_rng(seed).permutation(len(y))
    n_test = max(1, round(len(y) * test_fraction))
    test, train = order[:n_test], order[n_test:]
    if len(train) < len(blocks) + CV_FOLDS:
        raise InputError(
            f"{len(used)} non-empty samples are too few to fit a noise model of "
            f"{len(blocks)} blocks",
            field="--samples",
            fix=f"use at least {math.ceil((len(blocks) + CV_FOLDS) / (1 - test_fraction)) + 2} "
            "samples",
        )
    folds = KFold(CV_FOLDS, shuffle=True, random_state=seed)
    errors: dict[tuple[int, int], float] = {}
    for degree, power in itertools.product((1, 2, 3), POWERS):
        scores = cross_val_score(
            _regressor(degree, power, seed),
            x[train],
            y[train],
            cv=folds,
            scoring="neg_mean_squared_error",
        )
        errors[degree, power] = -float(np.mean(scores))
    degree, power = min(errors, key=errors.__getitem__)
    chosen = _regressor(degree, power, seed).fit(x[train], y[train])
    features, lasso = chosen.regressor_[0], chosen.regressor_[1]
    terms = tuple(
        NoiseTerm(tuple(blocks[i] for i in np.flatnonzero(powers)), float(coef))
        for powers, coef in zip(features.powers_, lasso.coef_, strict=True)
        if coef != 0.0
    )
    return NoisePolynomial(
        model_sha256=model_sha256,
        quantizable=tuple(b for b in blocks if not is_link_variable(b)),
        links=tuple(b for b in blocks if is_link_variable(b)),
        intercept=float(lasso.intercept_),
        terms=terms,
        degree=degree,
        power=power,
        fit={
            "samples": len(samples),
            "train": len(train),
            "test": len(test),
            "degree": degree,
            "power": power,
            "terms": len(terms),
            "r2_train": float(r2_score(y[train], chosen.predict(x[train]))),
            "r2_test": float(r2_score(y[test], chosen.predict(x[test]))),
            "cv_mse": [{"degree": d, "power": p, "mse": e} for (d, p), e in sorted(errors.items())],
            "lasso_alpha": float(lasso.alpha_),
            "metric": "mean_abs_output_error",
            "regressor": "LassoCV on interaction-only PolynomialFeatures of noise**power, "
            "degree and power by 5-fold CV",
            "seconds": time.perf_counter() - start,
            "settings": dict(settings or {}),
        },
    )


def _regressor(degree: int, power: int, seed: int) -> Any:
    """Interaction monomials of ``degree`` → lasso on ``noise ** power``, predicting noise."""
    from sklearn.compose import TransformedTargetRegressor
    from sklearn.linear_model import LassoCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import PolynomialFeatures

    return TransformedTargetRegressor(
        regressor=make_pipeline(
            PolynomialFeatures(degree, interaction_only=True, include_bias=False),
            LassoCV(alphas=LASSO_ALPHAS, cv=CV_FOLDS, max_iter=50_000, random_state=seed),
        ),
        func=lambda v: v**power,
        inverse_func=lambda v: np.maximum(v, 0.0) ** (1.0 / power) if power != 1 else v,
        check_inverse=False,
    )


def save_samples(
    path: str | Path,
    samples: Sequence[NoiseSample],
    blocks: Sequence[str],
    settings: Mapping[str, Any] | None = None,
) -> None:
    """Write the measured samples (kind ``noise-samples``) so a fit can be redone or audited;
    ``settings`` says how they were measured."""
    body = {
        "quantizable": list(blocks),
        "settings": dict(settings or {}),
        "samples": [
            {"blocks": list(s.blocks), "noise": s.noise, "task": s.task, "seconds": s.seconds}
            for s in samples
        ],
    }
    write_json(path, SAMPLES_KIND, SCHEMA_VERSION, body)


def plot_fit(path: str | Path, model: NoisePolynomial, samples: Sequence[NoiseSample]) -> None:
    """Predicted against measured noise, one point per sample, with the identity line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    measured = [s.noise for s in samples]
    predicted = [model.predict(s.blocks) for s in samples]
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.scatter(measured, predicted, s=8)
    top = max(measured + predicted) or 1.0
    ax.plot([0, top], [0, top], color="grey", linewidth=0.8)
    ax.set_xlabel("measured noise (mean |fp32 − int8|)")
    ax.set_ylabel("predicted noise")
    ax.set_title(f"degree {model.degree}, held-out R² {model.fit.get('r2_test', float('nan')):.4f}")
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
