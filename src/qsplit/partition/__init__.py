"""Splitting a LayerGraph by a block→node assignment into components, and extracting them."""

from qsplit.partition._component import Component
from qsplit.partition._components import components

__all__ = ["Component", "components"]
