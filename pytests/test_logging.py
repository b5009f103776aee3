"""Differential tests: our log lines against Python's `logging` and Patroni's
`PatroniLogger` formatter set-up, on the same records.

Every comparison is exact (byte for byte), under fixed time zones.
"""
import logging
import os
import re
import subprocess
import sys
import time

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import patroni_rs
from patroni.log import PatroniFileHandler, PatroniLogger

ZONES = ["UTC", "America/St_Johns", "Asia/Kolkata"]

DEFAULT_FORMAT = "%(asctime)s %(levelname)s: %(message)s"


@pytest.fixture(params=ZONES, autouse=True)
def zone(request):
    """Run each test under a fixed TZ; Python and Rust share the C library's zone state."""
    old = os.environ.get("TZ")
    os.environ["TZ"] = request.param
    time.tzset()
    yield request.param
    if old is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = old
    time.tzset()


def make_record(**kw):
    """A record dict for the bridge, and the equivalent Python LogRecord as
    Patroni's queue handler hands it to the final formatter."""
    d = {
        "name": "patroni.ha",
        "levelno": logging.INFO,
        "msg": "no action. I am (postgresql0), the leader with the lock",
        "pathname": "/usr/lib/python3/dist-packages/patroni/ha.py",
        "lineno": 2012,
        "funcName": "run_cycle",
        "created": 1763781020.123456,
        "relativeCreated": 86412.53,
        "thread": 140234567890123,
        "threadName": "MainThread",
        "process": 4242,
        "processName": "MainProcess",
    }
    d.update(kw)
    r = logging.LogRecord(d["name"], d["levelno"], d["pathname"], d["lineno"], d["msg"], None, None,
                          func=d["funcName"])
    r.created = d["created"]
    r.msecs = int((r.created - int(r.created)) * 1000) + 0.0
    r.relativeCreated = d["relativeCreated"]
    r.thread = d["thread"]
    r.threadName = d["threadName"]
    r.process = d["process"]
    r.processName = d["processName"]
    # What QueueHandler._put_record does before the record reaches the handler.
    logging.Formatter().format(r)
    r.msg = r.message
    r.args = None
    r.exc_info = None
    r.exc_text = d.get("exc_text")
    return d, r


def patroni_formatter(config):
    """The formatter PatroniLogger builds for a `log` section."""
    logger = PatroniLogger.__new__(PatroniLogger)
    return PatroniLogger._get_formatter(logger, config)


def python_line(fmt, datefmt, record):
    """Python's output, or the exception type when it cannot format."""
    try:
        return logging.Formatter(fmt, datefmt).format(record)
    except (ValueError, TypeError, KeyError, OverflowError) as e:
        return type(e)


def rust_line(fmt, datefmt, d):
    try:
        return patroni_rs.format_record(fmt, datefmt, d)
    except ValueError as e:
        return e


# ---------------------------------------------------------------- plain format

CUSTOM_FORMATS = [
    DEFAULT_FORMAT,
    "%(asctime)s %(levelname)-8s %(name)s [%(module)s:%(funcName)s:%(lineno)d] %(message)s",
    "%(created)f %(created).3f %(created)s %(msecs)d %(msecs)03d %(msecs)s",
    "%(relativeCreated)d %(relativeCreated).2f %(relativeCreated)e %(relativeCreated)g %(relativeCreated)G",
    "%(process)d %(processName)s %(thread)d %(thread)x %(thread)#X %(threadName)s",
    "%(pathname)s %(filename)s %(levelno)5d|%(levelno)-5d|%(levelno)05d|%(levelno)+d|%(levelno) d",
    "%(message)r %(message)a %(name).4s %(name)20s %(name)-20s| 100%%",
    "%(levelname)s %(exc_info)s %(exc_text)s %(stack_info)s %(args)s",
    "%(asctime)s,%(msecs)03d %(levelname)s %(message)s",
    "%(levelno)o %(levelno)#o %(levelno).4d %(levelno)8.4d %(lineno)ld %(created)12.1f|%(created)-20.2e|",
]

