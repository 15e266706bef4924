#!/usr/bin/env bash
# Benchmarks the release `engine` against the in-process simulator.
#   scripts/bench.sh            # 5x1, 100x10, 1000x100, 400x1, polling check, resume after SIGKILL
#   scripts/bench.sh --case 1000x100 --case 400x1   # chosen sizes (BATON_BENCH_KEEP=1 keeps state dirs)
#   scripts/bench.sh --smoke    # smallest size only (CI)
#   BATON_CONTROL_PLANE=$PWD/target/realcp scripts/bench.sh --real --runs 3
#                               # engine vs scripts/seed-by-hand.sh on the real control plane
#                               # (20x0 and 100x0; BENCHMARKS.md, issue 13)
# Writes bench-results.json and bench-results.md in the current directory.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p baton-cli -p baton-bench
target="${CARGO_TARGET_DIR:-target}"
exec "$target/release/baton-bench" --engine "$target/release/engine" \
  --out bench-results.json --markdown bench-results.md "$@"
