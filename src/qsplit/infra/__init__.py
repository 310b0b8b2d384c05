"""Infrastructure: the machines (nodes), the directed links between them, the routes transfers
take where two nodes have no direct link, and their units."""

from qsplit.infra._load import (
    BandwidthField,
    DurationField,
    InfraProblem,
    LinkDocument,
    MemoryField,
    PositiveDurationField,
    infra_from_dict,
    load_infra,
    validate_infra,
)
from qsplit.infra._types import Infra, Link, Node, PinnedRoute, Role, Route
from qsplit.infra._units import parse_bandwidth, parse_duration, parse_memory

__all__ = [
    "BandwidthField",
    "DurationField",
    "Infra",
    "InfraProblem",
    "Link",
    "LinkDocument",
    "MemoryField",
    "Node",
    "PinnedRoute",
    "PositiveDurationField",
    "Role",
    "Route",
    "infra_from_dict",
    "load_infra",
    "parse_bandwidth",
    "parse_duration",
    "parse_memory",
    "validate_infra",
]
