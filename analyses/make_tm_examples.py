"""Write the bundled train-response examples of published Tsodyks–Markram parameter sets.
======================================================================================

Each set is simulated with neurofwp's ``tsodyks-markram`` rule (the 2-state model: u relaxes to
U, R to 1; response A·u·R before the spike's updates) on one protocol set: 10 pulses at 5, 10,
20, 50 and 100 Hz, and 10 pulses at 20 Hz followed by one recovery probe 250, 1000 or 3000 ms
after the tenth. Responses are normalised to the first and written with 6 significant digits.
The parameters and where they are stated are below; each CSV gets a sidecar with the same.

Usage: python analyses/make_tm_examples.py [--out neurofwp/data]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from neurofwp.plasticity import simulate_responses
from neurofwp.protocols import make_train

TPM1998 = (
    "Tsodyks, Pawelzik & Markram (1998) Neural Comput 10:821-835, Fig. 1; values as in NEST "
    "pynest/examples/iaf_tum_2000_short_term_{kind}.py (nest/nest-simulator commit 84b06d8d)"
)
MNM2002 = (
    "Maass, Natschlaeger & Markram (2002) Neural Comput 14:2531-2560, synapse table (means); values as in "
    "Brian2 examples/frompapers/Maass_Natschlaeger_Markram_2002.py lines 308-359 (brian-team/brian2 commit aec54d2a), "
    "identical in an independent BrainPy LSM script"
)
NEST = (
    "NEST simulator example pynest/examples/evaluate_tsodyks2_synapse.py lines 74 and 79 (nest/nest-simulator "
    "commit 84b06d8d); tsodyks2_synapse uses this rule's convention (u = U initially, response x*u*w before the "
    "spike's updates)"
)
# name: (U, tau_rec_ms, tau_facil_ms, description, source)
SETS = {
    "tsodyks1998_depressing": (0.5, 800.0, 0.0, "depressing neocortical synapse", TPM1998.format(kind="depression")),
    "tsodyks1998_facilitating": (
        0.03,
        130.0,
        530.0,
        "facilitating neocortical synapse",
        TPM1998.format(kind="facilitation"),
    ),
    "maass2002_ee": (0.5, 1100.0, 50.0, "excitatory to excitatory connection", MNM2002),
    "maass2002_ei": (0.05, 125.0, 1200.0, "excitatory to inhibitory connection", MNM2002),
    "maass2002_ie": (0.25, 700.0, 20.0, "inhibitory to excitatory connection", MNM2002),
    "maass2002_ii": (0.32, 144.0, 60.0, "inhibitory to inhibitory connection", MNM2002),
    "nest_tsodyks2_depressing": (0.67, 450.0, 0.0, "NEST's depressing tsodyks2_synapse example", NEST),
    "nest_tsodyks2_facilitating": (0.1, 100.0, 1000.0, "NEST's facilitating tsodyks2_synapse example", NEST),
}


def protocols():
    """The shared protocol set: regular trains and recovery probes."""
    trains = [make_train(f"{hz} Hz", np.round(np.arange(10) * 1000.0 / hz, 1)) for hz in (5, 10, 20, 50, 100)]
    for delay in (250, 1000, 3000):
        times = list(np.arange(10) * 50.0) + [450.0 + delay]
        trains.append(make_train(f"20 Hz + probe {delay} ms", times))
    return trains


def write(name: str, out: Path) -> None:
    U, tau_rec, tau_facil, description, source = SETS[name]
    trains = protocols()
    values = {"U": U, "tau_rec_ms": tau_rec, "tau_facil_ms": tau_facil}
    responses = simulate_responses("tsodyks-markram", trains, values)[:, :, 0]
    lines = ["protocol,pre_times_ms,amplitude,sem"]
    for train, row in zip(trains, responses, strict=True):
        amplitudes = row[: len(train.pre_times_ms)] / row[0]
        times = ";".join(f"{t:g}" for t in train.pre_times_ms)
        lines.append(f"{train.name},{times},{';'.join(f'{a:.6g}' for a in amplitudes)},")
    (out / f"{name}.csv").write_text("\n".join(lines) + "\n")
    facilitation = f"tau_facil = {tau_facil:g} ms" if tau_facil else "no facilitation (tau_facil = 0)"
    description = (
        f"{description}: responses of the published Tsodyks-Markram parameters (U = {U:g}, tau_rec = {tau_rec:g} ms, "
        f"{facilitation}) to regular trains and recovery probes, normalised to the first; computed, not measured"
    )
    method = (
        "Computed, not measured: neurofwp's tsodyks-markram rule (2-state model, response A*u*R read before the "
        "spike's updates) with the published U, tau_rec and tau_facil, written with 6 significant digits by "
        "analyses/make_tm_examples.py. Sources that use the 1998 3-state form (u updated before release, started "
        "at 0) map onto this rule with the same U; their extra inactivation time (1.5-3 ms) changes 20 Hz "
        "responses by < 0.7 percent."
    )
    lines = [
        f"# Metadata of {name}.csv (neurofwp dataset sidecar; keys in docs/data.md).",
        "# Written by analyses/make_tm_examples.py.",
        f'citation = "{source.split(";")[0]}"',
        f'description = "{description}"',
        f'preparation = "model: published Tsodyks-Markram parameters ({name})"',
        'measure = "amplitude: response to each presynaptic spike, normalised to the first of its train '
        '(dimensionless); no SEM"',
        f'source = "{source}"',
        f'method = "{method}"',
        "independent_sources = 1",
        "computed = true",
    ]
    sidecar = "\n".join(lines) + "\n"
    (out / f"{name}.toml").write_text(sidecar)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.strip().split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).parents[1] / "neurofwp" / "data")
    args = parser.parse_args()
    for name in SETS:
        write(name, args.out)
        print(f"wrote {args.out / name}.csv and .toml")


if __name__ == "__main__":
    main()
