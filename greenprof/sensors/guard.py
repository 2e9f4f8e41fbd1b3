"""Readings validated at the sensor boundary, so one bad value never reaches attribution.

A sensor is any object with ``read()``; custom sensors return what they like, and real
hardware glitches (a NaN from a driver, a counter read that comes back 1 J low). Before
this guard one NaN made the store retry forever, and a counter read 1 J low on a 5 MJ
counter became a 5 MJ "reset" in one step. :class:`ReadingGuard` is a pure validator, one
per device, with no threads and no I/O: the sampler passes each raw read through
:meth:`ReadingGuard.check`, and the consumer only ever sees valid :class:`Reading`\\ s with
float fields, strictly increasing ``time_s`` and a non-decreasing ``energy_j`` counter.

Rules, in the order they are applied (the reason names are the keys of
:attr:`GuardStats.counts`):

1. Not a :class:`Reading` (``not_a_reading``), another device's reading
   (``wrong_device``), or ``time_s`` / ``energy_j`` / ``power_w`` not a real number — a
   bool, a string, ``None`` for ``time_s`` (``bad_type``) — reject the reading. Real
   numbers that are not floats (ints, ``numpy.float64``, ``Decimal``: anything with
   ``__float__`` that is not complex or boolean) are converted to float; numpy is never
   imported.
2. ``time_s`` not finite (``bad_time``), or not after the previous passed reading's
   (``time_backwards``; equal counts too): reject.
3. ``energy_j`` or ``power_w`` NaN, infinite or negative (``energy_invalid``,
   ``power_invalid``): that field is dropped (set to None); ``power_w`` above the
   device's ceiling (``power_above_ceiling``, see :func:`power_ceiling_w`): dropped. The
   optional details (utilisation, memory, temperature) are dropped when not finite or
   negative (``detail_invalid``; temperature may be negative). If neither energy nor
   power is left (the sensor gave none, or both were dropped): reject
   (``nothing_usable``).
4. The energy counter, compared with the last passed value (after any repair below):

   - A forward jump larger than the ceiling power could have produced
     (``counter_jump``): reject. The bound is sound for counters that update in jumps:
     the energy between two published values accrued after the last poll that still
     saw the older value, so ``ceiling × (t − that poll's time + JUMP_SLACK_S)`` bounds
     it (``JUMP_SLACK_S`` covers a read that lags its timestamp; before there is such a
     poll, ``FIRST_JUMP_SLACK_S``).
   - A declared wrap (``wrap_j``, the sensor's ``energy_wrap_j``) that makes the decrease
     a plausible forward step (``counter_wrap``, not a problem): unwrapped, passed on.
     :class:`~greenprof.sensors.rapl.RaplSensor` already unwraps ``max_energy_range_uj``
     itself, so its counter never decreases here.
   - A small step back — less than ``STEP_BACK_FRACTION`` of the counter *and* less than
     ``STEP_BACK_MAX_J`` (``counter_step_back``): a glitch, reject. Later reads below the
     last passed value are rejected the same way until the counter passes it again, so a
     persistent tiny step back loses no energy and never becomes a reset.
   - A larger drop is held back for one read (``counter_dip`` / ``counter_reset`` /
     ``counter_rebased`` decide on the next read of the device):

     - the next read is back at or above the last passed value → the drop was a one-off
       glitch (``counter_dip``): it is dropped, never passed on;
     - the next read continues from the new low value (at or above it, plausibly) → a
       genuine reset (a driver reload): both reads are passed on, *re-based* so the
       counter stays non-decreasing. When the new value is small enough to be energy
       since a restart from 0 (``ceiling × elapsed``), the counter continues from the
       last value plus the new one (``counter_reset``, the same energy that
       :func:`greenprof.energy.counter_delta` gives a reset); otherwise the origin is
       unknown and the counter continues from the last value (``counter_rebased``: the
       energy across the drop is counted as 0, not as the whole new counter value);
     - anything else, or a read without energy, or no next read: ``counter_dip``.

     Holding back adds at most one poll of latency, and only to the held read of that
     device; every other read passes at once.

Thresholds (named constants below): ceiling 10 kW per device, or 3 × a declared
``power_limit_w``; small step back < 1 % of the counter and < 1 kJ; jump slack 0.25 s
(1 s for the first step). As the counter passed on never decreases, the reset branch of
:func:`greenprof.energy.counter_delta` is no longer reached from the sampler.

Each rejection or repair is counted by reason (:class:`GuardStats`, a frozen snapshot with
the last message and the first and last problem times) and reported through the
optional ``on_problem`` callback, so the profiler can flag the device and the steps
around the time of the problem.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Final

from greenprof.records import DeviceInfo, Reading

if TYPE_CHECKING:
    from greenprof.sensors.base import Sensor

DEFAULT_POWER_CEILING_W: Final = 10_000.0
"""Power no single device draws (a whole 8-GPU node is about 10 kW): above it a power
value, or a counter step implying it, is a glitch."""
POWER_LIMIT_FACTOR: Final = 3.0
"""With a declared power limit (``info.power_limit_w``), the ceiling is this many times the
limit: GPUs exceed their limit for milliseconds, never three times over a poll."""
STEP_BACK_FRACTION: Final = 0.01
"""A counter decrease below 1 % of the counter value ..."""
STEP_BACK_MAX_J: Final = 1_000.0
"""... and below 1 kJ is a glitch, never a reset (a reset falls to about zero)."""
JUMP_SLACK_S: Final = 0.25
"""Added to the interval a forward counter step is checked over: a read may lag its
timestamp (a slow driver call) and counters publish with some delay."""
FIRST_JUMP_SLACK_S: Final = 1.0
"""The same for the first step, where the poll before the last update is unknown."""

NOT_A_READING: Final = "not_a_reading"
WRONG_DEVICE: Final = "wrong_device"
BAD_TYPE: Final = "bad_type"
BAD_TIME: Final = "bad_time"
TIME_BACKWARDS: Final = "time_backwards"
ENERGY_INVALID: Final = "energy_invalid"
POWER_INVALID: Final = "power_invalid"
POWER_ABOVE_CEILING: Final = "power_above_ceiling"
DETAIL_INVALID: Final = "detail_invalid"
NOTHING_USABLE: Final = "nothing_usable"
COUNTER_JUMP: Final = "counter_jump"
COUNTER_STEP_BACK: Final = "counter_step_back"
COUNTER_DIP: Final = "counter_dip"
COUNTER_RESET: Final = "counter_reset"
COUNTER_REBASED: Final = "counter_rebased"
COUNTER_WRAP: Final = "counter_wrap"
READ_ERROR: Final = "read_error"
"""Counted by the sampler: ``read()`` raised."""
READ_TIMEOUT: Final = "read_timeout"
"""Counted by the sampler: ``read()`` did not return within its bound (the sensor is wedged)."""

NOT_PROBLEMS: Final = frozenset({COUNTER_WRAP})
"""Reasons that are normal operation, counted but not a problem."""
REJECTING: Final = frozenset(
    {
        NOT_A_READING,
        WRONG_DEVICE,
        BAD_TYPE,
        BAD_TIME,
        TIME_BACKWARDS,
        NOTHING_USABLE,
        COUNTER_JUMP,
        COUNTER_STEP_BACK,
        COUNTER_DIP,
    }
)
"""Reasons where a whole reading was not passed on (the others drop a field or repair)."""


@dataclass(frozen=True, slots=True)
class GuardEvent:
    """One rejection or repair, as it happens."""

    device: str
    reason: str
    time_s: float | None
    """The reading's ``time_s`` when it had a usable one, else None."""
    message: str


