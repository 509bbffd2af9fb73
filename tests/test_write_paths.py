"""The fast insert paths: SQLite's multi-row INSERTs and PostgreSQL's binary COPY.

Both must store exactly what the text paths would: every bit of every float,
the extremes of every integer type, NULLs, and every row of batches whose
sizes fall on and around the statement-size boundaries.
"""

from __future__ import annotations

import struct

import numpy as np
import pytest

from qdataset import DataSet, ParamSpec
from qdataset.store.pgcopy import binary_copy_payload


def _awkward_floats(count: int) -> np.ndarray:
    """Random bit patterns (finite ones) plus the values formats get wrong."""
    rng = np.random.default_rng(11)
    bits = rng.integers(0, 2**63, size=count * 2, dtype=np.int64)
    values = bits.view(np.float64)
    values = values[np.isfinite(values) & (values != 0)][:count]  # SQLite stores -0.0 as 0.0
    special = [np.inf, -np.inf, np.nan, np.finfo(np.float64).max, np.finfo(np.float64).tiny,
               5e-324, -5e-324, 1 / 3, 0.1, -2.5, 0.0]
    return np.concatenate([special, values])


NUMBER_SPECS = [ParamSpec("f", np.float64), ParamSpec("g", np.float32), ParamSpec("i", np.int64),
                ParamSpec("u", np.uint32), ParamSpec("b", np.bool_)]


def _number_columns(count: int) -> dict[str, np.ndarray]:
    floats = _awkward_floats(count)
    n = len(floats)
    ints = np.arange(n, dtype=np.int64) * 7_919 - 3
    ints[:2] = [np.iinfo(np.int64).min, np.iinfo(np.int64).max]
    singles = np.random.default_rng(5).standard_normal(n).astype(np.float32) * 1e30
    singles[:3] = [np.finfo(np.float32).max, np.finfo(np.float32).smallest_subnormal, np.inf]
    return {"f": floats, "g": singles, "i": ints,
            "u": (np.arange(n) * 104_729 % 2**32).astype(np.uint32),
            "b": np.arange(n) % 3 == 0}


def _assert_same(ds: DataSet, expected: dict[str, np.ndarray]) -> None:
    got = dict(zip(expected, ds.get_data(*expected), strict=True))
    for name, values in expected.items():
        assert got[name].dtype == values.dtype, name
        # Bit-for-bit (NaN-safe) for floats, exact for the rest.
        np.testing.assert_array_equal(got[name].view(np.uint8), values.view(np.uint8),
                                      err_msg=name)


def test_number_columns_round_trip_bit_exactly_row_by_row(store):
    columns = _number_columns(300)
    ds = DataSet("rows", NUMBER_SPECS, store=store)
    for k in range(len(columns["f"])):
        ds.add_result(**{name: values[k] for name, values in columns.items()})
    _assert_same(ds, columns)


def test_number_columns_round_trip_bit_exactly_in_bulk(store):
    columns = _number_columns(5000)
    ds = DataSet("bulk", NUMBER_SPECS, store=store)
    ds.add_results(columns)
    _assert_same(ds, columns)
    assert ds.length == len(columns["f"])


def test_missing_values_fall_back_to_the_text_path(store):
    specs = [ParamSpec("x", np.float64), ParamSpec("n", np.int64, optional=True),
             ParamSpec("y", np.float64, optional=True)]
    ds = DataSet("nulls", specs, store=store)
    for k in range(50):
        ds.add_result(x=float(k), n=None if k % 4 == 0 else k, y=None if k % 5 == 0 else k / 2)
    ds.add_results({"x": [50.0, 51.0], "n": [None, 51], "y": [1.5, None]})
    x, n, y = ds.get_data("x", "n", "y")
    assert x.tolist() == [float(k) for k in range(52)]
    assert n.mask.tolist() == [k % 4 == 0 for k in range(50)] + [True, False]
    assert n.compressed().tolist() == [k for k in range(52) if k % 4 and k != 50]
    expected_y = [np.nan if k % 5 == 0 else k / 2 for k in range(50)] + [1.5, np.nan]
    np.testing.assert_array_equal(y, expected_y)


@pytest.mark.parametrize("count", [1, 7, 8, 9, 1023, 1024, 1025, 4097, 8192 + 1024 + 15])
def test_every_row_of_every_batch_size_is_stored_in_order(store, count):
    """Batches are cut into power-of-two INSERT statements (SQLite) or one COPY."""
    ds = DataSet("sizes", [ParamSpec("x", np.float64), ParamSpec("s", np.str_)], store=store)
    for k in range(count):
        ds.add_result(x=k * 0.5, s=f"r{k}")
    ds.flush()
    ds.add_results({"x": np.arange(count) * -1.0, "s": [f"b{k}" for k in range(count)]})
    x, s = ds.get_data("x", "s")
    assert x.tolist() == [k * 0.5 for k in range(count)] + [-float(k) for k in range(count)]
    assert s.tolist() == [f"r{k}" for k in range(count)] + [f"b{k}" for k in range(count)]


