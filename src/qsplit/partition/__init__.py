"""Splitting a LayerGraph by a block→node assignment into components, and extracting them."""

from qsplit.partition._assignment import check_nodes, read_assignment
from qsplit.partition._component import Component
from qsplit.partition._components import components
from qsplit.partition._extract import ComponentExtractor

__all__ = ["Component", "ComponentExtractor", "check_nodes", "components", "read_assignment"]
