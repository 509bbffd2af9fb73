"""Import-time isolation: qiskit, qiskit-aer and matplotlib load only when the user does."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("qiskit", "qiskit_aer", "matplotlib")


def _modules_after(code: str) -> dict[str, bool]:
    report = f"print(json.dumps({{m: m in sys.modules for m in {HEAVY!r}}}))"
    probe = f"{code}\nimport json, sys\n{report}"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         timeout=120, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_import_qdataset_does_not_import_qiskit():
    assert _modules_after("import qdataset") == dict.fromkeys(HEAVY, False)


def test_import_experiment_layer_does_not_import_qiskit():
    code = "import qdataset.experiment\nfrom qdataset.experiment import ExperimentData"
    assert _modules_after(code) == dict.fromkeys(HEAVY, False)


def test_using_experiment_data_without_qiskit(tmp_path):
    code = (
        "import qdataset\nfrom qdataset.experiment import ExperimentData, AnalysisResult\n"
        f"store = qdataset.connect({str(tmp_path / 'x.db')!r})\n"
        "exp = ExperimentData(store=store)\nexp.add_data({'counts': {'0': 1}})\n"
        "exp.add_analysis_results(AnalysisResult('a', 1))\nexp.save()\n"
        "exp = ExperimentData.load(exp.experiment_id, store)\nassert exp.data(0)['counts']\n"
    )
    assert _modules_after(code) == dict.fromkeys(HEAVY, False)
