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
        "ProfilerConfig",
        "ProfilerStats",
    ):
        assert name in greenprof.__all__
        assert hasattr(greenprof, name)
    assert greenprof.__version__


def test_the_profiler_keeps_its_documented_surface() -> None:
    prof = greenprof.Profiler("api", sensors=[])
    for name in ("start", "stop", "step", "step_begin", "step_end", "steps", "epoch_begin"):
        assert callable(getattr(prof, name))
    for name in ("note", "set_framework", "stats", "from_config", "running", "energy_j"):
        assert hasattr(prof, name)
    assert (prof.name, prof.run_id, prof.devices) == ("api", None, ())
    assert prof.stats().running is False


def test_the_core_never_imports_the_exporters() -> None:
    code = (
        "import sys, greenprof; p = greenprof.Profiler('x', sensors=[]); p.start(); p.stop(); "
        "print(' '.join(m for m in sys.modules if m.startswith('greenprof.exporters')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
