"""parse_bool / parse_int / parse_real: ours against patroni.utils 4.1.5.

Known difference: Python's ints are unbounded; ours are 64-bit, so a value
whose result does not fit in an i64 parses as None here (Python returns the
big int, or raises OverflowError for an infinite double). The strategies stay
inside i64 and the overflow case is pinned by its own test.
"""
import math

import patroni_rs
from hypothesis import example, given, settings, strategies as st
from patroni import utils

BASE_UNITS = [None, "B", "kB", "MB", "8kB", "16MB", "ms", "s", "min", "16384kB", "0x10kB", "us", "GB"]
UNITS = ["", "B", "kB", "MB", "GB", "TB", "mb", "KB", "ms", "s", "min", "h", "d", "us", "x", "e", "E5"]
NUMBERS = st.one_of(
    st.integers(-10**12, 10**12).map(str),
    st.integers(0, 0xFFFFFF).map(lambda i: "0x%x" % i),
    st.integers(0, 0o7777).map(lambda i: "0%o" % i),
    st.floats(-1e9, 1e9, allow_nan=False).map(repr),
    st.sampled_from(["", ".", ".5", "5.", "-.5e3", "1e3", "1e-3", "+7", "-0", "0x", "08", "0.0005", "1.5", "2.5"]),
)
TEXT = st.builds(
    lambda lead, num, sp, unit, trail: lead + num + sp + unit + trail,
    st.sampled_from(["", " ", "\t"]),
    NUMBERS,
    st.sampled_from(["", " ", "  "]),
    st.sampled_from(UNITS),
    st.sampled_from(["", " ", "\n"]),
)
SCALARS = st.one_of(TEXT, st.integers(-10**12, 10**12), st.booleans(), st.none(),
                    st.floats(-1e9, 1e9, allow_nan=False), st.text(max_size=8))


def same(a, b):
    if a is None or b is None:
        return a is b
    if isinstance(a, float) or isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-12)
    return a == b


def test_golden_vectors(golden):
    import json

    data = json.loads((golden / "config_env" / "env_and_yaml_parsing.json").read_text())
    parsers = data["patroni_utils_parsers"]
    for text, want in parsers["parse_bool"].items():
        assert patroni_rs.parse_bool(text) is want, text
    bases = {"parse_int_unit_B": "B", "parse_int_unit_kB": "kB", "parse_int_unit_s": "s", "parse_int_no_unit": None}
    for section, base in bases.items():
        for text, want in parsers[section].items():
            assert patroni_rs.parse_int(text, base) == want, (section, text)


@settings(max_examples=1500, deadline=None)
@given(SCALARS, st.sampled_from(BASE_UNITS))
@example("4097.5kB", "kB")
@example(" 0x400 MB ", "16384kB")
def test_parse_int_matches_patroni(value, base):
    try:
        want = utils.parse_int(value, base)
    except OverflowError:  # round(inf) in Python
        want = None
    if want is not None and not -2**63 <= want < 2**63:
        want = None  # documented: ours is 64-bit
    assert same(patroni_rs.parse_int(value, base), want), (value, base)


@settings(max_examples=1000, deadline=None)
@given(SCALARS, st.sampled_from(BASE_UNITS))
@example("0.00051ms", "ms")
def test_parse_real_matches_patroni(value, base):
    assert same(patroni_rs.parse_real(value, base), utils.parse_real(value, base)), (value, base)


@settings(max_examples=500, deadline=None)
@given(st.one_of(st.sampled_from(["on", "OFF", "Yes", "nO", "TRUE", "false", "1", "0", "y", "t", ""]),
                 st.text(max_size=6), st.integers(-2, 2), st.booleans(), st.none()))
def test_parse_bool_matches_patroni(value):
    assert patroni_rs.parse_bool(value) is utils.parse_bool(value), value


def test_overflow_is_none_not_a_crash():
    assert patroni_rs.parse_int("1e400") is None
    assert patroni_rs.parse_int("99999999999999999999999") is None
    assert patroni_rs.parse_int("1TB", "0kB") is None


def test_float_repr_at_every_binade_edge():
    """Shortest round-trip digits with Python's choice between equally short
    strings: next to powers of two the round-trip interval is lopsided."""
    import struct
    checked = 0
    for e in range(-1074, 1024):
        base = 2.0 ** e if e > -1023 else 5e-324 * 2 ** (e + 1074)
        bits = struct.unpack("<Q", struct.pack("<d", base))[0]
        for delta in (-1, 0, 1):
            x = struct.unpack("<d", struct.pack("<Q", (bits + delta) % 2**64))[0]
            if x != x or x in (float("inf"), float("-inf")):
                continue
            for v in (x, -x):
                assert patroni_rs.float_repr(v) == repr(v), v
                checked += 1
    assert checked > 10000


@settings(max_examples=3000, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False))
@example(562949953421312.25)
@example(5.9604644775390625e-08)
def test_float_repr_matches_python(x):
    assert patroni_rs.float_repr(x) == repr(x)
