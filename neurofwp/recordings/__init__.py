r"""Recorded spike trains: loaders, encoding models with fast weight layers, and plastic-coupling GLMs.

* :mod:`neurofwp.recordings.loaders`: :class:`Recording` (a postsynaptic neuron's spike times,
  and its inputs: a sampled stimulus and/or named presynaptic spike trains) from NWB, NPZ or arrays;
* :mod:`neurofwp.recordings.encoding`: LN and fast-weight encoding models of one neuron
  (``neurofwp fit-recording``, :func:`fit_recording`);
* :mod:`neurofwp.recordings.plastic`: point-process GLMs whose coupling weights evolve under a
  plasticity rule, fitted to infer the rule from pre- and postsynaptic spikes
  (``neurofwp infer-rule``, :func:`infer_rules`).
"""

from __future__ import annotations

from tqdm.auto import tqdm as tqdm  # the progress bar of the fits, replaceable here

from neurofwp.recordings.encoding import LIKELIHOODS as LIKELIHOODS
from neurofwp.recordings.encoding import MAX_DESIGN_SIZE as MAX_DESIGN_SIZE
from neurofwp.recordings.encoding import MODELS as MODELS
from neurofwp.recordings.encoding import RecordingModel as RecordingModel
from neurofwp.recordings.encoding import design as design
from neurofwp.recordings.encoding import figure as figure
from neurofwp.recordings.encoding import fit_recording as fit_recording
from neurofwp.recordings.encoding import log_likelihood as log_likelihood
from neurofwp.recordings.loaders import Recording as Recording
from neurofwp.recordings.loaders import RecordingError as RecordingError
from neurofwp.recordings.loaders import grasshopper as grasshopper
from neurofwp.recordings.loaders import load as load
from neurofwp.recordings.loaders import load_npz as load_npz
from neurofwp.recordings.loaders import load_nwb as load_nwb
from neurofwp.recordings.plastic import PlasticGLM as PlasticGLM
from neurofwp.recordings.plastic import SpikeTrains as SpikeTrains
from neurofwp.recordings.plastic import check_trains as check_trains
from neurofwp.recordings.plastic import infer_rules as infer_rules
