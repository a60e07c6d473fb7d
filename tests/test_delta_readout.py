import numpy as np

from neurofwp.networks import delta_readout


def test_spiking_delta_readout_learns_what_the_tensor_delta_rule_learns():
    """Poisson keys, teacher spikes as values, the delta rule with the summed prediction: the learned
    weights approach the averaged fixed point (least squares shrunk by the spiking noise) and follow
    the tensor delta rule run on the same rates."""
    result = delta_readout.simulate(150.0, seed=0)
    spiking = result.weight.sel(source="spiking").values.ravel()
    expected = result.weight.sel(source="expected").values.ravel()
    tensor = result.weight.sel(source="tensor-delta").values.ravel()
    assert np.corrcoef(spiking, expected)[0, 1] > 0.85
    assert np.corrcoef(spiking, tensor)[0, 1] > 0.8
    assert np.linalg.norm(spiking - expected) / np.linalg.norm(expected) < 0.45
    targets = result.value_rate.values

    def prediction_error(source):
        return np.linalg.norm(result.predicted_rate.sel(source=source).values - targets) / np.linalg.norm(targets)

    assert prediction_error("tensor-delta") < 1e-6  # the tensor rule solves W^T r_p = rho_p exactly
    assert prediction_error("spiking") < prediction_error("expected") + 0.15
    assert result.weight.attrs["units"] == "1" and result.key_rate.attrs["units"] == "Hz"
    # the LIF readouts fire at the teacher's rates (averaged over the equally often shown patterns)
    assert np.allclose(result.readout_rate.values, targets.mean(axis=0), rtol=0.05)
