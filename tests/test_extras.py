"""The core install (pyproject.toml's dependencies) trains networks; what an extra adds is
imported only when it is used, and a missing extra is an error naming it."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from delayprop._util import optional_import

SRC = Path(__file__).resolve().parents[1] / "src"

#: the top-level modules of the extras and of the test tools, absent from a core install
NOT_IN_CORE = ("matplotlib", "h5py", "scipy", "pandas", "sklearn", "tensorboard", "nir",
               "nirtorch", "norse")  # fmt: skip


def test_a_missing_module_names_its_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if not installed
    with pytest.raises(ImportError, match=r"plotting needs the module matplotlib, which is not "
                       r"installed: pip install 'delayprop\[plot\]'"):  # fmt: skip
        optional_import("matplotlib", "plot", "plotting")


def test_core_install_trains_and_names_the_missing_extras(tmp_path):
    """In a process that cannot import the extras: the package imports, the command line
    trains Yin-Yang, and plotting and reading SHD files say which extra to install."""
    script = textwrap.dedent(f"""
        import sys

        sys.modules.update(dict.fromkeys({NOT_IN_CORE!r}))  # None: import fails, as if absent
        from delayprop.cli import main

        out = {str(tmp_path / "run")!r}
        assert main(["train", "yinyang", "--out", out, "--quiet", "--set", "train.epochs=1",
                     "train.max_batches=2"]) == 0
        assert main(["plot", out]) == 2
        from delayprop.data.shd import SHD, read_heidelberg_h5
        try:
            read_heidelberg_h5({str(tmp_path / "x.h5")!r}, SHD)
        except ImportError as err:
            print(err)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env={"PYTHONPATH": str(SRC), "NUMBA_NUM_THREADS": "1",
                               "PATH": "/usr/bin:/bin"}, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "delayprop plot: error: plotting needs the module matplotlib" in done.stderr
    assert "pip install 'delayprop[plot]'" in done.stderr
    assert "reading SHD and SSC files needs the module h5py" in done.stdout
    assert "pip install 'delayprop[data]'" in done.stdout