DATEFORMATS = [None, "", "%Y-%m-%dT%H:%M:%S%z", "%d/%b/%Y %H:%M:%S %Z", "%s", "%j %U %a %p %I",
               "%H:%M:%S.%f %", "%-d %_H %^a %#Z %Q", "plain text, no directives"]


@pytest.mark.parametrize("fmt", CUSTOM_FORMATS)
@pytest.mark.parametrize("datefmt", DATEFORMATS)
def test_plain_formats_match_python(fmt, datefmt):
    for created in (1763781020.123456, 0.0, 1700000000.9999, 951782400.5, 2147483648.001):
        d, r = make_record(created=created)
        assert rust_line(fmt, datefmt, d) == python_line(fmt, datefmt, r)


def test_every_flag_width_precision_combination(zone):
    """Exhaustive over the spec grammar for one attribute of each type."""
    if zone != "UTC":
        pytest.skip("zone-independent")
    d, r = make_record(created=1763781020.987654, relativeCreated=0.000123456, lineno=7)
    checked = 0
    for attr in ("lineno", "created", "msecs", "relativeCreated", "funcName"):
        for flags in ("", "-", "0", "+", " ", "#", "-0", "+0", "#0", " 0", "-+#"):
            for width in ("", "3", "15"):
                for prec in ("", ".", ".0", ".2", ".9"):
                    for conv in "sradiuxXoeEfFgG":
                        fmt = "[%({}){}{}{}{}]".format(attr, flags, width, prec, conv)
                        want = python_line(fmt, None, r)
                        got = rust_line(fmt, None, d)
                        if isinstance(want, type):
                            assert isinstance(got, ValueError), fmt
                        else:
                            assert got == want, fmt
                            checked += 1
    assert checked > 3000


def test_default_asctime_layout_is_fixed():
    """The acceptance harness reads the level name at a fixed column."""
    d, r = make_record(created=1763781020.25)
    line = patroni_rs.format_record(DEFAULT_FORMAT, None, d)
    assert line == logging.Formatter(DEFAULT_FORMAT).format(r)
    assert line[23:29] == " INFO:"
    assert line[19:23] == ",250"


@pytest.mark.parametrize("fmt", [
    "no placeholder at all",
    "%(message)s %(user)s",
    "%(message)d",
    "%(created)x",
    "%(message)s %",
    "%(message)s %s",
    "%(message)y",
    "%(lineno)*d",
])
def test_formats_python_cannot_use_are_refused(fmt):
    d, r = make_record()
    assert isinstance(python_line(fmt, None, r), type)
    with pytest.raises(ValueError):
        patroni_rs.format_record(fmt, None, d)


ATTRS = {
    "name": "s", "levelname": "s", "message": "s", "msg": "s", "pathname": "s", "filename": "s",
    "module": "s", "funcName": "s", "threadName": "s", "processName": "s", "asctime": "s",
    "levelno": "d", "lineno": "d", "process": "d", "thread": "d",
    "created": "f", "msecs": "f", "relativeCreated": "f",
}
# Conversions Python accepts for each attribute type; 'c' and the cross-type
# ones are drawn now and then so that both sides' refusals are compared too.
CONVERSIONS = {
    "s": "sra",
    "d": "sradiuxXoeEfFgG",
    "f": "sradiufFeEgG",
}
ALL_CONVERSIONS = "sradiuxXoeEfFgGcy"


def _placeholder(attr):
    conv = st.one_of(st.sampled_from(CONVERSIONS[ATTRS[attr]]), st.sampled_from(ALL_CONVERSIONS))
    return st.builds(
        lambda flags, width, prec, conv: "%({}){}{}{}{}".format(attr, flags, width, prec, conv),
        st.text(alphabet="-+ #0", max_size=3),
        st.sampled_from(["", "1", "5", "12", "30"]),
        st.sampled_from(["", ".0", ".1", ".3", ".12"]),
        conv,
    )


