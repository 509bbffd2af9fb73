"""ParamSpec: construction, validation, equality and JSON round trip."""

from __future__ import annotations

import json

import numpy as np
import pytest

from qdataset import InvalidParamSpecError, ParamSpec, QDatasetError


def test_defaults():
    spec = ParamSpec("x", np.float64)
    assert spec.name == "x"
    assert spec.type == np.dtype(np.float64)
    assert spec.shape == ()
    assert spec.role == "output"
    assert spec.optional is False
    assert spec.unit == "" and spec.label == ""
    assert spec.depends_on == ()
    assert spec.metadata == {}


@pytest.mark.parametrize(
    "type_, kind",
    [(np.float64, "f"), (np.float32, "f"), (np.int64, "i"), (np.int8, "i"), (np.uint16, "u"),
     (bool, "b"), (np.complex128, "c"), (str, "U"), (np.str_, "U")],
)
def test_supported_types(type_, kind):
    spec = ParamSpec("p", type_)
    assert isinstance(spec.type, np.dtype)
    assert spec.type.kind == kind


def test_all_fields_kept():
    spec = ParamSpec("y", np.complex128, shape=(3, 4), role="setpoint", optional=True,
                     unit="V", label="gate", depends_on=["x"], metadata={"instrument": "lockin"})
    assert spec.shape == (3, 4)
    assert spec.role == "setpoint"
    assert spec.optional is True
    assert (spec.unit, spec.label) == ("V", "gate")
    assert spec.depends_on == ("x",)
    assert spec.metadata == {"instrument": "lockin"}


def test_depends_on_accepts_paramspecs():
    x = ParamSpec("x", np.float64)
    assert ParamSpec("y", np.float64, depends_on=[x]).depends_on == ("x",)


@pytest.mark.parametrize("shape", [(), (5,), (2, 3), (None,), (None, 4)])
def test_shapes(shape):
    spec = ParamSpec("a", np.float64, shape=shape)
    assert spec.shape == shape
    assert spec.is_array == (shape != ())
    assert spec.is_variable_length == (bool(shape) and shape[0] is None)


@pytest.mark.parametrize("kwargs", [
    {"name": ""},
    {"name": 3},
    {"type_": object},
    {"type_": "not-a-dtype"},
    {"shape": (0,)},
    {"shape": (-1,)},
    {"shape": (3, None)},
    {"shape": (1.5,)},
    {"role": "input"},
    {"metadata": {"a": object()}},
    {"depends_on": ["p"]},  # itself
])
def test_invalid_specs_raise(kwargs):
    name = kwargs.pop("name", "p")
    type_ = kwargs.pop("type_", np.float64)
    with pytest.raises(InvalidParamSpecError) as info:
        ParamSpec(name, type_, **kwargs)
    assert isinstance(info.value, QDatasetError)


def test_equality():
    a = ParamSpec("x", np.float64, unit="V", metadata={"k": [1, 2]})
    b = ParamSpec("x", np.float64, unit="V", metadata={"k": [1, 2]})
    assert a == b and hash(a) == hash(b)
    assert a != ParamSpec("x", np.float32, unit="V", metadata={"k": [1, 2]})
    assert a != ParamSpec("x", np.float64, unit="mV", metadata={"k": [1, 2]})
    assert a != ParamSpec("x", np.float64, unit="V", metadata={"k": [1, 3]})
    assert a != ParamSpec("x", np.float64, unit="V", metadata={"k": [1, 2]}, shape=(2,))
    assert a != ParamSpec("x", np.float64, unit="V", metadata={"k": [1, 2]}, optional=True)
    assert a != "x"


def test_immutable():
    spec = ParamSpec("x", np.float64)
    with pytest.raises(AttributeError):
        spec.name = "z"


@pytest.mark.parametrize("spec", [
    ParamSpec("x", np.float64, role="setpoint", unit="V", label="gate"),
    ParamSpec("n", np.int8, optional=True),
    ParamSpec("b", bool),
    ParamSpec("s", str, metadata={"nested": {"a": [1, 2.5, "x", None]}}),
    ParamSpec("z", np.complex64, depends_on=["x"]),
    ParamSpec("trace", np.float32, shape=(7,)),
    ParamSpec("image", np.uint16, shape=(2, 3)),
    ParamSpec("burst", np.int16, shape=(None,)),
])
def test_json_round_trip(spec):
    text = spec.to_json()
    json.loads(text)  # real JSON
    again = ParamSpec.from_json(text)
    assert again == spec
    assert again.type == spec.type and again.shape == spec.shape
    assert ParamSpec.from_dict(spec.to_dict()) == spec


def test_to_dict_type_is_dtype_name():
    assert ParamSpec("x", np.float64).to_dict()["type"] == np.dtype(np.float64).name
    assert ParamSpec("n", np.int32).to_dict()["type"] == np.dtype(np.int32).name
