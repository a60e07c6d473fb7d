"""Model selection: information criteria, bounds, Laplace intervals, leave-one-out CV, generalisation."""

import numpy as np
import pytest
import scipy.optimize
import torch
import xarray as xr

from neurofwp import data
from neurofwp import fit as fit_module
from neurofwp.analysis import selection
from neurofwp.errors import NeurofwpError
from neurofwp.fit import fit, information_criteria, prepare
from neurofwp.io import save_netcdf
from neurofwp.plasticity import predict
from neurofwp.protocols import make_protocol

SJOSTROM = data.protocols("sjostrom2001")
TRUE = {"A_plus": 0.008, "A_minus": 0.005}
QUIET = dict(show_progress=False)


def synthetic(sem=4.0, seed=1, timings=(-60, -35, -20, -10, -5, 5, 10, 20, 35, 60)):
    """Pair-STDP data from known parameters plus Gaussian noise of a known SEM (pairings at 1 Hz, 60 times)."""
    clean = [make_protocol(f"{dt:+d}", [0.0] if dt > 0 else [-dt], [dt] if dt > 0 else [0.0], 1, 60) for dt in timings]
    model = predict("stdp", clean, TRUE).dw_percent_model.values
    noisy = model + np.random.default_rng(seed).normal(0, sem, len(model))
    return [
        make_protocol(p.name, list(p.pre_times_ms), list(p.post_times_ms), 1, 60, float(d), sem)
        for p, d in zip(clean, noisy, strict=True)
    ]


def test_information_criteria_by_hand():
    sem = np.array([2.0, 3.0, 4.0, 5.0])
    E, P, n = 1.7, 4, 2
    log_l = -0.5 * (P * E + np.sum(np.log(2 * np.pi * sem**2)))
    got = information_criteria(E, P, n, sem)
    assert got["k"] == 2 and got["log_likelihood"] == pytest.approx(log_l, rel=1e-12)
    assert got["AIC"] == pytest.approx(4 - 2 * log_l) and got["BIC"] == pytest.approx(2 * np.log(4) - 2 * log_l)
    assert got["AICc"] == pytest.approx(4 - 2 * log_l + 2 * 2 * 3 / (4 - 2 - 1))
    # without SEM, sigma^2 = E (percent^2) is estimated: one more parameter
    plain = information_criteria(25.0, 10, 2, None)
    log_l = -5 * (np.log(2 * np.pi * 25.0) + 1)
    assert plain["k"] == 3 and plain["log_likelihood"] == pytest.approx(log_l, rel=1e-12)
    assert plain["AICc"] == pytest.approx(6 - 2 * log_l + 2 * 3 * 4 / (10 - 3 - 1))
    assert np.isnan(information_criteria(1.0, 3, 2, [1, 1, 1])["AICc"])  # P <= k + 1: undefined


def test_fit_reports_criteria_computed_from_its_residuals():
    result = fit("stdp", SJOSTROM, starts=2, **QUIET)
    residual = ((result.dw_percent - result.dw_percent_model) / result.sem_percent).values
    log_l = -0.5 * np.sum(residual**2 + np.log(2 * np.pi * result.sem_percent.values**2))
    assert result.attrs["k"] == 2 and result.attrs["n_protocols"] == 10
    assert result.attrs["log_likelihood"] == pytest.approx(log_l, rel=1e-10)
    assert result.attrs["BIC"] == pytest.approx(2 * np.log(10) - 2 * log_l, rel=1e-10)
    assert list(result.parameter.values) == ["A_plus", "A_minus"]
    assert list(result.parameter_units.values) == ["1", "1"]
    assert (result.at_bound == 0).all() and (result.laplace_status == "ok").all()
    assert (result.ci95_low < result.fitted_value).all() and (result.fitted_value < result.ci95_high).all()


