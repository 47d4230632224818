"""Where a `taskloom` command spends its CPU: a sampling profile by process CPU time.

Runs `taskloom ARGS...` in this process with a SIGPROF timer that fires every
`--interval` seconds of CPU time (user + sys, so a busy machine does not skew it) and
records the Python stack each time. Prints the share of samples by module group (the
innermost frame's), by function (innermost) and by function anywhere on the stack
(inclusive), and writes them as JSON. cProfile is not used because its per-call cost
inflates small functions many times over; a sampling thread is not used because it
only sees the main thread where that thread releases the GIL (trio's epoll poll).

    .venv/bin/python benchmarks/sample_profile.py -o results/profile_fcfs300.json -- \\
        bench mixed --programs 300 --rate 4 --no-progress -o results/profile_fcfs300
"""

from __future__ import annotations

import argparse
import json
import runpy
import signal
import sys
from collections import Counter
from pathlib import Path
from types import CodeType, FrameType

_ROOT = str(Path(__file__).resolve().parents[1]) + "/"


def _function(code: CodeType) -> str:
    path = code.co_filename.replace(_ROOT, "").split("site-packages/")[-1]
    return f"{path}:{code.co_name}"


def _group(code: CodeType) -> str:
    path = code.co_filename.replace(_ROOT, "")
    if "site-packages/" in path:
        return "lib:" + path.split("site-packages/")[1].split("/")[0]
    if path.startswith("taskloom/"):
        return "/".join(path.split("/")[:3])
    return "stdlib and startup"


class Sampler:
    def __init__(self) -> None:
        self.samples = 0
        self.groups: Counter[str] = Counter()
        self.own: Counter[str] = Counter()
        self.inclusive: Counter[str] = Counter()

    def sample(self, signum: int, frame: FrameType | None) -> None:
        if frame is None:
            return
        self.samples += 1
        self.groups[_group(frame.f_code)] += 1
        self.own[_function(frame.f_code)] += 1
        seen: set[str] = set()
        while frame is not None:
            name = _function(frame.f_code)
            if name not in seen:
                seen.add(name)
                self.inclusive[name] += 1
            frame = frame.f_back

    def shares(self, counter: Counter[str], top: int) -> dict[str, float]:
        return {name: count / self.samples for name, count in counter.most_common(top)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", type=Path, default=Path("results/profile.json"))
    parser.add_argument("--interval", type=float, default=0.001, help="CPU seconds")
    parser.add_argument("--top", type=int, default=60)
    parser.add_argument("command", nargs=argparse.REMAINDER, help="taskloom's arguments")
    args = parser.parse_args()
    command = [part for part in args.command if part != "--"]
    sampler = Sampler()
    signal.signal(signal.SIGPROF, sampler.sample)
    signal.setitimer(signal.ITIMER_PROF, args.interval, args.interval)
    sys.argv = ["taskloom", *command]
    try:
        runpy.run_module("taskloom", run_name="__main__")
    except SystemExit as done:
        if done.code not in (None, 0):
            raise
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0, 0)
    result = {"command": ["taskloom", *command], "interval_s": args.interval,
              "samples": sampler.samples,
              "groups": sampler.shares(sampler.groups, args.top),
              "own": sampler.shares(sampler.own, args.top),
              "inclusive": sampler.shares(sampler.inclusive, args.top)}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    for title, key in (("by module group", "groups"), ("by function", "own"),
                       ("inclusive", "inclusive")):
        print(f"== {title}")
        for name, share in list(result[key].items())[:30]:
            print(f"{100 * share:5.1f}% {name}")
    print(f"{sampler.samples} samples; wrote {args.output}")


if __name__ == "__main__":
    main()