PERCENT_C = re.compile(r"%\([^)]*\)[-+ #0]*\d*(\.\d*)?c")
PERCENT_R = re.compile(r"%\((msg|message)\)[-+ #0]*\d*(\.\d*)?r")
placeholder = st.sampled_from(sorted(ATTRS)).flatmap(_placeholder)
literal = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="%"), max_size=8)
format_strings = st.lists(st.one_of(placeholder, literal, st.just("%%")), min_size=1, max_size=6).map("".join)
messages = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=60)
timestamps = st.floats(min_value=0, max_value=4102444800, allow_nan=False, allow_infinity=False)
levels = st.sampled_from([5, 10, 20, 25, 30, 40, 50])


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(fmt=format_strings, msg=messages, created=timestamps, levelno=levels,
       datefmt=st.sampled_from([None, "%Y-%m-%d %H:%M:%S", "%H:%M:%S %z", "%c"]))
def test_generated_formats_match_python(fmt, msg, created, levelno, datefmt):
    d, r = make_record(msg=msg, created=created, levelno=levelno, relativeCreated=created / 7)
    want = python_line(fmt, datefmt, r)
    got = rust_line(fmt, datefmt, d)
    # Documented difference: %c is refused up front (Python renders chr(int)
    # or fails per record, depending on the value).
    if isinstance(want, type) or PERCENT_C.search(fmt):
        assert isinstance(got, ValueError), (fmt, got)
        return
    # Documented approximation: %r escapes the common non-printable
    # non-ASCII characters (controls, format characters, odd spaces), not
    # every one the Unicode database knows (e.g. unassigned code points).
    if PERCENT_R.search(fmt) and any(ord(c) > 127 and not c.isprintable() for c in msg):
        return
    assert got == want, fmt


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(msg=messages, created=timestamps, levelno=levels, name=st.sampled_from(
    ["patroni", "patroni.ha", "patroni.dcs.etcd3", "urllib3.connectionpool"]))
def test_default_format_on_generated_records(msg, created, levelno, name):
    d, r = make_record(msg=msg, created=created, levelno=levelno, name=name)
    assert patroni_rs.format_with_settings({}, d) == patroni_formatter({}).format(r)


# ----------------------------------------------------------------- json format

JSON_SECTIONS = [
    {"type": "json"},
    {"type": "json", "format": "%(asctime)s %(levelname)s %(message)s %(created)f %(lineno)d"},
    {"type": "json", "format": "%(name)s %(nosuchfield)s %(exc_info)s %(args)s %(msecs)s %(thread)s"},
    {"type": "json", "format": ["asctime", {"levelname": "level"}, "message", {"name": "logger"}],
     "dateformat": "%Y-%m-%dT%H:%M:%S%z"},
    {"type": "json", "format": ["message", "message", {"message": "msg"}], "static_fields": {"app": "patroni"}},
    {"type": "json", "format": ["levelname", {"levelname": 5}, 7, "relativeCreated", "process"],
     "static_fields": {"levelname": "overridden", "n": 1, "f": 1.5, "big": 1e20, "t": True, "none": None,
                       "list": [1, "two", {"x": "y"}], "nested": {"a": {"b": [False]}}}},
    {"type": "json", "format": "%(message)s", "static_fields": {"unicode": "naïve ☃ 😀", "quote": "a\"b\\c\n"}},
    {"type": "json", "format": {"not": "valid"}},
    {"type": "json", "format": [], "dateformat": ""},
    {"type": "plain", "format": ["message"]},
    {"type": "plain", "dateformat": 5},
    {"type": "json", "format": ["asctime", "message"], "dateformat": ["bad"]},
    {"type": "json", "format": ["levelname", {"message": "m"}], "static_fields": ["not", "a", "dict"]},
    {"type": "json", "format": "%(levelname)s %(message)s", "static_fields": 5},
    {"type": "plain", "static_fields": ["ignored"]},
    {"type": "json", "format": ["message", "exc_info", {"exc_info": "error"}], "static_fields": {"exc_info": 1}},
    {"type": "plain", "format": "%(levelname)s %(exc_text)s %(message)s"},
]


TRACEBACK = 'Traceback (most recent call last):\n  File "x.py", line 1, in <module>\nValueError: boom'


