"""Shared fixtures: paths to the golden captures and to our binary."""
import os
import pathlib

import pytest
from hypothesis import settings

# CI runs derandomized: a submission must not fail on a case that a previous
# run never met. Locally (and with HYPOTHESIS_PROFILE=explore) hypothesis
# draws new cases every run, which is where new differences are found.
settings.register_profile("ci", derandomize=True, print_blob=True)
settings.register_profile("explore", print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "explore"))

ROOT = pathlib.Path(__file__).resolve().parent.parent
SHARED = pathlib.Path(os.environ.get("PATRONI_RS_SHARED", ROOT.parent / "shared"))
GOLDEN = SHARED / "compat" / "golden"


def patroni_binary() -> pathlib.Path:
    """Our `patroni` binary; PATRONI_RS_BIN overrides the default build path."""
    env = os.environ.get("PATRONI_RS_BIN")
    if env:
        return pathlib.Path(env)
    target = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    for profile in ("release", "debug"):
        p = target / profile / "patroni"
        if p.exists():
            return p
    raise RuntimeError("build the daemon first: cargo build --release")


@pytest.fixture(scope="session")
def golden() -> pathlib.Path:
    if not GOLDEN.is_dir():
        pytest.fail(f"golden captures not found at {GOLDEN} (set PATRONI_RS_SHARED)")
    return GOLDEN


@pytest.fixture(scope="session")
def binary() -> pathlib.Path:
    return patroni_binary()
