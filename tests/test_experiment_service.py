"""ExperimentService, method by method, on SQLite and PostgreSQL: what qiskit-experiments
sends comes back (NaN, arrays, ufloats, sets, enums, components), every call is an
upsert, unknown ids raise qiskit-experiments' own ExperimentEntryNotFound naming the
id, filters, figures and files byte for byte, bad input, concurrent callers.

The real experiments (T1, T2Hahn, composite ones on Aer) are in
test_experiment_service_aer.py.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
import sqlalchemy as sa

qe = pytest.importorskip(
    "qiskit_experiments", reason="qiskit-experiments is not installed "
    "(pip install 'qdataset[qiskit-experiments]')")

from qiskit_experiments.database_service import (  # noqa: E402
    DbAnalysisResultData,
    DbExperimentData,
    Qubit,
    Resonator,
    ResultQuality,
)
from qiskit_experiments.database_service import (  # noqa: E402
    ExperimentEntryNotFound as QEEntryNotFound,
)
from qiskit_experiments.framework import ExperimentDecoder, ExperimentEncoder  # noqa: E402
from qiskit_experiments.framework.provider_interfaces import MeasLevel  # noqa: E402
from uncertainties import ufloat  # noqa: E402

import qdataset  # noqa: E402
from qdataset.experiment import ExperimentEntryNotFound, ExperimentService  # noqa: E402

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 3 + b"\x00IEND"
SVG = b'<svg xmlns="http://www.w3.org/2000/svg"><rect width="1" height="1"/></svg>\n'


@pytest.fixture
def service(store):
    return ExperimentService(store)


def _experiment(eid: str = "exp-1", **fields) -> DbExperimentData:
    values = {"experiment_type": "T1", "backend": "aer", "tags": ["a"], "job_ids": ["j1"],
              "metadata": {"physical_qubits": [0]}}
    values.update(fields)
    return DbExperimentData(experiment_id=eid, **values)


def _result(rid: str = "res-1", eid: str = "exp-1", **fields) -> DbAnalysisResultData:
    values = {"result_type": "T1", "result_data": {"_value": 1.5, "_extra": {}},
              "device_components": [Qubit(0)], "quality": ResultQuality.GOOD}
    values.update(fields)
    return DbAnalysisResultData(result_id=rid, experiment_id=eid, **values)


def _same(a, b) -> bool:
    """Equality where NaN equals NaN (through the encoders' own JSON)."""
    return json.dumps(a, cls=ExperimentEncoder, sort_keys=True) == json.dumps(
        b, cls=ExperimentEncoder, sort_keys=True)


# -- experiments -------------------------------------------------------------------------
def test_experiment_fields_round_trip_through_the_encoders(service):
    start = datetime(2026, 12, 1, 13, 5, 7, 123456)  # naive, as ExperimentData makes it
    end = datetime(2026, 12, 1, 14, 0, tzinfo=UTC)
    metadata = {"nan": float("nan"), "inf": float("inf"), "-inf": float("-inf"),
                "array": np.arange(6, dtype=np.int16).reshape(2, 3), "set": {"x", "y"},
                "level": MeasLevel.CLASSIFIED, "component": Qubit(3), "c": 1 + 2j,
                "value": ufloat(1.0, 0.25), "when": start, "nested": {"list": [1, None]}}
    data = _experiment(tags=["t1", "t2"], job_ids=["j1", "j2"], metadata=metadata,
                       figure_names=["a.svg", "b.png"], notes="first", share_level="project",
                       hub="h", group="g", project="p", owner="me", parent_id="parent-0",
                       start_datetime=start, end_datetime=end)
    returned = service.create_or_update_experiment(data, json_encoder=ExperimentEncoder)
    assert isinstance(returned, DbExperimentData)
    assert returned.creation_datetime is not None and returned.updated_datetime is not None

    got = ExperimentService(service.store).experiment("exp-1", json_decoder=ExperimentDecoder)
    assert isinstance(got, DbExperimentData)
    for name in ("experiment_type", "backend", "tags", "job_ids", "figure_names", "notes",
                 "share_level", "hub", "group", "project", "owner", "parent_id"):
        assert getattr(got, name) == getattr(data, name), name
    assert got.start_datetime == start and got.start_datetime.tzinfo is None
    assert got.end_datetime == end
    assert math.isnan(got.metadata["nan"]) and got.metadata["inf"] == math.inf
    assert got.metadata["-inf"] == -math.inf
    assert got.metadata["array"].dtype == np.int16
    np.testing.assert_array_equal(got.metadata["array"], metadata["array"])
    assert got.metadata["set"] == {"x", "y"} and got.metadata["c"] == 1 + 2j
    assert got.metadata["level"] == MeasLevel.CLASSIFIED == 2  # IntEnum: written as int
    assert str(got.metadata["component"]) == "Q3"
    assert got.metadata["value"].nominal_value == 1.0 and got.metadata["value"].std_dev == 0.25
    assert got.metadata["when"] == start and got.metadata["nested"] == {"list": [1, None]}
    # Kept as text: PostgreSQL's JSON types would have refused NaN.
    with service.store.reading() as conn:
        text = conn.execute(sa.text("SELECT metadata FROM qe_experiments")).scalar()
    assert "NaN" in text and "Infinity" in text


def test_every_experiment_call_is_an_upsert(service):
    first = service.create_or_update_experiment(_experiment(notes="one"), create=True)
    service.create_or_update_experiment(
        _experiment(notes="two", tags=["b"], metadata={"k": 2}), create=True)
    service.create_or_update_experiment(_experiment("exp-2"), create=False)  # not there yet
    got = service.experiment("exp-1")
    assert (got.notes, got.tags, got.metadata) == ("two", ["b"], {"k": 2})
    assert got.creation_datetime == first.creation_datetime  # the first save's
    assert got.updated_datetime >= first.updated_datetime
    # None means "not sent": the stored value stays.
    service.create_or_update_experiment(_experiment(notes=None, backend=None))
    again = service.experiment("exp-1")
    assert (again.notes, again.backend) == ("two", "aer")
    assert sorted(e.experiment_id for e in service.experiments()) == ["exp-1", "exp-2"]


def test_experiments_are_listed_newest_first_and_filtered(service):
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    for i, (kind, backend, tags, parent) in enumerate([
            ("T1", "aer", ["a"], None), ("T2", "aer", ["a", "b"], "e0"),
            ("T1", "ibm", ["c"], "e0")]):
        service.create_or_update_experiment(_experiment(
            f"e{i}", experiment_type=kind, backend=backend, tags=tags, parent_id=parent,
            creation_datetime=t0 + timedelta(days=i)))
    ids = lambda found: [e.experiment_id for e in found]  # noqa: E731
    assert ids(service.experiments()) == ["e2", "e1", "e0"]
    assert ids(service.experiments(limit=2)) == ["e2", "e1"]
    assert service.experiments(limit=0) == []  # none, not the first one
    assert ids(service.experiments(experiment_type="T1")) == ["e2", "e0"]
    assert ids(service.experiments(backend_name="aer")) == ["e1", "e0"]
    assert ids(service.experiments(parent_id="e0")) == ["e2", "e1"]
    assert ids(service.experiments(tags=["b", "c"])) == ["e2", "e1"]
    assert ids(service.experiments(tags="a,b", tags_operator="AND")) == ["e1"]
    assert ids(service.experiments(start_datetime_after=t0 + timedelta(hours=1),
                                   start_datetime_before=t0 + timedelta(days=1))) == ["e1"]
    assert service.backends() == ["aer", "ibm"]
    with pytest.raises(qdataset.InvalidArgumentError, match="tags_operator"):
        service.experiments(tags=["a"], tags_operator="XOR")
    with pytest.raises(qdataset.InvalidArgumentError, match="limit"):
        service.experiments(limit=-1)


def test_unknown_ids_raise_qiskit_experiments_own_error_naming_them(service):
    service.create_or_update_experiment(_experiment())
    calls = [
        (lambda: service.experiment("nope-1"), "nope-1"),
        (lambda: service.delete_experiment("nope-2"), "nope-2"),
        (lambda: service.analysis_result("nope-3"), "nope-3"),
        (lambda: service.delete_analysis_result("nope-4"), "nope-4"),
        (lambda: service.figure("exp-1", "nope-5.svg"), "nope-5.svg"),
        (lambda: service.file_download("exp-1", "nope-6.json"), "nope-6.json"),
        (lambda: service.file_delete("exp-1", "nope-7"), "nope-7.json"),
        (lambda: service.create_or_update_figure("nope-8", SVG, "f.svg"), "nope-8"),
        (lambda: service.file_upload("nope-9", "f.json", {}), "nope-9"),
        (lambda: service.create_or_update_analysis_result(_result(eid="nope-10")), "nope-10"),
        (lambda: service.provider.job("nope-11"), "nope-11"),
    ]
    for call, name in calls:
        with pytest.raises(QEEntryNotFound, match=name) as caught:
            call()
        assert isinstance(caught.value, ExperimentEntryNotFound)  # qdataset's, too
        assert isinstance(caught.value, qdataset.QDatasetError)
    service.delete_figure("exp-1", "never-saved.svg")  # as LocalExperimentService: no error


def test_delete_experiment_removes_what_belongs_to_it(service):
    service.create_or_update_experiment(_experiment())
    service.create_or_update_experiment(_experiment("other"))
    service.create_or_update_analysis_result(_result())
    service.create_or_update_analysis_result(_result("res-other", "other"))
    service.create_or_update_figure("exp-1", SVG, "f.svg")
    service.file_upload("exp-1", "notes.json", {"a": 1})
    service.delete_experiment("exp-1")
    with pytest.raises(QEEntryNotFound):
        service.experiment("exp-1")
    assert [r.result_id for r in service.analysis_results()] == ["res-other"]
    assert service.files("exp-1") == {"files": []}
    assert not service.experiment_has_file("exp-1", "notes.json")
    with pytest.raises(QEEntryNotFound):
        service.figure("exp-1", "f.svg")
    assert service.experiment("other").experiment_id == "other"


# -- analysis results ------------------------------------------------------------------------
def test_analysis_result_fields_round_trip(service):
    service.create_or_update_experiment(_experiment(backend="aer_simulator"))
    result_data = {"_value": ufloat(2.5e-5, 1e-6), "_chisq": float("nan"),
                   "_extra": {"unit": "s", "popt": np.array([1.0, np.inf]), "n": np.int64(3),
                              "set": {1, 2}}, "_source": {"class": "x"}, "value": 2.5e-5}
    created = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
    data = _result(result_data=result_data, device_components=[Qubit(0), "R1"],
                   quality=ResultQuality.BAD, verified=True, tags=["fit"], chisq=float("nan"),
                   creation_datetime=created)
    assert service.create_or_update_analysis_result(data, json_encoder=ExperimentEncoder) == \
        "res-1"
    got = service.analysis_result("res-1", json_decoder=ExperimentDecoder)
    assert isinstance(got, DbAnalysisResultData)
    assert (got.result_type, got.experiment_id, got.verified, got.tags) == \
        ("T1", "exp-1", True, ["fit"])
    assert got.quality is ResultQuality.BAD
    assert got.device_components == [Qubit(0), Resonator(1)]
    assert got.backend_name == "aer_simulator"  # the experiment's, none was given
    assert math.isnan(got.chisq) and got.creation_datetime == created
    value = got.result_data["_value"]
    assert (value.nominal_value, value.std_dev) == (2.5e-5, 1e-6)
    assert math.isnan(got.result_data["_chisq"])
    np.testing.assert_array_equal(got.result_data["_extra"]["popt"], [1.0, np.inf])
    assert got.result_data["_extra"]["set"] == {1, 2} and got.result_data["_extra"]["n"] == 3
    assert _same(got.result_data, result_data)

    # An upsert: same id, new values; experiment and first creation time kept.
    service.create_or_update_analysis_result(
        _result(result_data={"_value": 3.0}, quality="good", chisq=1.25, verified=False),
        create=True)
    again = service.analysis_result("res-1")
    assert (again.result_data, again.quality, again.chisq, again.verified) == \
        ({"_value": 3.0}, ResultQuality.GOOD, 1.25, False)
    assert again.creation_datetime == created
    assert len(service.analysis_results(experiment_id="exp-1")) == 1


def test_create_analysis_results_reports_each_and_a_missing_experiment_fails_alone(service):
    service.create_or_update_experiment(_experiment())
    batch = [_result("r1"), _result("r2", eid="missing"), _result("r3")]
    outcome = service.create_analysis_results(batch, blocking=True, json_encoder=ExperimentEncoder)
    assert outcome["running"] == [] and outcome["done"] == [batch[0], batch[2]]
    assert [f["data"] for f in outcome["fail"]] == [batch[1]]
    assert isinstance(outcome["fail"][0]["exception"], QEEntryNotFound)
    assert [r.result_id for r in service.analysis_results()] == ["r1", "r3"]
    service.create_analysis_results(batch[:1])  # again: still one row each
    assert [r.result_id for r in service.analysis_results()] == ["r1", "r3"]


def test_analysis_results_filters(service):
    service.create_or_update_experiment(_experiment("e1", backend="aer"))
    service.create_or_update_experiment(_experiment("e2", backend="ibm"))
    t0 = datetime(2026, 3, 1, tzinfo=UTC)
    rows = [("a", "e1", "T1", [Qubit(0)], ResultQuality.GOOD, True, ["x"]),
            ("b", "e1", "T2", [Qubit(0), Qubit(1)], ResultQuality.BAD, False, ["x", "y"]),
            ("c", "e2", "T1", [Qubit(1)], ResultQuality.UNKNOWN, False, [])]
    for i, (rid, eid, kind, comps, quality, verified, tags) in enumerate(rows):
        service.create_or_update_analysis_result(_result(
            rid, eid, result_type=kind, device_components=comps, quality=quality,
            verified=verified, tags=tags, creation_datetime=t0 + timedelta(days=i)))
    ids = lambda **kw: [r.result_id for r in service.analysis_results(**kw)]  # noqa: E731
    assert ids() == ["a", "b", "c"]
    assert ids(experiment_id="e1") == ["a", "b"] and ids(limit=1) == ["a"]
    assert ids(limit=0) == [] and ids(tags=["x"], limit=1) == ids(tags=["x"])[:1]
    with pytest.raises(qdataset.InvalidArgumentError, match="limit"):
        ids(experiment_id="nowhere", limit=-1)  # refused even when nothing matches
    assert ids(result_type="T1") == ["a", "c"]
    assert ids(backend_name="ibm") == ["c"]
    assert ids(quality="good") == ["a"]
    assert ids(quality=[ResultQuality.BAD, "unknown"]) == ["b", "c"]
    assert ids(verified=True) == ["a"] and ids(verified=False) == ["b", "c"]
    assert ids(tags=["y"]) == ["b"] and ids(tags="x") == ["a", "b"]
    assert ids(tags=["x", "y"], tags_operator="AND") == ["b"]
    assert ids(device_components=["Q0"]) == ["a"]
    assert ids(device_components=[Qubit(1)], device_components_operator="contains") == ["b", "c"]
    assert ids(created_at=(t0 + timedelta(hours=1), None)) == ["b", "c"]
    assert ids(created_at=(None, t0 + timedelta(hours=1))) == ["a"]
    with pytest.raises(qdataset.InvalidArgumentError, match="created_at"):
        service.analysis_results(created_at=t0)
    service.delete_analysis_result("b")
    assert ids() == ["a", "c"]


# -- figures and files -------------------------------------------------------------------------
def test_figures_come_back_byte_for_byte_and_are_upserted(service, tmp_path):
    service.create_or_update_experiment(_experiment())
    assert service.create_or_update_figure("exp-1", PNG, "plot.png") == ("plot.png", len(PNG))
    assert service.create_or_update_figure("exp-1", SVG, "plot.svg", create=False) == \
        ("plot.svg", len(SVG))
    path = tmp_path / "from_file.svg"
    path.write_bytes(SVG + b"<!-- file -->")
    assert service.create_or_update_figure("exp-1", str(path))[0] == "from_file.svg"
    fresh = ExperimentService(service.store)
    assert fresh.figure("exp-1", "plot.png") == PNG
    assert fresh.figure("exp-1", "plot.svg") == SVG
    assert fresh.figure("exp-1", "from_file.svg") == SVG + b"<!-- file -->"
    out = tmp_path / "out.png"
    assert fresh.figure("exp-1", "plot.png", file_name=str(out)) == len(PNG)
    assert out.read_bytes() == PNG
    service.create_or_update_figure("exp-1", SVG * 2, "plot.png", create=True)  # replaces
    assert fresh.figure("exp-1", "plot.png") == SVG * 2
    outcome = service.create_figures("exp-1", [(PNG, "a.png"), (12345, "bad.svg"), (SVG, "b.svg")])
    assert [name for _fig, name in outcome["done"]] == ["a.png", "b.svg"]
    assert [f["data"][1] for f in outcome["fail"]] == ["bad.svg"]
    assert isinstance(outcome["fail"][0]["exception"], qdataset.InvalidArgumentError)
    service.delete_figure("exp-1", "a.png")
    with pytest.raises(QEEntryNotFound, match="a.png"):
        fresh.figure("exp-1", "a.png")


def test_files_json_yaml_zip_and_listing(service):
    service.create_or_update_experiment(_experiment())
    big = {"array": np.linspace(0, 1, 5), "nan": float("nan"), "q": Qubit(1), "s": {3}}
    service.file_upload("exp-1", "metadata", big, json_encoder=ExperimentEncoder)  # -> .json
    service.file_upload("exp-1", "settings.yaml", {"shots": 100, "inf": float("inf"),
                                                   "array": np.arange(3)})
    archive = b"PK\x03\x04" + bytes(range(200)) + b"PK\x05\x06"
    service.file_upload("exp-1", "curve_data.zip", archive)
    service.file_upload("exp-1", "raw.json", '{"text": "as given"}')

    fresh = ExperimentService(service.store)
    assert fresh.experiment_has_file("exp-1", "metadata.json")
    assert fresh.experiment_has_file("exp-1", "metadata")  # ".json" added as for uploads
    assert not fresh.experiment_has_file("exp-1", "other.json")
    got = fresh.file_download("exp-1", "metadata.json", json_decoder=ExperimentDecoder)
    np.testing.assert_array_equal(got["array"], big["array"])
    assert math.isnan(got["nan"]) and str(got["q"]) == "Q1" and got["s"] == {3}
    settings = fresh.file_download("exp-1", "settings.yaml")
    assert settings["shots"] == 100 and settings["inf"] == math.inf
    np.testing.assert_array_equal(settings["array"], [0, 1, 2])
    assert fresh.file_download("exp-1", "curve_data.zip") == archive
    assert fresh.file_download("exp-1", "raw.json") == {"text": "as given"}
    with service.store.reading() as conn:
        yaml_text = conn.execute(sa.text(
            "SELECT data FROM qe_files WHERE name = 'settings.yaml'")).scalar()
    assert b"shots: 100" in bytes(yaml_text)

    service.file_upload("exp-1", "curve_data.zip", archive[:10])  # replaces, listed once
    listing = fresh.files("exp-1")["files"]
    assert [f["Key"] for f in listing] == ["metadata.json", "settings.yaml", "curve_data.zip",
                                           "raw.json"]
    assert listing[2]["Size"] == 10
    assert datetime.fromisoformat(listing[0]["LastModified"]).tzinfo is not None
    fresh.file_delete("exp-1", "settings.yaml")
    assert not service.experiment_has_file("exp-1", "settings.yaml")
    with pytest.raises(qdataset.InvalidArgumentError, match="zip"):
        service.file_upload("exp-1", "x.zip", {"not": "bytes"})


# -- the service itself ------------------------------------------------------------------------
def test_options_and_preferences_carry_auto_save(store):
    service = ExperimentService(store, auto_save=True)
    assert service.options["auto_save"] is True
    assert service.preferences is service.options
    assert ExperimentService(store).options == {"auto_save": False}
    assert "ExperimentService" in repr(service)


def test_a_url_opens_a_store_the_service_closes(sqlite_url):
    with ExperimentService(sqlite_url) as service:
        service.create_or_update_experiment(_experiment())
    assert service.store.closed
    with ExperimentService(sqlite_url) as again:
        assert again.experiment("exp-1").experiment_type == "T1"


def test_bad_input(service):
    with pytest.raises(qdataset.InvalidArgumentError, match="Store or a database URL"):
        ExperimentService(42)
    for bad in (None, ""):
        with pytest.raises(qdataset.InvalidArgumentError, match="experiment_id"):
            service.create_or_update_experiment(DbExperimentData(experiment_id=bad))
    service.create_or_update_experiment(_experiment())
    with pytest.raises(qdataset.InvalidArgumentError, match="result_id"):
        service.create_or_update_analysis_result(_result(rid=None))
    with pytest.raises(qdataset.InvalidArgumentError, match="datetime"):
        service.create_or_update_experiment(_experiment(start_datetime="yesterday"))
    with pytest.raises(qdataset.InvalidArgumentError, match="neither bytes nor"):
        service.create_or_update_figure("exp-1", "/no/such/figure.svg")


def test_a_url_that_does_not_answer_is_a_one_line_store_error():
    url = "postgresql+psycopg://nobody@127.0.0.1:1/nothing"
    with pytest.raises(qdataset.StoreError) as caught:
        ExperimentService(url)
    message = str(caught.value)
    assert "\n" not in message and "127.0.0.1:1" in message


def test_concurrent_callers_never_collide(service):
    """Analysis worker threads (auto_save) upsert the same rows at once."""
    service.create_or_update_experiment(_experiment())
    errors = []

    def work(worker: int) -> None:
        try:
            for i in range(5):
                service.create_or_update_experiment(_experiment(notes=f"{worker}-{i}"))
                service.create_analysis_results([_result(f"r{i}"), _result(f"w{worker}")])
                service.create_or_update_figure("exp-1", SVG, f"f{i}.svg")
                service.file_upload("exp-1", "shared.json", {"worker": worker})
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(r.result_id for r in service.analysis_results()) == \
        sorted([f"r{i}" for i in range(5)] + [f"w{w}" for w in range(6)])
    assert len(service.files("exp-1")["files"]) == 1
    assert len(service.experiments()) == 1


def test_importing_the_service_does_not_import_qiskit():
    code = ("import sys\nfrom qdataset.experiment import ExperimentService, StoreProvider\n"
            "print(sorted(m for m in ('qiskit', 'qiskit_experiments', 'qiskit_aer', "
            "'matplotlib') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, check=True)
    assert out.stdout.strip() == "[]"


def test_save_refuses_an_experiment_attached_to_another_service(service, sqlite_url):
    from qiskit_experiments.framework import ExperimentData

    data = ExperimentData(experiment_type="T1")
    data.service = ExperimentService(sqlite_url)
    with pytest.raises(qdataset.InvalidArgumentError, match="another service"):
        service.save(data)
    fresh = ExperimentData(experiment_type="T1")
    assert service.save(fresh) == []  # no jobs: nothing kept, the record is saved
    assert fresh.service is service
    assert service.experiment(fresh.experiment_id).experiment_type == "T1"