def test_parameter_at_a_bound_is_flagged_and_has_no_interval(tmp_path):
    result = fit("stdp", SJOSTROM, bounds={"A_plus": (0.004, 0.01)}, starts=2, **QUIET)
    assert result.at_bound.sel(parameter="A_plus") == -1 and result.at_bound.sel(parameter="A_minus") == 0
    assert str(result.laplace_status.sel(parameter="A_plus").values) == "at bound"
    assert np.isnan(result.laplace_sd.sel(parameter="A_plus")) and np.isfinite(
        result.laplace_sd.sel(parameter="A_minus")
    )
    saved = xr.load_dataset(save_netcdf(result, tmp_path / "fit.nc"))  # the new variables survive netCDF
    assert list(saved.laplace_status.values) == ["at bound", "ok"]


def test_flat_direction_is_flagged_singular_not_nan_silently():
    """Post-before-pre pairings at 1 Hz never read the pre trace of a recent pre spike: A_plus has no effect."""
    protocols = [p for p in synthetic() if p.name.startswith("-")]
    result = fit("stdp", protocols, starts=1, **QUIET)
    status = dict(zip(result.parameter.values, result.laplace_status.values, strict=True))
    assert status == {"A_plus": "singular", "A_minus": "ok"}
    assert np.isnan(result.laplace_sd.sel(parameter="A_plus"))
    assert np.isfinite(result.laplace_sd.sel(parameter="A_minus"))


def test_laplace_interval_matches_the_profile_likelihood():
    """Pair STDP on synthetic data with known SEMs: profile A_plus (refit A_minus on a grid of A_plus) and
    find where -log L rises by chi2_1(0.95)/2 = 1.92; the Laplace interval matches within 1 % of its width.
    (Pair STDP is linear in A±, so -log L is quadratic and the two agree up to the optimiser's tolerance.)"""
    protocols = synthetic()
    best = fit("stdp", protocols, starts=2, **QUIET)
    P = len(protocols)
    nll_min = 0.5 * P * best.attrs["E"]

    def profile(a_plus):
        refit = fit("stdp", protocols, free=["A_minus"], fixed={"A_plus": a_plus}, starts=1, uncertainty=False, **QUIET)
        return 0.5 * P * refit.attrs["E"] - nll_min - 1.920729410347062  # chi2.ppf(0.95, 1) / 2

    centre = float(best.fitted_value.sel(parameter="A_plus"))
    sd = float(best.laplace_sd.sel(parameter="A_plus"))
    low = scipy.optimize.brentq(profile, centre - 4 * sd, centre, xtol=1e-9)
    high = scipy.optimize.brentq(profile, centre, centre + 4 * sd, xtol=1e-9)
    width = high - low
    assert float(best.ci95_low.sel(parameter="A_plus")) == pytest.approx(low, abs=0.01 * width)
    assert float(best.ci95_high.sel(parameter="A_plus")) == pytest.approx(high, abs=0.01 * width)
    # the known parameter lies inside its interval
    assert low < TRUE["A_plus"] < high


def test_lockstep_runs_equal_separate_runs_bit_for_bit():
    """The threads only wait for their values: one run at a time gives exactly scipy's sequential result."""
    problem = prepare("stdp", SJOSTROM)
    points = [np.array([0.2, 0.7]), np.array([0.9, 0.1]), np.array([0.5, 0.5])]
    masks = np.ones((10, 3))
    masks[2, 1] = 0.0
    together = selection.minimise_batched(problem, points, masks, max_batch=1)
    for run, point in enumerate(points):

        def one(x, run=run):
            values, gradients, _ = problem.batch(x[None, :], masks[:, run : run + 1])
            return float(values[0]), gradients[0]

        alone = scipy.optimize.minimize(one, point, jac=True, method="L-BFGS-B", bounds=[(0, 1)] * 2)
        assert np.array_equal(together[run]["x"], alone.x) and together[run]["E"] == alone.fun
        assert together[run]["evaluations"] == alone.nfev


