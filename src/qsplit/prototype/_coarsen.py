"""Carrying profiles and a noise polynomial from a fine LayerGraph to a coarsened one.

Coarsening groups fine blocks into coarse blocks (``qsplit.model.coarsen``); everything measured
per fine block must follow. A coarse block runs all its members, so its time is the sum of
theirs, and quantizing it quantizes every quantizable member: its int8 time sums the members'
int8 times where they have one and fp32 otherwise, and each noise monomial maps to the set of
coarse blocks holding its members (monomials that collapse onto the same set add up, since
q·q = q). Profiles that are additive at the fine level therefore stay additive.
"""

from __future__ import annotations

from dataclasses import replace

from qsplit.errors import InputError
from qsplit.model import LayerGraph
from qsplit.profile import BlockTiming, ComputeProfile
from qsplit.quant import NoisePolynomial, NoiseTerm


def block_mapping(fine: LayerGraph, coarse: LayerGraph) -> dict[str, str]:
    """Fine block name → name of the coarse block that contains all of its ONNX nodes."""
    owner = {node: block.name for block in coarse.blocks for node in block.onnx_nodes}
    mapping = {}
    for block in fine.blocks:
        owners = {owner.get(node) for node in block.onnx_nodes}
        found = owners.pop() if len(owners) == 1 else None
        if found is None:
            raise InputError(
                f"fine block {block.name!r} is not inside exactly one coarse block",
                field="blocks",
                fix="coarsen the same LayerGraph the profiles were measured on",
            )
        mapping[block.name] = found
    return mapping


def coarsen_profile(
    profile: ComputeProfile, mapping: dict[str, str], coarse: LayerGraph
) -> ComputeProfile:
    """Sum the fine blocks' timings into their coarse blocks."""
    fp32_s = dict.fromkeys(coarse.block_names, 0.0)
    int8_s = dict.fromkeys(coarse.block_names, 0.0)
    has_int8 = dict.fromkeys(coarse.block_names, False)
    for name, timing in profile.blocks.items():
        target = mapping[name]
        fp32_s[target] += timing.fp32_s
        int8_s[target] += timing.fp32_s if timing.int8_s is None else timing.int8_s
        has_int8[target] |= timing.int8_s is not None
    blocks = {
        name: BlockTiming(fp32_s=fp32_s[name], int8_s=int8_s[name] if has_int8[name] else None)
        for name in coarse.block_names
    }
    return replace(profile, granularity=coarse.granularity, blocks=blocks)


def coarsen_noise(
    noise: NoisePolynomial, mapping: dict[str, str], coarse: LayerGraph
) -> NoisePolynomial:
    """Re-express the noise polynomial over coarse blocks (quantizing one quantizes its members)."""
    merged: dict[tuple[str, ...], float] = {}
    for term in noise.terms:
        blocks = tuple(sorted({mapping[b] for b in term.blocks}, key=coarse.position))
        merged[blocks] = merged.get(blocks, 0.0) + term.coefficient
    quantizable = sorted({mapping[b] for b in noise.quantizable}, key=coarse.position)
    return replace(
        noise,
        quantizable=tuple(quantizable),
        terms=tuple(NoiseTerm(blocks=b, coefficient=c) for b, c in merged.items() if c != 0.0),
        degree=max((len(b) for b in merged), default=noise.degree),
        fit={**noise.fit, "coarsened_from": "node"},
    )
