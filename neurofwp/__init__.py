"""neurofwp: fast weight programmers and synaptic plasticity."""

__version__ = "0.1.0"
