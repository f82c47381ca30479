"""`make bench`: the same cases against our stack and against the peer (the original FastAPI +
Kafka app's architecture on the same broker), alternating, and one table of both.

Cases: 50 messages/s with one subscriber, flat out (32 POSTs in flight), and 100 subscribers
of one group at 20 messages/s. Latency is from the start of a POST to its frame on a socket
(every subscriber's frames count). Each side gets a short warm-up first."""
import argparse, datetime, json, pathlib, subprocess, sys

CASES = [
    ("50 msg/s, 1 subscriber", ["--rate", "50"], 500),
    ("flat out, 32 in flight", ["--rate", "0", "--concurrency", "32"], 2000),
    ("20 msg/s, 100 subscribers", ["--rate", "20", "--subscribers", "100"], 200),
]


def run(base, args, n, label, scale):
    command = [sys.executable, "e2e.py", "--base", base, "-n", str(max(1, int(n * scale))), *args, "--label", label]
    out = subprocess.run(command, capture_output=True, text=True, timeout=900)
    lines = [l for l in out.stdout.splitlines() if l.startswith("{")]
    if out.returncode != 0 or not lines:
        raise SystemExit(f"{label} failed ({out.returncode}): {out.stderr[-2000:]}")
    return json.loads(lines[-1])


def cell(r):
    lost = r["expected"] - r["delivered"]
    errors = r["http_errors"]
    return (f"p50 {r['p50_ms']:.0f} / p99 {r['p99_ms']:.0f} ms, {r['throughput_msgs_s']:.0f} msg/s"
            + (f", {lost} lost" if lost else "") + (f", {errors} HTTP errors" if errors else ""))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ours", required=True)
    ap.add_argument("--peer", required=True)
    ap.add_argument("--scale", type=float, default=1.0, help="multiplies every case's message count")
    ap.add_argument("--mode", default="unknown", help="how the measured stack runs its functions")
    ap.add_argument("--save",
                    help="a folder where each mode's last table is kept and shown beside the other")
    a = ap.parse_args()
    for side, base in (("ours", a.ours), ("peer", a.peer)):
        run(base, ["--rate", "50"], 200, f"warm-up {side}", 1.0)
    rows = []
    for name, args, n in CASES:
        ours = run(a.ours, args, n, f"ours: {name}", a.scale)
        peer = run(a.peer, args, n, f"peer: {name}", a.scale)
        print(json.dumps(ours), file=sys.stderr)
        print(json.dumps(peer), file=sys.stderr)
        rows.append((name, ours, peer))
    table = [f"ours: the functions as {a.mode}", "",
             "| case | ours (this stack) | peer (the original app's architecture) |", "|---|---|---|"]
    table += [f"| {name} | {cell(ours)} | {cell(peer)} |" for name, ours, peer in rows]
    print("\n".join(table))
    if a.save:
        others = save(pathlib.Path(a.save), a.mode, table, a.scale)
        for mode, text in others:
            print(f"\nThe last run with the functions as {mode}:\n{text}")


def save(folder, mode, table, scale=1.0):
    """Keeps this run's table under its mode (debug or optimized) and returns the other modes'
    last tables, so that every run shows both."""
    folder.mkdir(parents=True, exist_ok=True)
    kind = "debug" if mode.startswith("debug") else "optimized"
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    scaled = "" if scale == 1.0 else f", message counts scaled by {scale}"
    body = "\n".join(table[2:])
    (folder / f"{kind}.md").write_text(f"{mode}\n(measured {stamp}{scaled})\n{body}\n")
    others = []
    for path in sorted(folder.glob("*.md")):
        if path.stem != kind:
            other_mode, text = path.read_text().split("\n", 1)
            others.append((other_mode, text))
    return others


if __name__ == "__main__":
    main()
