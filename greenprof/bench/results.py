"""A bench's results, read back from the store: one row per repeat, one per variant.

Everything comes from ordinary runs through :class:`~greenprof.store.reader.RunStore`
(runs tagged ``bench=<id>``, their epochs and steps): ``greenprof report --bench``
rebuilds the same summary long after the bench ran. The arithmetic is pure functions of
records, tested without a store.

Figures: the measured window is epoch 1 (J/sample, samples/s, gCO2e/sample); the
warm-up is epoch 0 (its energy is the compilation/tracing figure); setup is the run's
start to its first step (model construction). A window's energy is every device's
energy from the window's first step start to its last step end, read from the stored
sensor samples: what a framework does between steps (data loading, callbacks, Python)
is part of its cost, and the sum of step energies would leave it out. Time and energy
to the target loss count from the first step, warm-up included (it trains too), to the
end of the first step at which the mean loss of the last :data:`LOSS_WINDOW` steps is
at or below the workload's target.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from greenprof.bench import stats
from greenprof.bench.workloads import workload
from greenprof.formatting import significant
from greenprof.records import EpochRecord, RunInfo, SampleRecord, StepRecord
from greenprof.store.reader import RunStore

LOSS_WINDOW = 5
"""Steps averaged before the loss is compared with the target (batch losses are noisy)."""

WARMUP_EPOCH, MEASURED_EPOCH = 0, 1


@dataclass(frozen=True, slots=True)
class RepeatResult:
    """One repeat (one run) of a bench."""

    run_id: int
    status: str
    variant: str
    framework: str
    workload: str
    size: str
    batch_size: int
    precision: str
    repeat: int
    samples: int
    """Samples of the measured window."""
    duration_s: float
    energy_j: float
    """Energy of the measured window, every device."""
    warmup_s: float
    warmup_energy_j: float
    setup_s: float
    setup_energy_j: float
    co2_g_per_j: float | None
    """Emissions per joule with the run's grid intensity and PUE (None: not known)."""
    target_loss: float
    to_target_s: float | None
    to_target_j: float | None
    final_loss: float | None
    methods: tuple[str, ...]
    """How each device was measured: counter, power_integration, model, simulated."""
    versions: tuple[tuple[str, str], ...]
    devices: tuple[str, ...] = ()
    """Each measured device: its id and name (the hardware)."""

    @property
    def j_per_sample(self) -> float:
        return self.energy_j / self.samples if self.samples else math.nan

    @property
    def samples_per_s(self) -> float:
        return self.samples / self.duration_s if self.duration_s > 0 else math.nan

    @property
    def setting(self) -> tuple[str, str, int, str]:
        """What variants are compared within: workload, size, batch size, precision."""
        return (self.workload, self.size, self.batch_size, self.precision)


def _cumulative(samples: Sequence[SampleRecord]) -> list[tuple[float, float]]:
    """(time, cumulative J) of one device: its counter, else its power integrated."""
    out: list[tuple[float, float]] = []
    for sample in sorted(samples, key=lambda s: s.time_s):
        if sample.energy_j is not None:
            out.append((sample.time_s, sample.energy_j))
        elif sample.power_w is not None:
            if not out:
                out.append((sample.time_s, 0.0))
                last_w = sample.power_w
                continue
            t0, e0 = out[-1]
            out.append((sample.time_s, e0 + 0.5 * (last_w + sample.power_w) * (sample.time_s - t0)))
        last_w = sample.power_w if sample.power_w is not None else 0.0
    return out


def _at(series: Sequence[tuple[float, float]], t_s: float) -> float:
    """Cumulative energy at ``t_s``, linear between samples, held outside them."""
    if t_s <= series[0][0]:
        return series[0][1]
    for (t0, e0), (t1, e1) in itertools.pairwise(series):
        if t0 <= t_s <= t1:
            return e0 if t1 == t0 else e0 + (e1 - e0) * (t_s - t0) / (t1 - t0)
    return series[-1][1]


def window_energy_j(samples: Sequence[SampleRecord], start_s: float, end_s: float) -> float:
    """Energy of every device from ``start_s`` to ``end_s`` (seconds since the run's
    start), from the stored samples."""
    by_device: dict[str, list[SampleRecord]] = {}
    for sample in samples:
        by_device.setdefault(sample.device, []).append(sample)
    total = 0.0
    for device_samples in by_device.values():
        series = _cumulative(device_samples)
        if series:
            total += _at(series, end_s) - _at(series, start_s)
    return total


