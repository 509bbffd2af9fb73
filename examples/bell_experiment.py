"""Bell-state experiment on a seeded AerSimulator, kept in a qdataset store.

Runs Bell circuits, collects the counts as rows of the experiment's DataSet,
computes the Bell fidelity in an analysis callback, draws a histogram figure,
saves everything and prints a summary.

    python examples/bell_experiment.py                       # ./bell.db
    python examples/bell_experiment.py --url sqlite:///lab.db --shots 4000
"""

from __future__ import annotations

import argparse

import matplotlib

matplotlib.use("Agg")

from matplotlib.figure import Figure  # noqa: E402
from qiskit import QuantumCircuit  # noqa: E402
from qiskit_aer import AerSimulator  # noqa: E402

import qdataset  # noqa: E402
from qdataset.experiment import AnalysisResult, ExperimentData  # noqa: E402


def bell_circuit(basis: str) -> QuantumCircuit:
    """|Phi+> measured in the Z or X basis (both should give only 00 and 11)."""
    qc = QuantumCircuit(2, 2, name=f"bell-{basis}")
    qc.h(0)
    qc.cx(0, 1)
    if basis == "x":
        qc.h([0, 1])
    qc.measure([0, 1], [0, 1])
    qc.metadata = {"basis": basis}
    return qc


def bell_fidelity(exp: ExperimentData, target: tuple[str, ...] = ("00", "11")) -> None:
    """Analysis callback: fidelity with |Phi+> from the ZZ and XX parities, plus a histogram."""
    parities = {}
    totals: dict[str, int] = {}
    for row in exp.data():
        counts, basis = row["counts"], row["metadata"]["basis"]
        shots = sum(counts.values())
        parities[basis] = sum(n for bits, n in counts.items() if bits in target) * 2 / shots - 1
        for bits, n in counts.items():
            totals[bits] = totals.get(bits, 0) + n
    # With only the ZZ and XX settings, (<XX> + <ZZ>) / 2 = F - p(Psi-) is a lower
    # bound on the fidelity F with |Phi+> (exact when no Psi- population is present).
    fidelity = (parities["z"] + parities["x"]) / 2
    exp.add_analysis_results([
        AnalysisResult("bell_fidelity", fidelity, quality="good" if fidelity > 0.9 else "bad",
                       device_components=["Q0", "Q1"],
                       extra={"method": "lower bound (<XX> + <ZZ>) / 2"}),
        AnalysisResult("parity_zz", parities["z"]),
        AnalysisResult("parity_xx", parities["x"]),
    ])
    fig = Figure(figsize=(4, 3))
    ax = fig.add_subplot()
    labels = sorted(totals)
    ax.bar(labels, [totals[b] for b in labels])
    ax.set_xlabel("outcome")
    ax.set_ylabel("counts")
    ax.set_title(f"Bell state, F = {fidelity:.3f}")
    exp.add_figures(fig, figure_names="histogram")


def main(argv: list[str] | None = None) -> ExperimentData:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="sqlite:///bell.db",
                        help="store URL (default: %(default)s)")
    parser.add_argument("--shots", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)

    store = qdataset.connect(args.url)
    backend = AerSimulator(seed_simulator=args.seed)
    exp = ExperimentData(store=store, backend=backend, experiment_type="bell",
                         tags=["example"], metadata={"shots": args.shots})
    exp.add_jobs(backend.run([bell_circuit("z"), bell_circuit("x")], shots=args.shots),
                 timeout=120)
    exp.add_analysis_callback(bell_fidelity)
    exp.block_for_results(timeout=120)
    exp.save()

    print(exp)
    for row in exp.data():
        print(f"  circuit {row['circuit_index']} ({row['metadata']['basis']} basis): "
              f"{row['counts']}")
    if exp.status().name == "DONE":
        fid = exp.analysis_results("bell_fidelity")
        print(f"Bell fidelity: {fid.value:.4f} ({fid.quality})")
        print(f"Figure 'histogram': {len(exp.figure('histogram').data)} bytes of SVG")
    else:
        print(exp.errors())
    print(f"Stored in {args.url}: ExperimentData.load({exp.experiment_id!r}, store)")
    store.close()
    return exp


if __name__ == "__main__":
    main()
