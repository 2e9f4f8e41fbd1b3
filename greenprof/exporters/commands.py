"""The `greenprof` verbs of greenprof.exporters (registered by greenprof.cli).

- ``greenprof export csv|codecarbon|prometheus [RUN...] [--tag K=V] [--since] [--until] [-o]``
- ``greenprof serve [--port 9464] [--host 127.0.0.1] [--label-tags T,U] [--run-ttl 1h]``:
  Prometheus ``/metrics`` for every run
- ``greenprof report RUN [RUN...] [--format md|html] [-o FILE]``

Heavy modules (prometheus_client) are imported inside the handlers.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from greenprof import cliargs
from greenprof.cliargs import add_db_argument
from greenprof.exporters._common import add_selection_arguments
from greenprof.exporters.prom_series import DEFAULT_MAX_TAG_VALUES
from greenprof.textsafe import terminal_text

DEFAULT_PORT = 9464
_REFS_HELP = (
    "run ids, names (a name selects every run with it) or job ids (every rank of the job);"
    " default: all runs"
)


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add ``export``, ``serve`` and ``report`` to the command line."""
    export = subparsers.add_parser(
        "export",
        help="write runs as CSV, CodeCarbon emissions.csv or Prometheus text",
        description="Export runs for reports and dashboards. Every format takes the same "
        "run selection and -o (written atomically; stdout without -o). -o writes regular "
        "files only: it refuses directories, FIFOs, devices and sockets, and symbolic "
        "links unless --follow-symlinks is given.",
    )
    formats = export.add_subparsers(dest="format", metavar="FORMAT", required=True)

    from greenprof.exporters.csv import TABLES

    csv_parser = formats.add_parser(
        "csv",
        help="runs, devices, steps, per-device step energy, epochs or sensor samples",
        description="CSV with stable column names carrying units (energy_j, co2_g, "
        "duration_s) and ISO-8601 UTC times. Large tables are streamed.",
    )
    csv_parser.add_argument(
        "--table",
        choices=sorted(TABLES),
        default="steps",
        help="what to export (default: steps; step-devices has one row per step per device)",
    )
    _common_export_args(csv_parser)
    csv_parser.set_defaults(handler=_export_csv)

    cc_parser = formats.add_parser(
        "codecarbon",
        help="one row per run in CodeCarbon's emissions.csv layout",
        description="CodeCarbon's emissions.csv columns and units (kWh, kg, W, s), one row "
        "per run, for CodeCarbon's dashboards and scripts. Appends to an existing "
        "emissions.csv with CodeCarbon's header, as CodeCarbon does (runs already in it are "
        "skipped); refuses a file with another layout.",
    )
    _common_export_args(cc_parser)
    cc_parser.set_defaults(handler=_export_codecarbon)

    prom_parser = formats.add_parser(
        "prometheus",
        help="Prometheus text format, e.g. for node_exporter's textfile collector",
        description="The metrics `greenprof serve` exposes, written once in the Prometheus "
        "text format.",
    )
    _common_export_args(prom_parser)
    prom_parser.add_argument(
        "--textfile",
        metavar="PATH",
        help="write PATH atomically for node_exporter's textfile collector (name it *.prom)",
    )
    prom_parser.set_defaults(handler=_export_prometheus)

    serve = subparsers.add_parser(
        "serve",
        help="serve Prometheus /metrics for every run in the database",
        description="A node exporter: /metrics covers every run in the database (all ranks "
        "on this node), read incrementally on each scrape. Stops on Ctrl-C or SIGTERM.",
    )
    serve.add_argument(
        "--port",
        type=cliargs.port,
        default=DEFAULT_PORT,
        help="1 to 65535, or 0 for any free port (default: %(default)s)",
    )
    serve.add_argument(
        "--host",
        type=cliargs.host,
        default="127.0.0.1",
        help="address to bind (default: %(default)s; 0.0.0.0 for every interface)",
    )
    serve.add_argument(
        "--label-tags",
        metavar="TAGS",
        default="",
        help="run tags to expose as labels, comma-separated (e.g. model,team); each becomes "
        "tag_<name> with at most --max-tag-values values (later ones read _other)",
    )
    serve.add_argument(
        "--max-tag-values",
        metavar="N",
        type=int,
        default=DEFAULT_MAX_TAG_VALUES,
        help="distinct values kept per tag label (default: %(default)s)",
    )
    serve.add_argument(
        "--run-ttl",
        metavar="DURATION",
        default="1h",
        help="how long a finished run's own series stay (seconds, or 15m, 1h, 2d; 'never'); "
        "the job counters keep every run (default: %(default)s)",
    )
    add_db_argument(serve)
    serve.set_defaults(handler=_serve)

    report = subparsers.add_parser(
        "report",
        help="a sustainability report (Markdown or self-contained HTML) for runs",
        description="Totals, per-device and per-epoch tables, efficiency, a comparison of "
        "the runs, the assumptions, and a power/energy chart (inline SVG in HTML).",
    )
    report.add_argument(
        "runs",
        nargs="*",
        metavar="RUN",
        type=cliargs.run_ref,
        help="run ids, names (newest) or job ids (every rank)",
    )
    report.add_argument(
        "--bench",
        metavar="ID",
        type=cliargs.text,
        default=None,
        help="report a `greenprof bench` instead of runs: J/sample per variant with "
        "confidence intervals, the differences, the settings",
    )
    report.add_argument(
        "--format",
        choices=("md", "html"),
        default=None,
        help="default: html if -o ends with .html/.htm, else md",
    )
    report.add_argument("-o", "--output", metavar="FILE", help="default: standard output")
    _add_follow_symlinks(report)
    add_db_argument(report)
    report.set_defaults(handler=_report)