def to_target(
    steps: Sequence[StepRecord], target: float, samples: Sequence[SampleRecord] = ()
) -> tuple[float, float] | None:
    """(seconds, joules) from the first step's start to the end of the step where the
    trailing mean loss first reaches ``target``; None if it never does. Joules from
    ``samples`` (the whole window), else the sum of the step energies."""
    window: list[float] = []
    energy_j = 0.0
    for step in steps:
        energy_j += step.energy_j
        if step.loss is None or not math.isfinite(step.loss):
            continue
        window = [*window[-(LOSS_WINDOW - 1) :], step.loss]
        if len(window) == LOSS_WINDOW and stats.mean(window) <= target:
            if samples:
                energy_j = window_energy_j(samples, steps[0].start_s, step.end_s)
            return step.end_s - steps[0].start_s, energy_j
    return None


def final_loss(steps: Sequence[StepRecord]) -> float | None:
    """Mean loss of the last :data:`LOSS_WINDOW` steps that have one."""
    losses = [s.loss for s in steps if s.loss is not None and math.isfinite(s.loss)]
    return stats.mean(losses[-LOSS_WINDOW:]) if losses else None


def repeat_result(
    run: RunInfo,
    epochs: Sequence[EpochRecord],
    steps: Sequence[StepRecord],
    samples: Sequence[SampleRecord] = (),
) -> RepeatResult:
    """The figures of one bench run from its record, epochs, steps and sensor samples
    (without samples, a window's energy is the sum of its step energies)."""
    tags = {key: str(value) for key, value in run.tags.items()}  # typed tags or strings
    by_epoch = {e.epoch: e for e in epochs}
    warm = by_epoch.get(WARMUP_EPOCH)
    measured = by_epoch.get(MEASURED_EPOCH)
    target = workload(tags.get("workload", "mlp"), tags.get("size", "cpu")).target_loss
    reached = to_target(steps, target, samples)

    def energy_of(epoch: EpochRecord | None) -> float:
        if epoch is None:
            return 0.0
        if samples:
            return window_energy_j(samples, epoch.start_s, epoch.end_s)
        return epoch.energy_j

    carbon = run.carbon
    return RepeatResult(
        run_id=run.run_id,
        status=run.status,
        variant=tags.get("variant", "?"),
        framework=tags.get("framework", run.framework),
        workload=tags.get("workload", "?"),
        size=tags.get("size", "?"),
        batch_size=int(tags.get("batch_size", "0")),
        precision=tags.get("precision", "?"),
        repeat=int(tags.get("repeat", "0")),
        samples=(measured.samples or 0) if measured else 0,
        duration_s=measured.duration_s if measured else 0.0,
        energy_j=energy_of(measured),
        warmup_s=warm.duration_s if warm else 0.0,
        warmup_energy_j=energy_of(warm),
        setup_s=run.setup_s,
        setup_energy_j=run.setup_energy_j,
        co2_g_per_j=None if carbon is None else carbon.co2_g(1.0),
        target_loss=target,
        to_target_s=None if reached is None else reached[0],
        to_target_j=None if reached is None else reached[1],
        final_loss=final_loss(steps),
        methods=tuple(sorted({d.method for d in run.devices})),
        versions=tuple(sorted((k[8:], v) for k, v in tags.items() if k.startswith("version_"))),
        devices=tuple(f"{d.device} {d.name}".strip() for d in run.devices),
    )


def bench_runs(store: RunStore, bench_id: str) -> list[RunInfo]:
    """The runs of bench ``bench_id``, oldest first."""
    return sorted(
        (run for run in store.runs() if str(run.tags.get("bench")) == bench_id),
        key=lambda run: run.run_id,
    )


def load(store: RunStore, bench_id: str) -> list[RepeatResult]:
    """Every repeat of bench ``bench_id`` that has a measured window."""
    out = []
    for run in bench_runs(store, bench_id):
        result = repeat_result(
            run, store.epochs(run.run_id), store.steps(run.run_id), store.samples(run.run_id)
        )
        if result.samples:
            out.append(result)
    return out


