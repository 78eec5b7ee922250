"""This checkout against another: which one runs a backlog's `run --once` faster.

On two shared cores one run moves by 10 to 20 %, more than most changes gain, so a
change is judged by interleaved rounds: each round runs both checkouts over the same
backlog (N simple requests, fresh servers each time), in alternating order. Prints
each run's wall time and CPU (the worker and its reply process, from rusage), then
the medians. For the commit before yours:

    git worktree add /tmp/before HEAD~1
    .venv/bin/python bench/ab.py /tmp/before --rounds 10

Both sides run with this venv; each loads its own `processor` through PYTHONPATH,
from a neutral working directory: `python -m` puts the working directory first on
sys.path, so from the repository root both would load this checkout. The first lines
printed say which files each side loaded.

Run: .venv/bin/python bench/ab.py OTHER_CHECKOUT [--rounds 10] [--n 2000]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _servers import REPO, cli_env, load_requests, run_once, servers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("other", type=Path, help="another checkout (e.g. a git worktree)")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--n", type=int, default=2000, help="requests in each backlog")
    args = parser.parse_args()

    sides = {"this": REPO, "other": args.other.resolve()}
    with tempfile.TemporaryDirectory(prefix="ab-") as neutral:
        compare(sides, args.rounds, args.n, Path(neutral))


def compare(sides: dict[str, Path], rounds: int, n: int, neutral: Path) -> None:
    for name, root in sides.items():
        loaded = subprocess.run(
            [sys.executable, "-c", "import processor; print(processor.__file__)"],
            capture_output=True,
            text=True,
            env={**cli_env(), "PYTHONPATH": str(root)},
            cwd=neutral,
            check=True,
        ).stdout.strip()
        print(f"{name:5s} loads {loaded}")

    walls: dict[str, list[float]] = {name: [] for name in sides}
    cpus: dict[str, list[float]] = {name: [] for name in sides}
    for number in range(rounds):
        order = list(sides) if number % 2 == 0 else list(reversed(sides))
        for name in order:
            wall, cpu = one_run(sides[name], n, neutral)
            walls[name].append(wall)
            cpus[name].append(cpu)
            print(
                f"round {number + 1:2d}  {name:5s}  wall {wall:5.2f} s  cpu {cpu:5.2f} s",
                flush=True,
            )
    for name in sides:
        print(
            f"{name:5s} median wall {statistics.median(walls[name]):5.2f} s, "
            f"median cpu {statistics.median(cpus[name]):5.2f} s  ({sides[name]})"
        )


def one_run(root: Path, n: int, cwd: Path) -> tuple[float, float]:
    """`run --once` of the checkout at `root` over a fresh backlog: wall and CPU seconds."""
    with servers() as env:
        load_requests(env.dovecot, range(n))
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        wall, _ = run_once(env, checkout=root, cwd=cwd)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


if __name__ == "__main__":
    main()
