"""Command line of the suite: `python -m benchmarks` (what `scripts/bench` runs).

Builds the workloads in a scratch directory, times every tool on them, runs the S3 storage
part, the retention part (gc, expire) and the micro-benchmarks and writes the report (default
`docs/PERFORMANCE.md`). `--only s3` (or `--only retention`) runs that part alone and puts its
section into the existing report, replacing the one there. Progress goes to stderr. Exit 0
when the report is written, 2 on bad usage.
"""

from __future__ import annotations

import argparse
import datetime
import shlex
import shutil
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import (
    gc,
    machine,
    measure,
    micro,
    provision,
    remote,
    report,
    s3_storage,
    suite,
    targets,
    tools,
)
from benchmarks.workloads import NAMES, Workload, generate

QUICK_SCALE = 1 / 512


def parse(argv: list[str]) -> argparse.Namespace:
    """The options; --quick is a tiny scale for smoke runs, --scale any other."""
    parser = argparse.ArgumentParser(
        prog="scripts/bench", description=__doc__.splitlines()[0] if __doc__ else None
    )
    parser.add_argument("--quick", action="store_true", help=f"tiny scale ({QUICK_SCALE:g})")
    parser.add_argument("--scale", type=float, default=None, help="size factor (default 1)")
    parser.add_argument(
        "--workloads", default=",".join(NAMES), help="comma-separated subset of big,small,mixed"
    )
    parser.add_argument("--repeat", type=int, default=3, help="repetitions (default 3)")
    parser.add_argument(
        "--only",
        choices=["s3", "retention"],
        help="run only this part and replace its section in the existing --out report",
    )
    parser.add_argument(
        "--out", type=Path, default=tools.REPO_ROOT / "docs" / "PERFORMANCE.md", help="report"
    )
    parser.add_argument("--scratch", type=Path, default=None, help="parent of the scratch dir")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory")
    parser.add_argument(
        "--drop-caches", action="store_true", help="drop the page cache before each step (root)"
    )
    parser.add_argument(
        "--no-install", action="store_true", help="never install restic, b3sum, time or DVC"
    )
    parser.add_argument(
        "--dvc-venv",
        type=Path,
        default=provision.default_dvc_venv(),
        help="DVC's own virtual environment (default %(default)s)",
    )
    args = parser.parse_args(argv)
    names = [n for n in args.workloads.split(",") if n]
    if not names or any(n not in NAMES for n in names):
        parser.error(f"--workloads takes a comma-separated subset of {','.join(NAMES)}")
    args.workloads = names
    if args.quick and args.scale is not None:
        parser.error("--quick and --scale exclude each other")
    args.scale = QUICK_SCALE if args.quick else (args.scale or 1.0)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    if args.only and not args.out.is_file():
        parser.error(f"--only merges into an existing report; there is no {args.out}")
    if args.only == "s3" and not set(names) & set(s3_storage.WORKLOADS):
        parser.error(f"--only s3 covers {','.join(s3_storage.WORKLOADS)}: choose one of them")
    if args.drop_caches and not measure.can_drop_caches():
        parser.error(f"--drop-caches needs write access to {measure.DROP_CACHES} (root)")
    return args


def log(line: str) -> None:
    """Progress on stderr."""
    print(line, file=sys.stderr, flush=True)


