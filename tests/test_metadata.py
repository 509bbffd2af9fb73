"""Metadata: tags, replacement, well-known tags, JSON checks, writable after completion."""

from __future__ import annotations

import math

import numpy as np
import pytest

import qdataset
from qdataset import DataSet, MetadataError, ParamSpec, QDatasetError


def test_add_and_replace(store, xy_specs):
    ds = DataSet("m", xy_specs, store=store)
    ds.add_metadata("sample", {"name": "S1", "T": [0.01, 0.02], "ok": True, "n": None})
    assert ds.get_metadata("sample") == {"name": "S1", "T": [0.01, 0.02], "ok": True, "n": None}
    ds.add_metadata("sample", "replaced")
    assert ds.get_metadata("sample") == "replaced"
    ds.add_metadata("count", 3)
    everything = ds.get_metadata()
    assert everything["sample"] == "replaced" and everything["count"] == 3
    assert everything["id"] == ds.id
    assert set(everything["parameters"]) == {"x", "y"}


def test_metadata_is_stored(store, xy_specs):
    ds = DataSet("m", xy_specs, store=store)
    ds.add_metadata("nested", {"a": {"b": [1, 2, {"c": "d"}]}})
    with qdataset.connect(store.url) as other:
        view = other.read_dataset(ds.id)
        assert view.get_metadata("nested") == {"a": {"b": [1, 2, {"c": "d"}]}}
        view.add_metadata("from_view", 1.5)
    assert ds.get_metadata("from_view") == 1.5


def test_id_tag(store):
    ds = DataSet("idtag", store=store)
    assert ds.get_metadata("id") == ds.id
    assert store.read_dataset(ds.id).get_metadata("id") == ds.id


def test_parameters_tag(store):
    specs = [ParamSpec("x", np.float64, role="setpoint", unit="V"),
             ParamSpec("z", np.complex128, metadata={"instrument": "lockin", "gain": 10}),
             ParamSpec("n", np.int32, optional=True)]
    ds = DataSet("params", specs, store=store)
    params = ds.get_metadata("parameters")
    assert list(params) == ["x", "z", "n"]
    for spec in specs:
        entry = params[spec.name]["spec"]
        assert np.dtype(entry["type"]) == spec.type
        assert entry["metadata"] == spec.metadata
    assert params["x"]["spec"]["metadata"] == {}
    ds.add_parameter(ParamSpec("w", np.float32, metadata={"k": "v"}))
    assert ds.get_metadata("parameters")["w"]["spec"]["metadata"] == {"k": "v"}
    view = store.read_dataset(ds.id)
    assert view.get_metadata("parameters") == ds.get_metadata("parameters")
    assert ParamSpec.from_dict(view.get_metadata("parameters")["z"]["spec"]) == specs[1]


@pytest.mark.parametrize("value", [object(), {1, 2}, np.arange(3), {"a": b"bytes"},
                                   {"f": lambda: 0}])
def test_non_json_metadata(store, value):
    ds = DataSet("m", store=store)
    ds.add_metadata("keep", [1, 2])
    with pytest.raises(MetadataError, match="bad") as info:
        ds.add_metadata("bad", value)
    assert isinstance(info.value, QDatasetError)
    assert ds.get_metadata("keep") == [1, 2]
    assert "bad" not in ds.get_metadata()


@pytest.mark.parametrize("tag", ["id", "parameters"])
def test_reserved_tags(store, tag):
    ds = DataSet("m", [ParamSpec("x", np.float64)], store=store)
    with pytest.raises(MetadataError, match=tag):
        ds.add_metadata(tag, "mine")
    assert ds.get_metadata("id") == ds.id
    assert list(ds.get_metadata("parameters")) == ["x"]


@pytest.mark.parametrize("tag", ["", None, 5])
def test_bad_tags(store, tag):
    ds = DataSet("m", store=store)
    with pytest.raises(MetadataError):
        ds.add_metadata(tag, 1)


def test_missing_tag(store):
    ds = DataSet("m", store=store)
    with pytest.raises(MetadataError, match="nothing"):
        ds.get_metadata("nothing")


def test_nan_metadata_round_trips(store):
    ds = DataSet("m", store=store)
    ds.add_metadata("f", [1.5, float("nan")])
    got = ds.get_metadata("f")
    assert got[0] == 1.5 and math.isnan(got[1])


def test_metadata_writable_after_completion(store, xy_specs):
    ds = DataSet("m", xy_specs, [[1.0], [2.0]], store=store)
    ds.add_metadata("before", 1)
    ds.mark_completed()
    ds.add_metadata("after", {"fit": 0.98})
    ds.add_metadata("before", 2)
    view = store.read_dataset(ds.id)
    assert view.is_marked_complete
    assert view.get_metadata("after") == {"fit": 0.98}
    assert view.get_metadata("before") == 2
    view.add_metadata("from_view", "ok")
    assert ds.get_metadata("from_view") == "ok"