@dataclass(frozen=True, slots=True)
class GuardStats:
    """A snapshot of one device's rejections and repairs (safe to hand to other threads)."""

    device: str
    counts: Mapping[str, int]
    """Reason → how many times (read-only)."""
    passed: int = 0
    """Readings passed on."""
    last_problem: str | None = None
    first_problem_s: float | None = None
    """``time_s`` of the first problem (the sampler's clock for read errors and timeouts)."""
    last_problem_s: float | None = None

    @property
    def problems(self) -> int:
        """Rejections and repairs, not counting normal events (wraps)."""
        return sum(n for reason, n in self.counts.items() if reason not in NOT_PROBLEMS)

    @property
    def rejected(self) -> int:
        """Readings not passed on (field repairs and resets are not counted)."""
        return sum(n for reason, n in self.counts.items() if reason in REJECTING)

    def count(self, reason: str) -> int:
        return self.counts.get(reason, 0)


def power_ceiling_w(info: DeviceInfo | None) -> float:
    """The most power a device may plausibly report: ``POWER_LIMIT_FACTOR`` × its
    declared limit, else ``DEFAULT_POWER_CEILING_W``."""
    limit = None if info is None else info.power_limit_w
    if limit is not None and math.isfinite(limit) and limit > 0:
        return POWER_LIMIT_FACTOR * limit
    return DEFAULT_POWER_CEILING_W


