"""The typed NVML API: it names real pynvml functions and NVML's constants, and the
shipped stand-in implements all of it."""

from __future__ import annotations

import inspect

import pynvml
import pytest

from greenprof.sensors import nvml_api
from greenprof.sensors.nvml_api import API_FUNCTIONS, field_value, init_failure, is_unsupported
from greenprof.sensors.testing import ScriptedNvml


def test_every_call_greenprof_makes_is_a_real_pynvml_function() -> None:
    assert "nvmlDeviceGetTotalEnergyConsumption" in API_FUNCTIONS
    assert len(API_FUNCTIONS) == 18  # 17 functions and NVMLError
    for name in API_FUNCTIONS:
        assert callable(getattr(pynvml, name)), name


def test_the_protocol_takes_as_many_arguments_as_pynvml() -> None:
    for name in API_FUNCTIONS:
        if name == "NVMLError":
            continue
        ours = inspect.signature(getattr(nvml_api.NvmlApi, name)).parameters
        theirs = inspect.signature(getattr(pynvml, name)).parameters
        required = [p for p in theirs.values() if p.default is inspect.Parameter.empty]
        assert len(ours) - 1 == len(required), name  # less self


@pytest.mark.parametrize(
    "name",
    [
        "NVML_SUCCESS",
        "NVML_ERROR_NOT_SUPPORTED",
        "NVML_ERROR_NOT_FOUND",
        "NVML_ERROR_DRIVER_NOT_LOADED",
        "NVML_ERROR_LIBRARY_NOT_FOUND",
        "NVML_ERROR_FUNCTION_NOT_FOUND",
        "NVML_FI_DEV_POWER_INSTANT",
        "NVML_TEMPERATURE_GPU",
    ],
)
def test_the_constants_are_nvml_h_values(name: str) -> None:
    assert getattr(nvml_api, name) == getattr(pynvml, name)


def test_the_value_union_members_are_in_nvml_h_order() -> None:
    members = [name for name, _ in pynvml.c_nvmlValue_t._fields_]
    assert list(nvml_api.VALUE_TYPES) == members
    assert members.index("ullVal") == pynvml.NVML_VALUE_TYPE_UNSIGNED_LONG_LONG


def test_the_stand_in_implements_every_call() -> None:
    for name in API_FUNCTIONS:
        assert hasattr(ScriptedNvml, name), name


def test_a_field_value_is_read_from_the_member_its_type_names() -> None:
    field = pynvml.c_nvmlFieldValue_t()
    field.nvmlReturn = pynvml.NVML_SUCCESS
    field.valueType = pynvml.NVML_VALUE_TYPE_DOUBLE
    field.value.dVal = 123.5
    assert field_value(field) == 123.5
    field.valueType = pynvml.NVML_VALUE_TYPE_UNSIGNED_LONG_LONG
    field.value.ullVal = 2**40
    assert field_value(field) == 2.0**40
    field.nvmlReturn = pynvml.NVML_ERROR_NOT_SUPPORTED
    assert field_value(field) is None


def test_errors_are_told_apart_by_their_nvml_code() -> None:
    assert is_unsupported(pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED))
    assert is_unsupported(pynvml.NVMLError(pynvml.NVML_ERROR_FUNCTION_NOT_FOUND))
    assert not is_unsupported(pynvml.NVMLError(pynvml.NVML_ERROR_GPU_IS_LOST))
    assert not is_unsupported(ValueError("not NVML"))
    missing = init_failure(pynvml.NVMLError(pynvml.NVML_ERROR_LIBRARY_NOT_FOUND))
    assert missing == "NVML not available (libnvidia-ml.so.1 not found: no NVIDIA driver)"
    assert "driver is not loaded" in init_failure(
        pynvml.NVMLError(pynvml.NVML_ERROR_DRIVER_NOT_LOADED)
    )