def test_an_error_in_a_batch_reaches_the_caller(monkeypatch):
    problem = prepare("stdp", SJOSTROM)

    def broken(units, masks):
        raise NeurofwpError("simulation failed")

    monkeypatch.setattr(problem, "batch", broken)
    with pytest.raises(NeurofwpError, match="simulation failed"):
        selection.minimise_batched(problem, [np.array([0.5, 0.5])] * 3, np.ones((10, 3)))


def test_leave_one_out_equals_a_loop_of_fits():
    """Same starts, same L-BFGS-B runs: each fold's E within 1e-6 relative and its parameters within 1e-6 of
    the bound width of fit.fit on the other protocols; the held-out prediction is that fit's prediction."""
    cv = selection.loo_cv("stdp", SJOSTROM, starts=2, seed=0)
    assert cv.sizes == {"protocol": 10, "parameter": 2}
    assert cv.attrs["E_cv"] == pytest.approx(float(cv.cv_error.mean()), rel=1e-12)
    for j, protocol in enumerate(SJOSTROM):
        others = SJOSTROM[:j] + SJOSTROM[j + 1 :]
        alone = fit("stdp", others, starts=2, seed=0, uncertainty=False, **QUIET)
        assert float(cv.E_train[j]) == pytest.approx(alone.attrs["E"], rel=1e-6)
        np.testing.assert_allclose(cv.fold_value[j].values, alone.fitted_value.values, atol=1e-6)
        held_out = predict("stdp", [protocol], {n: alone.attrs[f"param_{n}"] for n in ("A_plus", "A_minus")})
        assert float(cv.dw_percent_cv[j]) == pytest.approx(float(held_out.dw_percent_model[0]), abs=1e-4)
    # in-sample E is lower than the cross-validated one (same units: SEM-normalised)
    assert cv.attrs["E_cv_units"] == "1" and cv.attrs["E_cv"] > fit("stdp", SJOSTROM, starts=2, **QUIET).attrs["E"]


def test_warm_started_leave_one_out_equals_warm_started_fits():
    full = fit("triplet", SJOSTROM, free=["A3_plus", "A2_minus", "tau_y_ms"], starts=1, uncertainty=False, **QUIET)
    start = {n: full.attrs[f"param_{n}"] for n in ("A3_plus", "A2_minus", "tau_y_ms", "A2_plus")}
    options = dict(free=["A3_plus", "A2_minus", "tau_y_ms"], starts=1, start=start)
    cv = selection.loo_cv("triplet", SJOSTROM, **options)
    assert cv.attrs["warm_start"] == 1
    for j in (0, 7):
        alone = fit("triplet", SJOSTROM[:j] + SJOSTROM[j + 1 :], uncertainty=False, **options, **QUIET)
        assert float(cv.E_train[j]) == pytest.approx(alone.attrs["E"], rel=1e-6)


def test_leave_one_out_without_sem_is_in_percent_squared():
    protocols = data.protocols("bipoo1998")[::5]
    cv = selection.loo_cv("stdp", protocols, starts=1)
    assert cv.attrs["E_cv_units"] == "percent^2" and "sem_percent" not in cv
    assert cv.attrs["E_cv"] == pytest.approx(float(((cv.dw_percent - cv.dw_percent_cv) ** 2).mean()))


def test_generalisation_matrix():
    fits = {
        name: fit("stdp", data.protocols(name), starts=1, uncertainty=False, **QUIET)
        for name in ("sjostrom2001", "bipoo1998")
    }
    matrix = selection.generalisation("stdp", fits)
    assert matrix.E.dims == ("fitted_on", "predicted")
    assert list(matrix.E_units.values) == ["1", "percent^2"]
    for a in fits:
        for b in fits:
            parameters = {n: fits[a].attrs[f"param_{n}"] for n in ("A_plus", "A_minus", "tau_plus_ms", "tau_minus_ms")}
            expected = predict("stdp", data.protocols(b), parameters).attrs["E"]
            assert float(matrix.E.sel(fitted_on=a, predicted=b)) == pytest.approx(expected, rel=1e-9)
        assert float(matrix.E_ratio.sel(fitted_on=a, predicted=a)) == pytest.approx(1.0)
    assert (matrix.E_ratio >= 1 - 1e-9).all()  # another dataset's parameters do no better than the own fit


