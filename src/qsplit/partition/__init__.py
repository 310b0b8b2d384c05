"""Splitting a LayerGraph by a block→node assignment into components, and extracting them."""

from qsplit.partition._component import Component
from qsplit.partition._components import components
from qsplit.partition._extract import ComponentExtractor

__all__ = ["Component", "ComponentExtractor", "components"]