@pytest.mark.parametrize("section", JSON_SECTIONS, ids=range(len(JSON_SECTIONS)))
def test_json_and_fallbacks_match_patroni(section, caplog):
    for msg, exc in (("started", None), ("it's \"quoted\"\n\ttabbed", TRACEBACK), ("unicode é 😀 \x7f \x00", None),
                     ("ends with newline\n", TRACEBACK)):
        d, r = make_record(msg=msg, exc_text=exc)
        with caplog.at_level(logging.WARNING, logger="patroni.log"):
            caplog.clear()
            want = patroni_formatter(section).format(r)
        assert patroni_rs.format_with_settings(section, d) == want
        ours = patroni_rs.parse_log_settings(section)
        logged = [rec for rec in caplog.records if rec.name == "patroni.log"]
        assert ours["warnings"] == [rec.getMessage() for rec in logged if rec.levelno == logging.WARNING]
        # Error texts embed a Python exception repr; only their presence is compared.
        assert len(ours["errors"]) == len([rec for rec in logged if rec.levelno == logging.ERROR])


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(msg=messages, created=timestamps, levelno=levels,
       fields=st.lists(st.sampled_from(sorted(ATTRS) + ["custom", "exc_info"]), min_size=1, max_size=5),
       static=st.dictionaries(st.text(max_size=5), st.one_of(
           st.none(), st.booleans(), st.integers(-2**63, 2**63 - 1), st.text(max_size=8),
           st.floats(allow_nan=False, allow_infinity=False)), max_size=3))
def test_generated_json_records_match_patroni(msg, created, levelno, fields, static):
    d, r = make_record(msg=msg, created=created, levelno=levelno)
    section = {"type": "json", "format": fields, "static_fields": static}
    assert patroni_rs.format_with_settings(section, d) == patroni_formatter(section).format(r)


# -------------------------------------------------------------------- settings

def test_settings_defaults():
    s = patroni_rs.parse_log_settings({})
    assert s["type"] == "plain"
    assert s["level"] == logging.INFO
    assert (s["max_queue_size"], s["file_size"], s["file_num"]) == (PatroniLogger.DEFAULT_MAX_QUEUE_SIZE,
                                                                    25000000, 4)
    assert s["traceback_debug"] is False and s["dir"] is None and s["mode"] is None


@pytest.mark.parametrize("level", ["DEBUG", "INFO", "WARN", "WARNING", "ERROR", "FATAL", "CRITICAL", "NOTSET", 15])
def test_levels_resolve_like_python(level):
    root = logging.getLogger("patroni-rs-level-probe")
    root.setLevel(level)
    assert patroni_rs.parse_log_settings({"level": level})["level"] == root.level


@pytest.mark.parametrize("level", ["info", "TRACE", "", "Warning"])
def test_unknown_levels_fail_like_python(level):
    with pytest.raises(ValueError):
        logging.getLogger("patroni-rs-level-probe").setLevel(level)
    with pytest.raises(ValueError, match="unknown level"):
        patroni_rs.parse_log_settings({"level": level})


# -------------------------------------------------------------- file rotation

def listing(path):
    return sorted((name, (path / name).read_bytes()) for name in os.listdir(path))


@pytest.mark.parametrize("file_size,file_num", [(200, 3), (1000, 1), (64, 0), (0, 4), (10, 2)])
def test_rotation_matches_rotating_file_handler(tmp_path, file_size, file_num):
    ours, theirs = tmp_path / "rust", tmp_path / "python"
    ours.mkdir()
    theirs.mkdir()
    fmt = "%(asctime)s %(levelname)s: %(message)s"
    records = [make_record(msg="message number %d %s" % (i, "é" * (i % 7)), created=1763781020.5 + i)
               for i in range(60)]

    handler = PatroniFileHandler(str(theirs / "patroni.log"), 0o640)
    handler.maxBytes = file_size
    handler.backupCount = file_num
    handler.setFormatter(logging.Formatter(fmt))
    for _, r in records:
        handler.handle(r)
    handler.close()

    section = {"dir": str(ours), "mode": 0o640, "file_size": file_size, "file_num": file_num,
               "format": fmt, "max_queue_size": 0}
    patroni_rs.write_records(section, [d for d, _ in records])

    assert listing(ours) == listing(theirs)
    for name in os.listdir(ours):
        assert (ours / name).stat().st_mode & 0o777 == 0o640


