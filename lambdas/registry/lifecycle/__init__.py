"""Lifecycle policies: their text read and checked (`policy`), the one evaluation of which images a
policy expires (`evaluation`, pure), and its two uses over the stores, a preview and a run (`runs`)."""

from .evaluation import Candidate, Expiry, evaluate
from .policy import Policy, PolicyInvalid, Rule, parse_policy

__all__ = ["Candidate", "Expiry", "Policy", "PolicyInvalid", "Rule", "evaluate", "parse_policy"]