def test_wide_rows_use_smaller_statements(store):
    """40 parameters: 1,024 rows a statement would pass SQLite's parameter limit."""
    specs = [ParamSpec(f"p{j}", np.float64) for j in range(40)]
    ds = DataSet("wide", specs, store=store)
    for k in range(1500):
        ds.add_result(**{f"p{j}": k + j / 100 for j in range(40)})
    arrays = ds.get_data()
    assert len(arrays) == 40
    for j, column in enumerate(arrays):
        assert column.tolist() == [k + j / 100 for k in range(1500)]


@pytest.mark.parametrize("points", [16, 128, 1024])  # 128 B, 1 KiB (executemany), 8 KiB a row
def test_big_rows_are_stored_in_order_on_either_statement_shape(store, points, monkeypatch):
    """Rows carrying 1 KiB or more of arrays go in through executemany on SQLite;
    smaller ones through multi-row INSERTs.  Both keep every row, in order, bit for
    bit, on the row-by-row path and the bulk one."""
    from qdataset.store import sqlite

    shapes: list[int] = []
    values_sql = sqlite.SqliteDialect._values_sql

    def spy(self, table, run, columns, rows):
        shapes.append(rows)
        return values_sql(self, table, run, columns, rows)

    monkeypatch.setattr(sqlite.SqliteDialect, "_values_sql", spy)
    count = 300
    traces = _awkward_floats(count * points)[:count * points]
    traces = np.resize(traces, (count, points))
    ds = DataSet("traces", [ParamSpec("s", np.float64),
                            ParamSpec("trace", np.float64, shape=(points,))], store=store)
    for k in range(count):
        ds.add_result(s=float(k), trace=traces[k])
    ds.flush()
    ds.add_results({"s": np.arange(count) + 0.5, "trace": traces[::-1]})
    s, trace = ds.get_data("s", "trace")
    assert s.tolist() == list(range(count)) + [k + 0.5 for k in range(count)]
    expected = np.concatenate([traces, traces[::-1]])
    assert trace.shape == expected.shape
    assert trace.view(np.uint64).tolist() == expected.view(np.uint64).tolist()  # bit for bit
    if store.dialect == "sqlite":
        if points * 8 >= 1024:
            assert set(shapes) == {1}  # one-row statements, executemany
        else:
            assert max(shapes) >= 128  # multi-row statements


# -- the binary COPY format itself (no server needed) ------------------------------------------


def test_binary_copy_payload_layout():
    payload = binary_copy_payload([[7], [2.5], [-3], [1]], ["i", "f", "i", "b"])
    header = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
    row = struct.pack(">h", 4) + struct.pack(">iq", 8, 7) + struct.pack(">id", 8, 2.5) \
        + struct.pack(">iq", 8, -3) + struct.pack(">ih", 2, 1)
    assert payload == header + row + struct.pack(">h", -1)


@pytest.mark.parametrize("columns, kinds", [
    ([[1, 2], [1.0, None]], ["i", "f"]),  # a NULL
    ([[1, 2], ["a", "b"]], ["i", "U"]),  # text
    ([[1, 2], [b"a", b"b"]], ["i", None]),  # raw bytes (arrays, complex, ...)
])
def test_binary_copy_payload_declines_what_it_cannot_carry(columns, kinds):
    assert binary_copy_payload(columns, kinds) is None


def test_the_fast_paths_are_really_taken(store, monkeypatch):
    """A silent fallback to the slow paths would pass every test above: check it is not."""
    from qdataset.store import postgresql, sqlite

    taken: list[object] = []
    if store.dialect == "postgresql":
        def spy(columns, kinds):
            payload = binary_copy_payload(columns, kinds)
            taken.append(payload is not None)
            return payload

        monkeypatch.setattr(postgresql, "binary_copy_payload", spy)
    else:
        values_sql = sqlite.SqliteDialect._values_sql

        def spy(self, table, run, columns, rows):
            taken.append(rows)
            return values_sql(self, table, run, columns, rows)

        monkeypatch.setattr(sqlite.SqliteDialect, "_values_sql", spy)
    ds = DataSet("spy", NUMBER_SPECS, store=store)
    columns = _number_columns(10)
    n = len(columns["f"])  # 21 rows: 16 in one statement, 4 + 1 row by row on SQLite
    ds.add_result(**{name: values[0] for name, values in columns.items()})
    ds.flush()
    ds.add_results(columns)
    if store.dialect == "postgresql":
        assert taken == [True, True]  # one binary COPY per write
    else:
        assert taken == [1, 16, 1] and n == 21
    _assert_same(ds, {name: np.concatenate([v[:1], v]) for name, v in columns.items()})
