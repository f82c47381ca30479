#!/usr/bin/env python3
# CPU milliseconds each function's instances spend per message over one e2e.py run against a
# running make dev (all their processes' user + system time, from /proc), e.g.:
#   python3 infra/local/bench/cpu_per_message.py -n 500 --rate 50
#   python3 infra/local/bench/cpu_per_message.py -n 2500 --rate 0 --concurrency 32
# Run it with the bench venv's Python (make bench installs it), which e2e.py needs.
import os, subprocess, sys
from pathlib import Path

FUNCTIONS = ("send-message", "kafka-consumer")


def ticks():
    """Clock ticks used so far by the instances of each function, by function."""
    used = dict.fromkeys(FUNCTIONS, 0)
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode()
        except OSError:
            continue
        name = os.path.basename(command)
        if name in used:
            fields = stat.rsplit(")", 1)[1].split()
            used[name] += int(fields[11]) + int(fields[12])
    return used


def main():
    args = sys.argv[1:]
    n = int(args[args.index("-n") + 1]) if "-n" in args else 300
    before = ticks()
    e2e = Path(__file__).with_name("e2e.py")
    run = subprocess.run([sys.executable, str(e2e), *args], capture_output=True, text=True)
    if run.returncode != 0:
        raise SystemExit(f"e2e.py failed: {run.stderr[-2000:]}")
    after = ticks()
    print(run.stdout.strip().splitlines()[-1])
    hz = os.sysconf("SC_CLK_TCK")
    for name in FUNCTIONS:
        print(f"{name}: {1000 * (after[name] - before[name]) / hz / n:.2f} ms of CPU per message")


if __name__ == "__main__":
    main()