def main(argv: list[str]) -> None:
    """Run the suite as the options say and write the report."""
    args = parse(argv)
    tools.compile_bytecode()
    if args.only == "s3":
        _only_s3(args, shlex.join(["scripts/bench", *argv]))
        return
    if args.only == "retention":
        _only_retention(args, shlex.join(["scripts/bench", *argv]))
        return
    install = not args.no_install
    gnu_time = provision.debian_program("time", "time", "--version", install)
    runner = measure.Runner(Path("/usr/bin/time") if gnu_time.path else None)
    every_tool = [
        tools.artifactstore(),
        *tools.limits(),
        tools.git(),
        tools.restic(install),
        tools.dvc(args.dvc_venv, install),
    ]
    for tool in every_tool:
        log(f"{tool.name}: {tool.version if tool.plan else 'missing: ' + str(tool.missing)}")
    scratch = Path(tempfile.mkdtemp(prefix="artifactstore-bench-", dir=args.scratch))
    log(f"scratch: {scratch}")
    started = time.monotonic()
    facts = machine.facts(scratch)
    try:
        results = []
        for name in args.workloads:
            workload = generate(name, scratch / "workloads" / name, args.scale)
            log(f"[{name}] {workload.files:,} files, {workload.size:,} bytes")
            results.append(
                suite.run_workload(
                    runner, workload, every_tool, scratch, args.repeat, args.drop_caches, log
                )
            )
        log("micro-benchmarks")
        figures = [
            *_remote_figures(runner, results, scratch, args.repeat),
            *micro.digest(max(1, round(256 * args.scale))),
            *micro.events(max(1_000, round(100_000 * args.scale))),
            *micro.startup(runner, 5 if args.quick else 20),
        ]
        retention = _retention_figures(
            runner, [r.workload for r in results], scratch, args.repeat, args.scale
        )
        s3 = _s3(runner, [r.workload for r in results], scratch, args)
        info = report.RunInfo(
            command=shlex.join(["scripts/bench", *argv]),
            date=datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            minutes=(time.monotonic() - started) / 60,
            scale=args.scale,
            repeat=args.repeat,
            drop_caches=args.drop_caches,
            gnu_time=runner.gnu_time is not None,
            machine=facts,
            tools=every_tool,
        )
        checked = targets.check(results, figures)
        page = report.render(info, results, figures, checked, s3, retention)
    finally:
        if args.keep:
            log(f"kept {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(page)
    log(f"wrote {args.out}")


def _remote_figures(
    runner: measure.Runner, results: list[suite.WorkloadResult], scratch: Path, repeat: int
) -> list[micro.Figure]:
    """The remote client's figures on the mixed workload, when it was run."""
    for result in results:
        if result.workload.name == "mixed":
            log("remote client on mixed")
            return remote.remote(runner, result.workload, scratch, repeat)
    return []


def _retention_figures(
    runner: measure.Runner,
    workloads: list[Workload],
    scratch: Path,
    repeat: int,
    scale: float,
) -> list[micro.Figure]:
    """gc and expire at scale, and a push of mixed (when it was run) beside a gc loop."""
    log("gc and expire")
    figures = [gc.collect(runner, scratch, scale), gc.expire(runner, scratch, scale)]
    for workload in workloads:
        if workload.name == "mixed":
            log("push of mixed beside a gc loop")
            figures.append(gc.push_beside_gc(runner, workload, scratch, repeat))
    return figures


def _only_retention(args: argparse.Namespace, command: str) -> None:
    """Run the retention part alone and replace its section in the existing report."""
    gnu_time = provision.debian_program("time", "time", "--version", not args.no_install)
    runner = measure.Runner(Path("/usr/bin/time") if gnu_time.path else None)
    scratch = Path(tempfile.mkdtemp(prefix="artifactstore-bench-", dir=args.scratch))
    try:
        built = [generate(n, scratch / "workloads" / n, args.scale) for n in args.workloads]
        figures = _retention_figures(runner, built, scratch, args.repeat, args.scale)
        date = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    finally:
        if not args.keep:
            shutil.rmtree(scratch, ignore_errors=True)
    text = report.retention_section(figures, command, date)
    args.out.write_text(report.merge(args.out.read_text(), text))
    log(f"wrote the retention section into {args.out}")


def _s3(
    runner: measure.Runner,
    workloads: list[Workload],
    scratch: Path,
    args: argparse.Namespace,
) -> s3_storage.Section | None:
    """The S3 part on the workloads it covers (mixed, small), or None if none was run."""
    chosen = [w for w in workloads if w.name in s3_storage.WORKLOADS]
    if not chosen:
        return None
    log("S3 storage on " + ", ".join(w.name for w in chosen))
    probes = 20 if args.quick else s3_storage.PROBES
    return s3_storage.run(runner, chosen, scratch, args.repeat, probes, log)


def _only_s3(args: argparse.Namespace, command: str) -> None:
    """Run the S3 part alone and replace its section in the existing report."""
    gnu_time = provision.debian_program("time", "time", "--version", not args.no_install)
    runner = measure.Runner(Path("/usr/bin/time") if gnu_time.path else None)
    scratch = Path(tempfile.mkdtemp(prefix="artifactstore-bench-", dir=args.scratch))
    try:
        names = [n for n in args.workloads if n in s3_storage.WORKLOADS]
        built = [generate(n, scratch / "workloads" / n, args.scale) for n in names]
        section = _s3(runner, built, scratch, args)
        date = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    finally:
        if not args.keep:
            shutil.rmtree(scratch, ignore_errors=True)
    assert section is not None  # parse() asked for a workload the S3 part covers
    text = report.s3_section(section, command, date, args.repeat)
    args.out.write_text(report.merge(args.out.read_text(), text))
    log(f"wrote the S3 section into {args.out}")


if __name__ == "__main__":
    main(sys.argv[1:])