def _common_export_args(parser: argparse.ArgumentParser) -> None:
    add_selection_arguments(parser, refs_help=_REFS_HELP)
    parser.add_argument(
        "-o", "--output", metavar="FILE", help="write FILE atomically (default: standard output)"
    )
    _add_follow_symlinks(parser)
    add_db_argument(parser)


def _add_follow_symlinks(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--follow-symlinks",
        action="store_true",
        help="when the output path is a symbolic link, write to its target (refused otherwise)",
    )


def _selected(args: argparse.Namespace) -> tuple[Any, list[Any]]:
    from greenprof.exporters._common import Selection
    from greenprof.refs import expand_jobs
    from greenprof.store.reader import RunStore

    store = RunStore(args.db)
    try:
        refs = expand_jobs(store, args.runs)
        selection = Selection.from_args(refs, args.tag, args.since, args.until)
        return store, selection.resolve(store)
    except BaseException:
        store.close()
        raise


def _export_csv(args: argparse.Namespace) -> int:
    from greenprof.exporters._common import open_output
    from greenprof.exporters.csv import write_csv

    store, runs = _selected(args)
    with store, open_output(args.output, follow_symlinks=args.follow_symlinks) as out:
        write_csv(store, runs, args.table, out)
    return 0


def _export_codecarbon(args: argparse.Namespace) -> int:
    from greenprof.exporters.codecarbon import export_emissions

    store, runs = _selected(args)
    with store:
        result = export_emissions(store, runs, args.output, follow_symlinks=args.follow_symlinks)
    if args.output and args.output != "-":
        print(terminal_text(result.describe(args.output)), file=sys.stderr)
    return 0


def _export_prometheus(args: argparse.Namespace) -> int:
    from greenprof.errors import ConfigError
    from greenprof.exporters._common import open_output
    from greenprof.exporters.prometheus import exposition

    if args.textfile and args.output:
        raise ConfigError("give either --textfile or -o, not both")
    store, runs = _selected(args)
    store.close()
    text = exposition(store.location, run_ids=[run.run_id for run in runs])
    with open_output(args.textfile or args.output, follow_symlinks=args.follow_symlinks) as out:
        out.write(text)
    return 0


def _serve(args: argparse.Namespace) -> int:
    from greenprof.errors import ConfigError
    from greenprof.exporters.prom_series import (
        SeriesOptions,
        parse_duration_s,
        parse_label_tags,
    )
    from greenprof.exporters.prometheus import serve_forever

    if args.max_tag_values < 1:
        raise ConfigError("--max-tag-values: expected 1 or more")
    options = SeriesOptions(
        label_tags=parse_label_tags(args.label_tags),
        max_tag_values=args.max_tag_values,
        run_ttl_s=parse_duration_s(args.run_ttl),
    )
    return serve_forever(args.db, port=args.port, host=args.host, options=options)


def _report(args: argparse.Namespace) -> int:
    from greenprof.exporters._common import open_output
    from greenprof.exporters.report import write_report
    from greenprof.refs import expand_jobs
    from greenprof.store.reader import RunStore

    output: str | None = args.output
    fmt = args.format
    if fmt is None:
        fmt = "html" if output and output.lower().endswith((".html", ".htm")) else "md"
    from greenprof.errors import ConfigError

    if (args.bench is None) == (not args.runs):
        raise ConfigError("report needs RUN ids or --bench ID (one of them, not both)")
    with RunStore(args.db) as store:
        if args.bench is not None:
            from greenprof.exporters.report_bench import bench_report_text

            text = bench_report_text(store, args.bench, fmt=fmt)  # raises before any file
            with open_output(output, follow_symlinks=args.follow_symlinks) as out:
                out.write(text)
        else:
            runs = [store.run(ref) for ref in expand_jobs(store, args.runs)]
            with open_output(output, follow_symlinks=args.follow_symlinks) as out:
                write_report(store, runs, out, fmt=fmt)
    if output and output != "-":
        print(f"wrote {terminal_text(output)}", file=sys.stderr)
    return 0
