import subprocess
import sys

import greenprof

HEAVY = (
    "torch",
    "tensorflow",
    "keras",
    "textual",
    "pynvml",
    "prometheus_client",
    "codecarbon",
    "pandas",
    "numpy",
    "psutil",
    "platformdirs",
)


def test_import_greenprof_loads_no_framework_ui_or_vendor_library() -> None:
    code = f"import sys, greenprof; print(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_the_contract_names_are_exported() -> None:
    for name in (
        "Profiler",
        "profile",
        "RunStore",
        "Reading",
        "StepRecord",
        "RunInfo",
        "GreenprofError",
        "current_profiler",
    ):
        assert name in greenprof.__all__
        assert hasattr(greenprof, name)
    assert greenprof.__version__
