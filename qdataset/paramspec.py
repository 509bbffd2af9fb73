"""ParamSpec: the description of one parameter (one column) of a DataSet."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from .errors import InvalidParamSpecError

ROLES = ("setpoint", "output")

# Kinds we can store: bool, signed/unsigned int, float, complex, unicode,
# bytes, datetime64/timedelta64 and structured (void) records.
_SUPPORTED_KINDS = set("biufcUSMmV")

#: Longest parameter name, in bytes of UTF-8, on every engine (PostgreSQL's identifier
#: limit, NAMEDATALEN - 1, applied to SQLite too so runs can be copied between them).
MAX_NAME_BYTES = 63


def normalize_dtype(type_: Any, name: str = "?") -> np.dtype:
    """Return the numpy dtype for ``type_``; strings become unsized ``U``/``S``."""
    try:
        dtype = np.dtype(type_)
    except TypeError as exc:
        raise InvalidParamSpecError(
            f"parameter {name!r}: {type_!r} is not a numpy dtype; "
            "use e.g. np.float64, np.int64, bool, np.complex128 or str"
        ) from exc
    if dtype.kind not in _SUPPORTED_KINDS:
        raise InvalidParamSpecError(
            f"parameter {name!r}: dtype {dtype} cannot be stored; "
            "use a numeric, bool, str, bytes, datetime or structured dtype"
        )
    if dtype.kind == "V" and dtype.fields is None:
        raise InvalidParamSpecError(
            f"parameter {name!r}: unstructured void dtype {dtype} has no meaning; "
            "use a structured dtype with named fields"
        )
    if dtype.kind == "U":
        return np.dtype("U")
    if dtype.kind == "S":
        return np.dtype("S")
    return dtype


def dtype_to_json(dtype: np.dtype) -> Any:
    """A JSON value for ``dtype``: its name where that is unambiguous ("float64", "str")."""
    if dtype.fields is None:
        name = dtype.name
        if dtype.kind in "US":
            return "str" if dtype.kind == "U" else "bytes"
        if np.dtype(name) == dtype:
            return name
        return dtype.str
    return np.lib.format.dtype_to_descr(dtype)


def dtype_from_json(value: Any) -> np.dtype:
    """Inverse of :func:`dtype_to_json`."""
    if isinstance(value, str):
        return normalize_dtype(value)
    return np.lib.format.descr_to_dtype([tuple(field) for field in value])


class ParamSpec:
    """The specification of one parameter: name, numpy dtype, shape and role.

    >>> x = ParamSpec("x", np.float64, role="setpoint", unit="V", label="gate")
    >>> y = ParamSpec("y", np.float64, depends_on=["x"])
    >>> trace = ParamSpec("trace", np.float64, shape=(1000,))     # fixed length
    >>> burst = ParamSpec("burst", np.int16, shape=(None,))       # variable length

    ``shape`` is ``()`` for scalars; a ``None`` in the first axis makes the
    first dimension variable from result to result.  ``optional`` parameters
    may be left out of a result.  ``metadata`` is any JSON-able dict.
    """

    __slots__ = (
        "name",
        "type",
        "shape",
        "role",
        "optional",
        "unit",
        "label",
        "depends_on",
        "metadata",
    )

    def __init__(
        self,
        name: str,
        type: Any,  # noqa: A002 - the specification names it "type"
        *,
        shape: Iterable[int | None] = (),
        role: str = "output",
        optional: bool = False,
        unit: str = "",
        label: str = "",
        depends_on: Iterable[str] = (),
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        if not isinstance(name, str) or not name or "\x00" in name:
            raise InvalidParamSpecError(
                f"parameter name {name!r} is invalid; use a non-empty string without NUL"
            )
        if len(name.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES:
            raise InvalidParamSpecError(
                f"parameter name {name!r} is {len(name.encode('utf-8', 'surrogatepass'))} "
                f"bytes long in UTF-8; parameter names are limited to {MAX_NAME_BYTES} bytes "
                "(on every engine); choose a shorter name and keep details in label= or unit="
            )
        self.name = name
        self.type = normalize_dtype(type, name)
        self.shape = _normalize_shape(shape, name)
        if role not in ROLES:
            raise InvalidParamSpecError(
                f"parameter {name!r}: role {role!r} is unknown; use 'setpoint' or 'output'"
            )
        self.role = role
        self.optional = bool(optional)
        self.unit = str(unit)
        self.label = str(label)
        if isinstance(depends_on, str):
            depends_on = [depends_on]
        self.depends_on = tuple(name_of(d) for d in depends_on)
        if name in self.depends_on:
            raise InvalidParamSpecError(f"parameter {name!r} cannot depend on itself")
        self.metadata = dict(metadata) if metadata is not None else {}
        try:
            json.dumps(self.metadata)
        except (TypeError, ValueError) as exc:
            raise InvalidParamSpecError(
                f"parameter {name!r}: metadata must be JSON-serialisable ({exc})"
            ) from exc

    def __setattr__(self, key: str, value: Any) -> None:
        if hasattr(self, "metadata"):  # constructed: the spec is immutable
            raise AttributeError("ParamSpec is immutable; create a new one instead")
        object.__setattr__(self, key, value)

    @property
    def is_array(self) -> bool:
        """True when each value of this parameter is an array."""
        return self.shape != ()

    @property
    def is_variable_length(self) -> bool:
        """True when the first axis of each value may differ between results."""
        return bool(self.shape) and self.shape[0] is None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict describing this spec (round-trips with :meth:`from_dict`)."""
        return {
            "name": self.name,
            "type": dtype_to_json(self.type),
            "shape": list(self.shape),
            "role": self.role,
            "optional": self.optional,
            "unit": self.unit,
            "label": self.label,
            "depends_on": list(self.depends_on),
            "metadata": self.metadata,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ParamSpec:
        """Rebuild a spec from :meth:`to_dict` output."""
        return cls(
            data["name"],
            dtype_from_json(data["type"]),
            shape=tuple(data.get("shape", ())),
            role=data.get("role", "output"),
            optional=data.get("optional", False),
            unit=data.get("unit", ""),
            label=data.get("label", ""),
            depends_on=data.get("depends_on", ()),
            metadata=data.get("metadata") or {},
        )

    def to_json(self) -> str:
        """This spec as a JSON string."""
        return json.dumps(self.to_dict())

    @classmethod
    def from_json(cls, text: str) -> ParamSpec:
        """Rebuild a spec from :meth:`to_json` output."""
        return cls.from_dict(json.loads(text))

    def _key(self) -> tuple:
        return (
            self.name,
            self.type,
            self.shape,
            self.role,
            self.optional,
            self.unit,
            self.label,
            self.depends_on,
            json.dumps(self.metadata, sort_keys=True),
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ParamSpec):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash((self.name, self.type.str, self.shape, self.role))

    def __repr__(self) -> str:
        extras = [f"shape={self.shape}"] if self.shape else []
        if self.role != "output":
            extras.append(f"role={self.role!r}")
        if self.optional:
            extras.append("optional=True")
        if self.unit:
            extras.append(f"unit={self.unit!r}")
        if self.depends_on:
            extras.append(f"depends_on={list(self.depends_on)!r}")
        tail = "".join(", " + e for e in extras)
        return f"ParamSpec({self.name!r}, {dtype_to_json(self.type)!r}{tail})"


def name_of(param: Any) -> str:
    """The parameter name of a string, a ParamSpec or any object with ``.name``."""
    if isinstance(param, str):
        return param
    name = getattr(param, "name", None)
    if isinstance(name, str):
        return name
    raise InvalidParamSpecError(f"{param!r} is neither a parameter name nor a ParamSpec")


def _normalize_shape(shape: Iterable[int | None], name: str) -> tuple[int | None, ...]:
    if isinstance(shape, int):
        shape = (shape,)
    try:
        dims = tuple(shape)
    except TypeError as exc:
        raise InvalidParamSpecError(
            f"parameter {name!r}: shape {shape!r} must be a tuple such as (), (100,) or (None,)"
        ) from exc
    for axis, dim in enumerate(dims):
        if dim is None and axis == 0:
            continue
        if dim is None:
            raise InvalidParamSpecError(
                f"parameter {name!r}: only the first axis may be variable (None); got {dims}"
            )
        if isinstance(dim, bool) or not isinstance(dim, int | np.integer) or dim < 1:
            raise InvalidParamSpecError(
                f"parameter {name!r}: shape entries must be positive integers; got {dims}"
            )
    return tuple(None if d is None else int(d) for d in dims)

