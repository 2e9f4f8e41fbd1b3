"""The core verbs: ``demo``, ``runs``, ``show``, ``doctor``, ``regions``."""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING, Any

from greenprof import cliargs
from greenprof.cliargs import add_db_argument, add_json_argument
from greenprof.textsafe import terminal_lines, terminal_text

if TYPE_CHECKING:
    from collections.abc import Sequence

    from greenprof.carbon import Zone
    from greenprof.errors import ConfigError
    from greenprof.jobs import JobTotals
    from greenprof.records import RunInfo
    from greenprof.store.reader import RunStore


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add the core verbs to the command line."""
    demo = subparsers.add_parser(
        "demo",
        help="train a small PyTorch model here, profiled, and print its energy",
        description="Trains a small convolutional network on synthetic data (CPU, or the first "
        "GPU), profiled with this machine's sensors, stored in the run database.",
    )
    add_db_argument(demo)
    demo.add_argument(
        "--steps", type=_DEMO_STEPS, default=300, help="training steps (300; 1 to 10^9)"
    )
    demo.add_argument(
        "--batch-size", type=_DEMO_BATCH, default=64, help="batch size (64; 1 to 4096)"
    )
    demo.add_argument("--epochs", type=_DEMO_EPOCHS, default=3, help="epochs (3; 1 to 10^6)")
    demo.add_argument("--name", default=None, help="run name (default: demo-bs<batch size>)")
    _add_carbon_arguments(demo)
    demo.set_defaults(handler=_demo)

    runs = subparsers.add_parser("runs", help="list the stored runs, newest first")
    add_db_argument(runs)
    runs.add_argument(
        "--limit", type=cliargs.positive_int, default=None, help="show at most N runs"
    )
    runs.add_argument("--name", type=cliargs.text, default=None, help="only runs with this name")
    add_json_argument(runs)
    runs.set_defaults(handler=_runs)

    show = subparsers.add_parser(
        "show", help="summary of a run (id, or name for its newest run) or of a job (job id)"
    )
    add_db_argument(show)
    show.add_argument(
        "run",
        metavar="RUN",
        type=cliargs.run_ref,
        help="a run id, a run name (its newest run) or a job id (the job's totals)",
    )
    add_json_argument(show)
    show.set_defaults(handler=_show)

    doctor = subparsers.add_parser(
        "doctor", help="which sensors this machine has and how each device would be measured"
    )
    add_db_argument(doctor)
    add_json_argument(doctor)
    doctor.set_defaults(handler=_doctor)

    regions = subparsers.add_parser(
        "regions", help="list the country and region codes with grid-intensity data"
    )
    regions.add_argument("search", nargs="?", default="", help="filter by code or name")
    add_json_argument(regions)
    regions.set_defaults(handler=_regions)


_DEMO_STEPS = cliargs.integer(1, 10**9, what="a positive integer")
_DEMO_BATCH = cliargs.integer(1, 4096, what="a positive integer")
_DEMO_EPOCHS = cliargs.integer(1, 10**6, what="a positive integer")
"""The demo trains a small model here: bounds that a laptop can still mean."""

_PUE = cliargs.real(1.0, 10.0, what="a PUE")
_INTENSITY = cliargs.real(0.0, 10_000.0, what="grams CO2e per kWh")
"""PUE is facility over IT energy (≥ 1; the worst data centres measured are near 3);
no grid emits more than about 1,500 g/kWh."""


def _add_carbon_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--country", help="ISO 3166-1 alpha-3 code of the grid, e.g. DEU")
    parser.add_argument("--region", help="cloud region or grid zone, e.g. europe-west1, SE3")
    parser.add_argument("--pue", type=_PUE, default=1.0, help="data-centre PUE (1.0; 1 to 10)")
    parser.add_argument(
        "--intensity",
        type=_INTENSITY,
        default=None,
        metavar="G_PER_KWH",
        help="state the grid intensity (gCO2e/kWh) yourself",
    )


def _demo(args: argparse.Namespace) -> int:
    from greenprof.demo import DemoConfig, run_demo
    from greenprof.profiler import Profiler
    from greenprof.store.reader import RunStore
    from greenprof.summary import run_summary

    config = DemoConfig(steps=args.steps, batch_size=args.batch_size, epochs=args.epochs)
    name = args.name or f"demo-bs{config.batch_size}"
    profiler = Profiler(
        name,
        db=args.db,
        country=args.country,
        region=args.region,
        pue=args.pue,
        intensity_g_per_kwh=args.intensity,
        framework="torch",
        expected_steps=config.steps,
        tags={"batch_size": config.batch_size, "demo": "true"},
        summary=False,  # the demo prints the full summary itself
    )
    print(
        f"greenprof demo: training '{terminal_text(name)}' for {config.steps} steps "
        f"(batch {config.batch_size}) into {terminal_text(str(profiler.db_path))}",
        file=sys.stderr,
    )
    with profiler:
        for note in profiler.detection_notes:
            print(f"  {terminal_text(note)}", file=sys.stderr)
        run_demo(profiler, config)
    assert profiler.run_id is not None
    with RunStore(profiler.db_path) as store:
        run = store.run(profiler.run_id)
        summary = run_summary(
            run,
            store.device_energy_j(run.run_id),
            store.step_flag_counts(run.run_id),
            store.pending_steps(run.run_id),
        )
        print(terminal_lines(summary))
    print(
        f"\nNext: `greenprof show {run.run_id}`, `greenprof runs`, `greenprof history`.",
        file=sys.stderr,
    )
    return 0


def _runs(args: argparse.Namespace) -> int:
    from greenprof.store.reader import RunStore
    from greenprof.summary import runs_table

    with RunStore(args.db) as store:
        runs = store.runs(name=args.name, limit=args.limit)
        if args.json:
            from greenprof.jsonout import dumps, runs_document

            print(dumps(runs_document(runs, database=store.location.display)))
            return 0
        if not runs:
            where = terminal_text(store.location.display)
            print(f"no runs in {where} yet: `greenprof demo` creates one", file=sys.stderr)
            return 0
        print(terminal_lines(runs_table(runs)))
    return 0


def _show(args: argparse.Namespace) -> int:
    from greenprof.step_windows import step_window_bounds
    from greenprof.store.reader import RunStore
    from greenprof.summary import epoch_lines, job_summary, run_summary

    with RunStore(args.db) as store:
        job = _job_to_show(store, args.run)
        if job is not None:
            if args.json:
                from greenprof.jsonout import dumps, job_document

                print(dumps(job_document(job, database=store.location.display)))
            else:
                print(terminal_lines(job_summary(job)))
            return 0
        run = store.run(args.run)
        if args.json:
            return _show_json(store, run)
        bounds = step_window_bounds(store.iter_step_bounds(run.run_id))
        summary = run_summary(
            run,
            store.device_energy_j(run.run_id),
            store.step_flag_counts(run.run_id),
            store.pending_steps(run.run_id),
            bounds=bounds,
        )
        print(terminal_lines(summary))
        epochs = store.epochs(run.run_id)
        if len(epochs) > 1:
            print(terminal_lines(epoch_lines(epochs, bounds)))
    return 0


def _show_json(store: RunStore, run: RunInfo) -> int:
    from greenprof.jsonout import dumps, run_document
    from greenprof.step_windows import step_window_bounds

    document = run_document(
        run,
        store.device_energy_j(run.run_id),
        flag_counts=store.step_flag_counts(run.run_id),
        pending_steps=store.pending_steps(run.run_id),
        epochs=store.epochs(run.run_id),
        database=store.location.display,
        bounds=step_window_bounds(store.iter_step_bounds(run.run_id)),
    )
    print(dumps(document))
    return 0


def _job_to_show(store: RunStore, ref: int | str) -> JobTotals | None:
    """The job ``ref`` names: a job id, or the name of a run that is one rank of a job of
    several (a rank alone would misstate the job). None: show a single run."""
    from greenprof.errors import RunNotFound
    from greenprof.jobs import job_totals

    job_id: str | None = ref if isinstance(ref, str) and store.runs(job=ref) else None
    if job_id is None:
        try:
            run = store.run(ref)
        except RunNotFound:
            return None
        if run.job_id is None or isinstance(ref, int) or str(ref).isdigit():
            return None
        job_id = run.job_id
    runs = store.runs(job=job_id)
    if len(runs) < 2 and not (isinstance(ref, str) and ref == job_id):
        return None
    return job_totals(job_id, runs, {r.run_id: store.device_energy_j(r.run_id) for r in runs})


def _doctor(args: argparse.Namespace) -> int:
    from greenprof.sensors.detect import detect_sensors, doctor_lines
    from greenprof.store.paths import resolve_db_path

    detection = detect_sensors(env=os.environ)
    try:
        database = str(resolve_db_path(args.db))
        if args.json:
            from greenprof.jsonout import doctor_document, dumps

            devices = [sensor.info for sensor in detection.sensors]
            print(dumps(doctor_document(devices, detection.notes, database=database)))
            return 0
        print(terminal_lines(doctor_lines(detection)))
    finally:
        for sensor in detection.sensors:
            sensor.close()
    print(f"database: {terminal_text(database)}")
    return 0


def _regions(args: argparse.Namespace) -> int:
    from greenprof.carbon import list_zones

    zones = list_zones()
    needle = args.search.strip().lower()
    matches = [z for z in zones if needle in z.code.lower() or needle in z.name.lower()]
    if not matches:
        raise _no_zone(args.search, zones)
    if args.json:
        from greenprof.jsonout import dumps, regions_document

        document = regions_document(matches, search=args.search)
        print(dumps(document))
        return 0
    for zone in matches:
        print(
            terminal_text(
                f"{zone.code:<24} {zone.kind:<12} {zone.intensity_g_per_kwh:7.1f} g/kWh  "
                f"{zone.name}  [{zone.source}]"
            )
        )
    return 0


def _no_zone(search: str, zones: Sequence[Zone]) -> ConfigError:
    """``regions zzz``: nothing matched; say so (exit 1), with the closest codes or names."""
    import difflib

    from greenprof.errors import ConfigError

    by_word = {z.code.lower(): z.code for z in zones} | {z.name.lower(): z.code for z in zones}
    close = difflib.get_close_matches(search.strip().lower(), list(by_word), n=3, cutoff=0.6)
    codes = sorted({by_word[word] for word in close})
    hint = f" Did you mean {', '.join(codes)}?" if codes else ""
    return ConfigError(
        f"no country or region code or name contains {search!r}.{hint} "
        "`greenprof regions` without a search lists them all."
    )
