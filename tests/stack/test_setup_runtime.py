"""`bin/setup --runtime`, the first half of the README's `bin/up`, in a copy of the
checkout: it makes `.venv` with the runtime dependencies and no dev tool, and the
programs start from it. (`bin/up` itself runs in tests/stack/test_cdn_up.py.)"""

from __future__ import annotations

import shutil
import subprocess

import pytest

from doc_commands import page

from .conftest import ROOT
from .test_runtime_venv import DEV_ONLY


@pytest.mark.timeout(1800)
def test_bin_setup_runtime_installs_the_runtime_only(tmp_path):
    (line,) = [c for c in page("README.md").split("`") if c.startswith("bin/setup --runtime")]
    checkout = tmp_path / "checkout"
    for name in ("src", "bin"):
        shutil.copytree(ROOT / name, checkout / name,
                        ignore=shutil.ignore_patterns("*.egg-info", "__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, checkout / name)
    done = subprocess.run(["bash", "-c", line], cwd=checkout, capture_output=True, text=True,
                          timeout=1500)
    assert done.returncode == 0, done.stdout + done.stderr
    python = checkout / ".venv" / "bin" / "python"
    for program in ("cdn", "geodns", "healthcheck", "edge"):
        helped = subprocess.run([str(checkout / ".venv" / "bin" / program), "--help"],
                                capture_output=True, text=True, timeout=120)
        assert helped.returncode == 0 and "usage:" in helped.stdout, helped.stderr
    for module in DEV_ONLY:
        found = subprocess.run([str(python), "-c", f"import {module}"], capture_output=True,
                               timeout=60)
        assert found.returncode != 0, f"{module} is a dev tool, installed by --runtime"
    # run again: it is quick and installs nothing when done
    again = subprocess.run(["bash", "-c", line], cwd=checkout, capture_output=True,
                           text=True, timeout=120)
    assert again.returncode == 0 and not again.stdout, again.stdout + again.stderr
