"""Run every tool on every workload, alternating tools, and keep each step's samples.

Within one repetition each tool runs all its steps in a fresh work directory, one tool after
another; the order of the tools rotates from one repetition to the next, so a slow drift of
the machine (page cache, other load) falls on all of them alike. A failing command marks its
step as failed and skips the tool's later steps in that repetition; it never stops the run.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks import measure
from benchmarks.measure import Runner, Sample
from benchmarks.tools import Tool
from benchmarks.workloads import Workload


@dataclass(slots=True)
class StepResult:
    """The samples of one step of one tool, and the first error it met, if any."""

    tool: Tool
    role: str
    label: str
    samples: list[Sample] = field(default_factory=list)
    error: str | None = None

    def median_seconds(self) -> float | None:
        """Median wall time over the repetitions that succeeded, or None if none did."""
        return statistics.median(s.seconds for s in self.samples) if self.samples else None

    def peak_rss_kib(self) -> int | None:
        """The largest peak RSS over the repetitions, or None if none succeeded."""
        return max(s.peak_rss_kib for s in self.samples) if self.samples else None


@dataclass(frozen=True, slots=True)
class WorkloadResult:
    """A workload, every tool considered for it (missing ones too) and the step results."""

    workload: Workload
    tools: tuple[Tool, ...]
    steps: tuple[StepResult, ...]

    def find(self, tool: str, role: str) -> StepResult | None:
        """The step of tool `tool` in role `role`, or None if it has no such step."""
        for step in self.steps:
            if step.tool.name == tool and step.role == role:
                return step
        return None


def run_workload(
    runner: Runner,
    workload: Workload,
    tools: list[Tool],
    scratch: Path,
    repeat: int,
    drop_caches: bool,
    log: Callable[[str], None],
) -> WorkloadResult:
    """Time every available tool on workload, `repeat` times, and collect the results."""
    available = [t for t in tools if t.plan is not None]
    results: dict[tuple[str, str], StepResult] = {}
    for rep in range(repeat):
        shift = rep % len(available) if available else 0
        for tool in available[shift:] + available[:shift]:
            work = scratch / f"work-{workload.name}-{rep}-{tools.index(tool)}"
            work.mkdir(parents=True)
            try:
                _run_tool(runner, tool, workload, work, results, drop_caches, log, rep)
            finally:
                _remove(work)
    steps = tuple(results[key] for key in sorted(results, key=_order(tools, results)))
    return WorkloadResult(workload, tuple(tools), steps)


def _run_tool(
    runner: Runner,
    tool: Tool,
    workload: Workload,
    work: Path,
    results: dict[tuple[str, str], StepResult],
    drop_caches: bool,
    log: Callable[[str], None],
    rep: int,
) -> None:
    assert tool.plan is not None
    failed: str | None = None
    for step in tool.plan(workload.root, work):
        what = f"[{workload.name} #{rep + 1}] " + (
            step.label if tool.name == step.label else f"{tool.name} {step.label}"
        )
        result = results.setdefault(
            (tool.name, step.label), StepResult(tool, step.role, step.label)
        )
        if failed is not None:
            result.error = result.error or f"not run: {failed}"
            continue
        try:
            runner.run_all(step.prepare)
            if drop_caches:
                measure.drop_caches()
            else:
                # Start every timed step with nothing dirty in the page cache, so no tool pays
                # for writing back what the generator or the previous tool left behind.
                os.sync()
            sample = runner.run_all(step.commands)
        except measure.CommandError as exc:
            failed = f"{step.label} failed"
            result.error = result.error or exc.brief
            log(f"{what}: FAILED {exc}")
            continue
        result.samples.append(sample)
        log(f"{what}: {sample.seconds:.3f} s, {sample.peak_rss_kib / 1024:.0f} MiB")


def _order(
    tools: list[Tool], results: dict[tuple[str, str], StepResult]
) -> Callable[[tuple[str, str]], tuple[int, int]]:
    # Tools in the order given, steps in the order their plan lists them (insertion order).
    position = {tool.name: n for n, tool in enumerate(tools)}
    inserted = {key: n for n, key in enumerate(results)}
    return lambda key: (position[key[0]], inserted[key])


def _remove(path: Path) -> None:
    # DVC and restic leave read-only files behind; make them writable before removing.
    subprocess.run(["chmod", "-R", "u+w", str(path)], check=False, capture_output=True)
    shutil.rmtree(path, ignore_errors=True)