class _NotANumber(Exception):
    """A field that should be a real number is not one."""


def _real(value: object) -> float:
    """``value`` as a float (may be NaN/inf), or _NotANumber."""
    if type(value) is float:
        return value
    if isinstance(value, (bool, str, bytes)) or value is None:
        raise _NotANumber
    if isinstance(value, (int, float)):
        return float(value)
    # numpy scalars, Decimal, Fraction: anything with __float__ (without importing
    # numpy or numbers), except booleans and values with an imaginary part.
    name = type(value).__name__
    if name in ("bool_", "bool") or "complex" in name or not hasattr(type(value), "__float__"):
        raise _NotANumber
    try:
        if getattr(value, "imag", 0) != 0:
            raise _NotANumber
        result = float(value)  # type: ignore[arg-type]
    except Exception:
        raise _NotANumber from None
    return result


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


class ReadingGuard:
    """Validates and repairs one device's readings (pure; use from one thread at a time).

    Args:
        device: the device this guard checks (other devices' readings are rejected).
        ceiling_w: the power ceiling (see :func:`power_ceiling_w`).
        wrap_j: the value at which the device's raw counter wraps to 0, when it does.
        on_problem: called with each :class:`GuardEvent` (on the calling thread).

    Example::

        guard = ReadingGuard("gpu:0")
        for reading in guard.check(sensor.read()):
            consume(reading)
    """

    def __init__(
        self,
        device: str,
        *,
        ceiling_w: float = DEFAULT_POWER_CEILING_W,
        wrap_j: float | None = None,
        on_problem: Callable[[GuardEvent], None] | None = None,
    ) -> None:
        self.device = device
        self.ceiling_w = ceiling_w
        self.wrap_j = wrap_j if wrap_j is not None and wrap_j > 0 else None
        self._on_problem = on_problem
        self._counts: dict[str, int] = {}
        self._passed = 0
        self._last_problem: str | None = None
        self._first_problem_s: float | None = None
        self._last_problem_s: float | None = None
        self._last_time_s = -math.inf
        """``time_s`` of the last reading passed on or held back."""
        self._offset_j = 0.0
        """Added to the raw counter (wraps, re-based resets)."""
        self._last_out_j: float | None = None
        """The last counter value passed on (offset included)."""
        self._last_counter_s = -math.inf
        """``time_s`` of the last reading whose counter was passed on."""
        self._before_s: float | None = None
        """``time_s`` of the last passed poll that saw a value below ``_last_out_j``."""
        self._held: tuple[Reading, float] | None = None
        """A reading held back after a large drop, with its raw counter value."""
        self.last_good_s: float | None = None
        """``time_s`` of the last reading passed on."""

    @classmethod
    def for_sensor(
        cls, sensor: Sensor, *, on_problem: Callable[[GuardEvent], None] | None = None
    ) -> ReadingGuard:
        """A guard set up from what a sensor declares: ``device``, ``info.power_limit_w``
        (the ceiling) and ``energy_wrap_j`` (a raw counter's wrap value, or None)."""
        wrap = sensor.energy_wrap_j
        try:  # a third-party sensor may declare it as any number type, or a bad one
            wrap_j = None if wrap is None else _real(wrap)
        except _NotANumber:
            wrap_j = None
        return cls(
            sensor.device,
            ceiling_w=power_ceiling_w(sensor.info),
            wrap_j=wrap_j if wrap_j is not None and math.isfinite(wrap_j) and wrap_j > 0 else None,
            on_problem=on_problem,
        )

    # ------------------------------------------------------------------ results

    @property
    def holding(self) -> bool:
        """A reading is held back until the next read decides whether it was a reset."""
        return self._held is not None

    def stats(self) -> GuardStats:
        """A snapshot of the counts so far."""
        return GuardStats(
            device=self.device,
            counts=MappingProxyType(dict(self._counts)),
            passed=self._passed,
            last_problem=self._last_problem,
            first_problem_s=self._first_problem_s,
            last_problem_s=self._last_problem_s,
        )

    def record(self, reason: str, message: str, time_s: float | None = None) -> None:
        """Count a problem found outside the guard (the sampler's read errors and timeouts)."""
        self._counts[reason] = self._counts.get(reason, 0) + 1
        if reason in NOT_PROBLEMS:
            return
        self._last_problem = message
        if time_s is not None:
            if self._first_problem_s is None:
                self._first_problem_s = time_s
            self._last_problem_s = time_s
        if self._on_problem is not None:
            self._on_problem(GuardEvent(self.device, reason, time_s, message))

    # ------------------------------------------------------------------ checking

    def check(self, raw: object) -> list[Reading]:
        """The readings to pass on for one raw read: none (rejected or held back), the
        reading (validated, fields as floats, counter repaired), or a held-back reading
        followed by this one."""
        if not isinstance(raw, Reading):
            self.record(NOT_A_READING, f"{self.device}: read() returned {_short(raw)}")
            return []
        if raw.device != self.device:
            self.record(WRONG_DEVICE, f"{self.device}: got a reading of {raw.device!r}")
            return []
        try:
            time_s = _real(raw.time_s)
        except _NotANumber:
            self.record(BAD_TYPE, f"{self.device}: time_s is {_short(raw.time_s)}")
            return []
        if not math.isfinite(time_s):
            self.record(BAD_TIME, f"{self.device}: time_s is {time_s}")
            return []
        if time_s <= self._last_time_s:
            self.record(
                TIME_BACKWARDS,
                f"{self.device}: time_s {time_s} is not after the previous {self._last_time_s}",
                time_s,
            )
            return []
        try:
            energy_j = None if raw.energy_j is None else _real(raw.energy_j)
            power_w = None if raw.power_w is None else _real(raw.power_w)
        except _NotANumber:
            self.record(
                BAD_TYPE,
                f"{self.device}: energy_j={_short(raw.energy_j)}, power_w={_short(raw.power_w)}"
                " (numbers expected)",
                time_s,
            )
            return []
        changed = (
            time_s is not raw.time_s or energy_j is not raw.energy_j or power_w is not raw.power_w
        )
        if energy_j is not None and not (math.isfinite(energy_j) and energy_j >= 0.0):
            self.record(ENERGY_INVALID, f"{self.device}: energy_j is {energy_j}", time_s)
            energy_j, changed = None, True
        if power_w is not None:
            if not (math.isfinite(power_w) and power_w >= 0.0):
                self.record(POWER_INVALID, f"{self.device}: power_w is {power_w}", time_s)
                power_w, changed = None, True
            elif power_w > self.ceiling_w:
                self.record(
                    POWER_ABOVE_CEILING,
                    f"{self.device}: power_w {power_w:.0f} W is above {self.ceiling_w:.0f} W",
                    time_s,
                )
                power_w, changed = None, True
        details = (raw.utilization_pct, raw.memory_used_bytes, raw.temperature_c)
        if details != (None, None, None):
            clean = self._details(details, time_s)
            if any(a is not b for a, b in zip(clean, details, strict=True)):
                details, changed = clean, True
        if energy_j is None and power_w is None:
            self._drop_held()
            self.record(NOTHING_USABLE, f"{self.device}: no usable energy or power", time_s)
            return []
        reading = raw
        if changed:
            reading = Reading(self.device, time_s, energy_j, power_w, *details)
        if energy_j is None:
            self._drop_held()
            return self._pass([], reading)
        return self._counter(reading, energy_j)

    def _details(
        self, details: tuple[float | None, int | None, float | None], time_s: float
    ) -> tuple[float | None, int | None, float | None]:
        util, memory, temp = details
        bad: list[str] = []
        util_f: float | None = None
        if util is not None:
            try:
                util_f = _real(util)
            except _NotANumber:
                util_f = math.nan
            if not (math.isfinite(util_f) and util_f >= 0.0):
                bad.append(f"utilization_pct={_short(util)}")
                util_f = None
        memory_i: int | None = None
        if memory is not None:
            try:
                memory_f = _real(memory)
            except _NotANumber:
                memory_f = math.nan
            if math.isfinite(memory_f) and memory_f >= 0.0 and memory_f == int(memory_f):
                memory_i = memory if type(memory) is int else int(memory_f)
            else:
                bad.append(f"memory_used_bytes={_short(memory)}")
        temp_f: float | None = None
        if temp is not None:
            try:
                temp_f = _real(temp)
            except _NotANumber:
                temp_f = math.nan
            if not math.isfinite(temp_f):
                bad.append(f"temperature_c={_short(temp)}")
                temp_f = None
        if bad:
            self.record(DETAIL_INVALID, f"{self.device}: dropped {', '.join(bad)}", time_s)
        return util_f, memory_i, temp_f

    # ------------------------------------------------------------------ the counter

    def _allowance_j(self, since_s: float | None, time_s: float) -> float:
        """The most energy the ceiling power allows between ``since_s`` and ``time_s``."""
        if since_s is None:
            return self.ceiling_w * (time_s - self._last_counter_s + FIRST_JUMP_SLACK_S)
        return self.ceiling_w * (time_s - since_s + JUMP_SLACK_S)

    def _counter(self, reading: Reading, raw_j: float) -> list[Reading]:
        time_s = reading.time_s
        out: list[Reading] = []
        held = self._held
        if held is not None:
            self._held = None
            held_reading, held_raw_j = held
            last_j = self._last_out_j
            assert last_j is not None
            if raw_j + self._offset_j >= last_j:
                self._dip(held_reading, "recovered on the next read")
            elif raw_j >= held_raw_j and raw_j - held_raw_j <= self._allowance_j(
                held_reading.time_s, time_s
            ):
                self._rebase(held_reading, held_raw_j)
                self._accept(out, held_reading, held_raw_j)
            else:
                self._dip(held_reading, "the next read did not continue from it")
        last_j = self._last_out_j
        value_j = raw_j + self._offset_j
        if last_j is None:
            return self._accept(out, reading, raw_j)
        if value_j >= last_j:
            if value_j - last_j > self._allowance_j(self._before_s, time_s):
                self.record(
                    COUNTER_JUMP,
                    f"{self.device}: counter jumped {value_j - last_j:.0f} J in "
                    f"{time_s - self._last_counter_s:.3f} s (above {self.ceiling_w:.0f} W)",
                    time_s,
                )
                return out
            return self._accept(out, reading, raw_j)
        wrap_j = self.wrap_j
        if wrap_j is not None and 0 <= value_j + wrap_j - last_j <= self._allowance_j(
            self._before_s, time_s
        ):
            self._offset_j += wrap_j
            self.record(COUNTER_WRAP, f"{self.device}: counter wrapped at {wrap_j} J", time_s)
            return self._accept(out, reading, raw_j)
        drop_j = last_j - value_j
        if drop_j < STEP_BACK_FRACTION * last_j and drop_j < STEP_BACK_MAX_J:
            self.record(
                COUNTER_STEP_BACK,
                f"{self.device}: counter stepped back {drop_j:.6g} J (from {last_j:.6g} J)",
                time_s,
            )
            return out
        self._held = (reading, raw_j)
        self._last_time_s = time_s
        return out

    def _dip(self, held: Reading, why: str) -> None:
        self.record(
            COUNTER_DIP,
            f"{self.device}: counter dropped to {held.energy_j} J for one read ({why})",
            held.time_s,
        )

    def _drop_held(self) -> None:
        held, self._held = self._held, None
        if held is not None:
            self._dip(held[0], "no counter value on the next read")

    def _rebase(self, held: Reading, held_raw_j: float) -> None:
        """A confirmed reset at ``held``: choose the offset that keeps the counter rising."""
        last_j = self._last_out_j
        assert last_j is not None
        last_raw_j = last_j - self._offset_j
        if held_raw_j <= self._allowance_j(self._last_counter_s, held.time_s):
            self._offset_j = last_j  # restarted from 0: the new value is energy since then
            self.record(
                COUNTER_RESET,
                f"{self.device}: counter reset from {last_raw_j:.6g} to {held_raw_j:.6g} J"
                " (restart from 0)",
                held.time_s,
            )
        else:
            self._offset_j = last_j - held_raw_j  # unknown origin: nothing counted across it
            self.record(
                COUNTER_REBASED,
                f"{self.device}: counter fell to {held_raw_j:.6g} J and stayed there;"
                " energy across the drop counted as 0",
                held.time_s,
            )

    def _accept(self, out: list[Reading], reading: Reading, raw_j: float) -> list[Reading]:
        value_j = raw_j + self._offset_j
        if self._last_out_j is None or value_j > self._last_out_j:
            self._before_s = None if self._last_out_j is None else self._last_counter_s
            self._last_out_j = value_j
        self._last_counter_s = reading.time_s
        if value_j != reading.energy_j or type(reading.energy_j) is not float:
            reading = Reading(
                reading.device,
                reading.time_s,
                value_j,
                reading.power_w,
                reading.utilization_pct,
                reading.memory_used_bytes,
                reading.temperature_c,
            )
        return self._pass(out, reading)

    def _pass(self, out: list[Reading], reading: Reading) -> list[Reading]:
        self._last_time_s = reading.time_s
        self.last_good_s = reading.time_s
        self._passed += 1
        out.append(reading)
        return out

    def flush(self) -> None:
        """The device is done (stop): a read still held back was never confirmed."""
        self._drop_held()
