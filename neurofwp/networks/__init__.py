"""Spiking networks with plastic synapses built from the rule definitions."""
