"""Analyses that judge update rules: capacity and interference of fast weights."""

from neurofwp.analysis.capacity import retrieval_curve

__all__ = ["retrieval_curve"]