def test_bad_selection_requests():
    with pytest.raises(NeurofwpError, match="at least 2 protocols"):
        selection.loo_cv("stdp", SJOSTROM[:1])
    with pytest.raises(NeurofwpError, match="param_"):
        selection.generalisation("stdp", {"a": xr.Dataset()})


def test_linearised_leave_one_out_is_exact_for_a_linear_rule_and_close_otherwise():
    """Pair STDP is linear in A±: one bounded Gauss-Newton step per fold is the refit, also where A_minus sits
    at its lower bound in the full fit and leaves it in one fold. The minimal triplet rule is not linear, but
    its folds stay close to the full optimum."""
    protocols = data.protocols("bipoo1998")[::3]
    refit = selection.loo_cv("stdp", protocols, starts=1)
    linear = selection.loo_cv("stdp", protocols, starts=1, method="linearised")
    assert linear.attrs["method"] == "linearised" and (refit.fold_at_bound.sel(parameter="A_minus") == 0).any()
    np.testing.assert_allclose(linear.dw_percent_cv, refit.dw_percent_cv, atol=1e-5)
    assert linear.attrs["E_cv"] == pytest.approx(refit.attrs["E_cv"], rel=1e-7)
    np.testing.assert_allclose(linear.E_train, refit.E_train, rtol=1e-7)
    minimal = dict(free=["A3_plus", "A2_minus", "tau_y_ms"], starts=1)
    refit = selection.loo_cv("triplet", SJOSTROM, **minimal)
    linear = selection.loo_cv("triplet", SJOSTROM, method="linearised", **minimal)
    assert linear.attrs["E_cv"] == pytest.approx(refit.attrs["E_cv"], rel=1e-2)


def test_linearised_jacobian_of_a_clock_driven_rule_matches_finite_differences():
    """Forward-mode autograd through the delta rule's Euler steps (two short protocols, coarse dt)."""
    protocols = [make_protocol("a", [0], [10], 20, 5, 10.0, 2.0), make_protocol("b", [10], [0], 20, 5, -5.0, 2.0)]
    problem = prepare("delta", protocols, dt_ms=1.0, bounds={"tau_plus_ms": (5.0, 200.0)})
    point = np.array([0.3, 0.4])
    residual, jacobian = selection.residual_jacobian(problem, point)
    step = 1e-6
    for i in range(2):
        shifted = point.copy()
        shifted[i] += step
        ahead, _ = selection.residual_jacobian(problem, shifted)
        np.testing.assert_allclose((ahead - residual) / step, jacobian[:, i], rtol=1e-4, atol=1e-6)


def test_hessian_of_a_clock_driven_rule_by_differences_of_gradients_matches_double_backward():
    protocols = [make_protocol("a", [0], [10], 20, 5, 10.0, 2.0), make_protocol("b", [10], [0], 20, 5, -5.0, 2.0)]
    problem = prepare("delta", protocols, dt_ms=1.0, bounds={"tau_plus_ms": (5.0, 200.0)})
    point = np.array([0.3, 0.4])
    by_differences = fit_module.nll_hessian(problem, point)
    low, span = torch.as_tensor(problem.low), torch.as_tensor(problem.span)
    exact = torch.autograd.functional.hessian(
        lambda u: problem.negative_log_likelihood(low + span * u), torch.tensor(point)
    ).numpy()
    np.testing.assert_allclose(by_differences, exact, rtol=1e-5, atol=1e-8 * np.abs(exact).max())
