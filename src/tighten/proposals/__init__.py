"""Proposals: suggested changes to an agent's artifacts, numbered in cycles."""

from tighten.proposals.add import (
    CycleFile,
    add_cycle,
    last_deployed,
    load_cycle,
    parse_cycle_json,
)
from tighten.proposals.model import (
    DEPLOYABILITY,
    GOALS,
    Cycle,
    Deployability,
    Evidence,
    Goal,
    Proposal,
    describe_impact,
    fingerprint,
)

__all__ = [
    "DEPLOYABILITY",
    "GOALS",
    "Cycle",
    "CycleFile",
    "Deployability",
    "Evidence",
    "Goal",
    "Proposal",
    "add_cycle",
    "describe_impact",
    "fingerprint",
    "last_deployed",
    "load_cycle",
    "parse_cycle_json",
]