def test_default_destination_is_stderr(tmp_path):
    """Without log.dir the lines go to stderr, nothing to stdout."""
    script = (
        "import patroni_rs, sys\n"
        "patroni_rs.write_records({'format': '%(levelname)s %(name)s: %(message)s'}, "
        "[{'name': 'patroni.ha', 'levelno': 30, 'msg': 'to stderr'}])\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout == ""
    assert out.stderr == "WARNING patroni.ha: to stderr\n"


# --------------------------------------------------- heartbeat de-duplication

LOCK = "Lock owner: postgresql0; I am postgresql1"
HEARTBEAT = "no action. I am (postgresql1), a secondary, and following a leader (postgresql0)"
PAUSED = "PAUSE: no action. I am (postgresql1), a secondary"
OTHER = "following a different leader because I am not the healthiest node"


def run_patroni_logger(section, records):
    """Feed records through a real PatroniLogger thread (its queue and
    heartbeat filtering), as Patroni's daemon does."""
    root = logging.getLogger()
    old_level = root.level
    logger = PatroniLogger()
    try:
        logger.reload_config(section)
        logger.start()
        for r in records:
            logger._queue_handler.queue.put_nowait(r)
        logger._queue_handler.queue.put_nowait(None)
        logger.join()
        logger.log_handler.close()
    finally:
        root.removeHandler(logger._queue_handler)
        root.removeHandler(logger._proxy_handler)
        root.setLevel(old_level)


def compare_pipelines(tmp_path, section, messages):
    ours, theirs = tmp_path / "rust", tmp_path / "python"
    ours.mkdir()
    theirs.mkdir()
    records = [make_record(msg=m, thread=t, threadName="T%d" % t, created=1763781020.0 + i)
               for i, (m, t) in enumerate(messages)]
    base = {"format": "%(threadName)s %(message)s", "max_queue_size": 0}
    run_patroni_logger(dict(base, dir=str(theirs), **section), [r for _, r in records])
    patroni_rs.write_records(dict(base, dir=str(ours), **section), [d for d, _ in records])
    want = (theirs / "patroni.log").read_text()
    assert (ours / "patroni.log").read_text() == want
    return want


@pytest.mark.parametrize("dedup", [False, True])
def test_heartbeat_filtering_matches_patroni(tmp_path, dedup):
    messages = [(LOCK, 1), (HEARTBEAT, 1), (LOCK, 1), (HEARTBEAT, 1), (LOCK, 1), (OTHER, 1),
                (LOCK, 1), (HEARTBEAT, 2), (HEARTBEAT, 1), (LOCK, 1), (PAUSED, 1), (LOCK, 1), (PAUSED, 1),
                (LOCK, 2), (OTHER, 2), (LOCK, 1)]
    out = compare_pipelines(tmp_path, {"level": "INFO", "deduplicate_heartbeat_logs": dedup}, messages)
    assert LOCK in out and out.count(HEARTBEAT) == (3 if dedup else 4)


def test_heartbeat_filtering_only_at_info(tmp_path):
    messages = [(LOCK, 1), (HEARTBEAT, 1), (LOCK, 1), (HEARTBEAT, 1)]
    out = compare_pipelines(tmp_path, {"level": "DEBUG", "deduplicate_heartbeat_logs": True}, messages)
    assert out.count(LOCK) == 2


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(messages=st.lists(st.tuples(st.sampled_from([LOCK, HEARTBEAT, PAUSED, OTHER, HEARTBEAT + "!"]),
                                   st.sampled_from([1, 2])), max_size=25),
       dedup=st.booleans())
def test_generated_heartbeat_streams_match_patroni(tmp_path_factory, messages, dedup):
    compare_pipelines(tmp_path_factory.mktemp("hb"), {"level": "INFO", "deduplicate_heartbeat_logs": dedup},
                      messages)
