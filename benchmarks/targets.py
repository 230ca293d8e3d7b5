"""The speed targets (issue 6, raised by issue 17; remote ones issue 12), each checked
against one run's figures.

A target compares an artifactstore figure with a bound: a multiple of a physical limit, a
peer's time, or a fixed number. Targets whose figures the run did not produce (a workload
not selected, a peer missing) are listed with `met` None, so a gap is never silent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from benchmarks import micro, remote
from benchmarks.suite import WorkloadResult

AS = "artifactstore"
CP = "cp -r + sync"
SHA = "SHA-256 (hashlib, 1 thread)"
DUAL = "both digests (2 threads)"
PEERS = ("git", "restic", "dvc")
RSS_LIMIT_MIB = 100
STARTUP_LIMIT_MS = 100
REPLAY_EVENTS = 100_000
REPLAY_LIMIT_S = 5
REMOTE_LIMIT = 1.5
LIMIT = 1.2
"""Issue 17's bound on a ratio to a physical limit: push, pull, re-push and verify."""


@dataclass(frozen=True, slots=True)
class Target:
    """One target: what it asks, the measured value, the bound, and whether it is met."""

    label: str
    measured: str
    goal: str
    met: bool | None


def _seconds(result: WorkloadResult, tool: str, role: str) -> float | None:
    step = result.find(tool, role)
    return step.median_seconds() if step else None


def _ratio_target(
    label: str, ours: float | None, floors: Sequence[float | None], bound: float, what: str
) -> Target:
    if ours is None or not floors or any(f is None for f in floors):
        return Target(label, "not measured", f"≤ {bound:g}x {what}", None)
    floor = max(f for f in floors if f is not None)
    ratio = ours / floor
    return Target(
        label,
        f"{ratio:.2f}x ({ours:.3f} s vs {floor:.3f} s)",
        f"≤ {bound:g}x {what}",
        ratio <= bound,
    )


def _peer_target(result: WorkloadResult, role: str, label: str, peer: str) -> Target:
    ours = _seconds(result, AS, role)
    theirs = _seconds(result, peer, role)
    name = f"{result.workload.name} {label} vs {peer}"
    if ours is None or theirs is None:
        why = "peer missing" if not any(t.name == peer and t.plan for t in result.tools) else "n/a"
        return Target(name, why, "faster (< 1x)", None)
    return Target(
        name,
        f"{ours / theirs:.2f}x ({ours:.3f} s vs {theirs:.3f} s)",
        "faster (< 1x)",
        ours < theirs,
    )


def check(results: Sequence[WorkloadResult], figures: Sequence[micro.Figure]) -> list[Target]:
    """Every target that applies to these results and micro figures."""
    by_name = {r.workload.name: r for r in results}
    targets: list[Target] = []
    if big := by_name.get("big"):
        seconds = {tool: _seconds(big, tool, "limit") for tool in (CP, SHA, DUAL)}
        targets += [
            _ratio_target(
                "big push",
                _seconds(big, AS, "store"),
                [seconds[CP], seconds[SHA]],
                LIMIT,
                "max(cp + sync, SHA-256)",
            ),
            _ratio_target(
                "big pull", _seconds(big, AS, "restore"), [seconds[CP]], LIMIT, "cp + sync"
            ),
            _ratio_target(
                "big verify",
                _seconds(big, AS, "verify"),
                [seconds[DUAL]],
                1.1,
                "both digests on 2 threads",
            ),
        ]
        targets += [_peer_target(big, "restore", "pull", peer) for peer in PEERS]
    for name in ("small", "mixed"):
        if found := by_name.get(name):
            for role, label in (("store", "push"), ("restore", "pull")):
                targets += [_peer_target(found, role, label, peer) for peer in PEERS]
            targets.append(
                _ratio_target(
                    f"{name} verify",
                    _seconds(found, AS, "verify"),
                    [_seconds(found, DUAL, "limit")],
                    LIMIT,
                    "both digests on 2 threads",
                )
            )
    if small := by_name.get("small"):
        targets.append(_peer_target(small, "verify", "verify", "git"))
    for result in results:
        targets.append(
            _ratio_target(
                f"{result.workload.name} re-push (unchanged)",
                _seconds(result, AS, "store again"),
                [_seconds(result, DUAL, "limit")],
                LIMIT,
                "hashing alone (both digests)",
            )
        )
    targets.append(_rss_target(results))
    targets += _micro_targets(figures)
    return targets


def _rss_target(results: Sequence[WorkloadResult]) -> Target:
    peaks = [
        (step.peak_rss_kib() or 0, f"{r.workload.name} {step.label}")
        for r in results
        for step in r.steps
        if step.tool.name == AS
    ]
    label = "peak RSS of every artifactstore command"
    goal = f"< {RSS_LIMIT_MIB} MiB"
    if not peaks:
        return Target(label, "not measured", goal, None)
    peak, where = max(peaks)
    return Target(
        label, f"{peak / 1024:.0f} MiB (largest: {where})", goal, peak < RSS_LIMIT_MIB * 1024
    )


def _micro_targets(figures: Sequence[micro.Figure]) -> list[Target]:
    by_label = {f.label: f for f in figures}
    targets = []
    if startup := by_label.get(micro.STARTUP):
        targets.append(
            Target(
                "`artifactstore version`",
                f"{startup.value:.0f} ms",
                f"< {STARTUP_LIMIT_MS} ms",
                startup.value < STARTUP_LIMIT_MS,
            )
        )
    for label in (remote.REMOTE_PUSH, remote.REMOTE_PULL, remote.REMOTE_REPUSH):
        if found := by_label.get(label):
            targets.append(
                Target(
                    f"mixed {label}",
                    f"{found.value:.2f}x ({found.note.split(';')[0]})",
                    f"≤ {REMOTE_LIMIT:g}x",
                    found.value <= REMOTE_LIMIT,
                )
            )
    if replay := by_label.get(micro.REPLAY):
        seconds = REPLAY_EVENTS / replay.value
        targets.append(
            Target(
                f"replay of {REPLAY_EVENTS:,} events (SQLite)",
                f"{seconds:.2f} s (from {replay.note})",
                f"< {REPLAY_LIMIT_S} s",
                seconds < REPLAY_LIMIT_S,
            )
        )
    return targets