@dataclass(frozen=True, slots=True)
class VariantSummary:
    """One variant at one setting, over its repeats."""

    variant: str
    framework: str
    setting: tuple[str, str, int, str]
    j_per_sample: stats.Interval
    samples_per_s: stats.Interval
    warmup_energy_j: stats.Interval
    setup_energy_j: float
    co2_g_per_sample: float | None
    to_target_s: stats.Interval | None
    to_target_j: stats.Interval | None
    reached: int
    """Repeats that reached the target loss (out of ``j_per_sample.n``)."""
    final_loss: float | None
    methods: tuple[str, ...]
    versions: tuple[tuple[str, str], ...]
    values_j_per_sample: tuple[float, ...]
    run_ids: tuple[int, ...]
    devices: tuple[str, ...] = ()
    window_s: float = math.nan
    """Mean length of the measured window (s)."""


def _known(values: Iterable[float | None]) -> list[float]:
    return [v for v in values if v is not None and math.isfinite(v)]


def summarize(results: Sequence[RepeatResult]) -> list[VariantSummary]:
    """One summary per (setting, variant), settings in order, variants by J/sample."""
    groups: dict[tuple[tuple[str, str, int, str], str], list[RepeatResult]] = {}
    for result in results:
        groups.setdefault((result.setting, result.variant), []).append(result)
    out = []
    for (setting, name), rows in groups.items():
        per_sample = [r.j_per_sample for r in rows]
        target_s = _known(r.to_target_s for r in rows)
        target_j = _known(r.to_target_j for r in rows)
        co2 = _known(
            None if r.co2_g_per_j is None else r.co2_g_per_j * r.j_per_sample for r in rows
        )
        finals = _known(r.final_loss for r in rows)
        out.append(
            VariantSummary(
                variant=name,
                framework=rows[0].framework,
                setting=setting,
                j_per_sample=stats.interval(per_sample),
                samples_per_s=stats.interval([r.samples_per_s for r in rows]),
                warmup_energy_j=stats.interval([r.warmup_energy_j for r in rows]),
                setup_energy_j=stats.mean([r.setup_energy_j for r in rows]),
                co2_g_per_sample=stats.mean(co2) if co2 else None,
                to_target_s=stats.interval(target_s) if target_s else None,
                to_target_j=stats.interval(target_j) if target_j else None,
                reached=len(target_s),
                final_loss=stats.mean(finals) if finals else None,
                methods=tuple(sorted({m for r in rows for m in r.methods})),
                versions=rows[0].versions,
                values_j_per_sample=tuple(per_sample),
                run_ids=tuple(r.run_id for r in rows),
                devices=tuple(sorted({d for r in rows for d in r.devices})),
                window_s=stats.mean([r.duration_s for r in rows]),
            )
        )
    settings = list(dict.fromkeys(s.setting for s in out))
    return sorted(out, key=lambda s: (settings.index(s.setting), s.j_per_sample.mean))


def verdicts(summaries: Sequence[VariantSummary]) -> list[str]:
    """Per setting, the most efficient variant against each other one (J/sample)."""
    lines = []
    by_setting: dict[tuple[str, str, int, str], list[VariantSummary]] = {}
    for summary in summaries:
        by_setting.setdefault(summary.setting, []).append(summary)
    for setting, group in by_setting.items():
        best, *others = sorted(group, key=lambda s: s.j_per_sample.mean)
        prefix = f"{setting_label(setting)}: "
        lines += [
            prefix
            + stats.verdict(
                best.variant, best.values_j_per_sample, other.variant, other.values_j_per_sample
            )
            for other in others
        ]
    return lines


def best_settings(summaries: Sequence[VariantSummary]) -> list[str]:
    """For a sweep: each variant's most energy-efficient batch size and precision, per
    workload (nothing when every variant ran one setting)."""
    by_key: dict[tuple[str, str], list[VariantSummary]] = {}
    for summary in summaries:
        by_key.setdefault((summary.setting[0], summary.variant), []).append(summary)
    lines = []
    for (name, variant_name), group in by_key.items():
        if len(group) < 2:
            continue
        best = min(group, key=lambda s: s.j_per_sample.mean)
        lines.append(
            f"{name}: {variant_name} is most efficient at batch {best.setting[2]}, "
            f"{best.setting[3]} ({significant(best.j_per_sample.mean * 1000)} mJ/sample)"
        )
    return lines


def setting_label(setting: tuple[str, str, int, str]) -> str:
    name, size, batch, precision = setting
    return f"{name} ({size}, batch {batch}, {precision})"
