"""Benchmark suite: artifactstore against the machine's physical limits and its peers.

`python -m benchmarks` (or `scripts/bench`) generates deterministic workloads (`workloads`),
times every tool on them as subprocesses (`tools`, `measure`, `suite`), runs the remote client
and S3 storage against loopback servers (`remote`, `s3_storage`) and the micro-benchmarks
(`micro`), and writes `docs/PERFORMANCE.md` (`machine`, `report`). Words used
throughout: a *workload* is a generated directory tree; a *tool* is artifactstore, a physical
limit (cp, read, hashing) or a peer (git, restic, DVC); an *operation* is one timed step of a
tool, such as `push`; a *sample* is the wall time and peak RSS of one run of an operation.
Nothing here is imported by `artifactstore`, and the default test run only smoke-tests it.
"""
