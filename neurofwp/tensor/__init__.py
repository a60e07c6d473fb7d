"""Fast-weight tensor core: Hebbian and delta rules, feature maps and the layer.

Layout ``[B, T, H, D]``, fast weights ``[B, H, Dk, Dv]``, read after write; see
:mod:`neurofwp.tensor.rules` for the conventions.
"""

from neurofwp.tensor import feature_maps
from neurofwp.tensor.layer import FastWeightLayer
from neurofwp.tensor.rules import delta_rule, delta_step, hebbian_rule, hebbian_step

__all__ = ["FastWeightLayer", "delta_rule", "delta_step", "feature_maps", "hebbian_rule", "hebbian_step"]
