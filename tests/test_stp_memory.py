"""analyses/stp_memory.py: the information estimator, the decoder and the analysis of short-term plastic efficacies."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from neurofwp.plasticity import simulate_responses
from neurofwp.protocols import make_train

ROOT = Path(__file__).resolve().parents[1]
BINS = 8
BOUND = math.log2(BINS)


@pytest.fixture(scope="module")
def stp():
    spec = importlib.util.spec_from_file_location("stp_memory", ROOT / "analyses" / "stp_memory.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def short_runs(stp):
    """The analysis of 30 s trains (about 500 spikes after the warm-up) for three seeds."""
    return {seed: stp.run(seconds=30.0, rate_hz=20.0, seed=seed) for seed in (1, 2, 3)}


def test_independent_samples_carry_no_information(stp):
    rng = np.random.default_rng(0)
    n = 4000
    x, y = rng.normal(size=n), rng.exponential(size=n)
    result = stp.information(x, y, bins=BINS, seed=1)
    # the plug-in estimate is biased up by about (B - 1)^2 / (2 N ln 2) = 0.009 bit (Miller-Madow) ...
    assert result.plugin_bits == pytest.approx((BINS - 1) ** 2 / (2 * n * math.log(2)), abs=0.006)
    # ... which the shuffle correction removes: within 5 SDs of the shuffles' spread (about 0.002 bit)
    assert abs(result.bits) < 5 * result.null_sd_bits < 0.02
    r2, _k = stp.decoding_r2(x, y)
    assert -0.05 < r2 < 0.02


def test_an_invertible_relation_reaches_the_bound_of_the_bins(stp):
    rng = np.random.default_rng(1)
    n = 4000  # a multiple of BINS: equally populated bins on both sides, a diagonal joint table
    x = rng.normal(size=n)
    y = np.exp(x**3)  # strictly increasing
    result = stp.information(x, y, bins=BINS, seed=2)
    assert result.plugin_bits == pytest.approx(BOUND, abs=1e-12)
    # the shuffle correction lowers it by the independent-case bias, (B - 1)^2 / (2 N ln 2) = 0.009 bit
    assert BOUND - 0.03 < result.bits < BOUND
    assert stp.information(-x, y, bins=BINS, seed=2).plugin_bits == pytest.approx(BOUND, abs=1e-12)  # decreasing
    r2, _k = stp.decoding_r2(x, y)
    assert r2 > 0.98


def test_the_decoder_needs_no_monotonicity(stp):
    rng = np.random.default_rng(2)
    x = rng.uniform(-1, 1, size=4000)
    y = np.exp(x**2)  # two-to-one: knowing x fixes y, but y is not monotone in x
    r2, _k = stp.decoding_r2(x, y)
    assert r2 > 0.98
    # a linear decoder would explain nothing (x and x^2 are uncorrelated on a symmetric interval)
    assert abs(np.corrcoef(x, np.log(y))[0, 1]) < 0.1
    # and the information is below the bound (two x-bins map onto each y-bin)
    assert stp.information(x, y, bins=BINS, seed=3).bits < BOUND - 0.5


def test_full_use_depression_is_a_closed_form_of_the_last_interval(stp):
    """U = 1, tau_facil = 0: each spike releases everything, so E = A (1 - exp(-last interval / tau_rec))."""
    times = stp.poisson_train(100.0, 20.0, np.random.default_rng(5))
    A, tau_rec = 2.0, 800.0
    values = {"U": 1.0, "tau_rec_ms": tau_rec, "tau_facil_ms": 0.0, "A": A}
    efficacy = simulate_responses("tsodyks-markram", [make_train("poisson", times)], values)[0, :, 0]
    last, before = stp.intervals_before(times, 1), stp.intervals_before(times, 2)
    assert efficacy[0] == pytest.approx(A)  # from rest
    np.testing.assert_allclose(efficacy[1:], A * (1 - np.exp(-last[1:] / tau_rec)), rtol=1e-12)
    e, d1, d2 = efficacy[2:], last[2:], before[2:]
    # a deterministic, strictly monotone relation: the same estimate as the interval against itself
    itself = stp.information(d1, d1, bins=BINS, seed=4)
    assert stp.information(e, d1, bins=BINS, seed=4).bits == pytest.approx(itself.bits, abs=1e-12)
    assert itself.bits > BOUND - 0.05
    assert stp.decoding_r2(e, d1)[0] > 0.99
    # Poisson intervals are independent and E depends on the last one only: nothing about the one before
    assert abs(stp.information(e, d2, bins=BINS, seed=4).bits) < 0.03
    assert stp.decoding_r2(e, d2)[0] < 0.03


def test_trains(stp):
    rng = np.random.default_rng(6)
    poisson = stp.poisson_train(50.0, 20.0, rng)
    regular = stp.regular_train(50.0, 20.0, rng)
    for times in (poisson, regular):
        assert np.all(np.diff(times) > 0) and times[0] >= 0 and times[-1] <= 50_000.0
        np.testing.assert_allclose(times, np.round(times, 1), atol=1e-9)  # on the 0.1 ms grid
    isi = np.diff(poisson)
    assert isi.min() >= stp.REFRACTORY_MS - 1e-9
    assert len(poisson) == pytest.approx(1000, rel=0.1)  # 20 Hz x 50 s
    assert np.std(isi) / np.mean(isi) == pytest.approx(1 - stp.REFRACTORY_MS / 50.0, abs=0.1)  # CV of d + Exp
    jitter = regular - 50.0 * (np.arange(len(regular)) + 0.5)
    assert len(regular) == 1000 and np.std(jitter) == pytest.approx(stp.JITTER_SD_MS, rel=0.1)


def test_static_synapse_carries_nothing(short_runs):
    for dataset in short_runs.values():
        static = dataset.sel(synapse="static")
        assert np.all(static.efficacy.values[np.isfinite(static.efficacy.values)] == 1.0)
        assert np.all(static.mi.values == 0.0)  # one bin: exactly 0, after the shuffle correction too
        assert np.all(np.abs(static.r2.values) < 0.05)


def test_depressing_synapses_hold_more_about_the_last_poisson_interval_than_facilitating(short_runs):
    """Both carry clearly positive information; the depressing one more (0.80-0.86 vs 0.61-0.68 bit, seeds 1-5,
    30 and 200 s trains), as its efficacy is set by the recovery from the last spike (tau_rec 800 ms) while the
    facilitating one's also reflects the slowly decaying u (tau_F 530 ms) left by earlier spikes."""
    for dataset in short_runs.values():
        poisson = dataset.sel(train="poisson", lag=1)
        depressing, facilitating = (float(poisson.mi.sel(synapse=s)) for s in ("depressing", "facilitating"))
        null = float(poisson.mi_null_sd.max())
        assert facilitating > 0.3 and facilitating > 20 * null
        assert depressing - facilitating > 0.08
        assert float(poisson.r2.sel(synapse="depressing")) > 0.3
        assert float(poisson.r2.sel(synapse="facilitating")) > 0.2


def test_the_script_writes_its_results(stp, tmp_path, capsys):
    out = tmp_path / "stp"
    assert stp.main(["--out", str(out), "--seconds", "20", "--seed", "3"]) == 0
    for name in ("stp_memory.nc", "stp_memory.png", "stp_memory.svg"):
        assert (out / name).stat().st_size > 0
    with xr.open_dataset(out / "stp_memory.nc", engine="h5netcdf") as dataset:
        assert dataset.mi.dims == ("synapse", "train", "lag")
        assert list(dataset.synapse.values) == [*stp.SYNAPSES, "static"]
        assert list(dataset.train.values) == ["poisson", "regular"]
        assert dataset.mi.attrs["units"] == "bit" and dataset.r2.attrs["units"] == "1"
        assert float(dataset.U.sel(synapse="maass_ei")) == 0.05 and float(dataset.tau_facil_ms[0]) == 0.0
        assert dataset.tau_rec_ms.attrs["units"] == "ms"
        assert np.all(dataset.mi.values <= BOUND)
    printed = capsys.readouterr().out
    assert "depressing" in printed and "static" in printed and "stp_memory.nc" in printed
