#!/usr/bin/env python3
# CPU of a process tree over an interval, by process name; for an idle make dev:
#   python3 infra/local/bench/idle_cpu.py "$(pgrep -f "stack.sh dev" | head -1)" 60
import os, sys, time
def tree(root):
    kids = {}
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                ppid = int(open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()[1])
                kids.setdefault(ppid, []).append(int(p))
            except OSError: pass
    out, todo = [], [root]
    while todo:
        p = todo.pop(); out.append(p); todo += kids.get(p, [])
    return out
def ticks(pid):
    try:
        s = open(f"/proc/{pid}/stat").read()
        name = s[s.index("(")+1:s.rindex(")")]
        f = s.rsplit(")", 1)[1].split()
        return name, int(f[11]) + int(f[12])
    except OSError: return None, 0
root, secs = int(sys.argv[1]), float(sys.argv[2])
pids = tree(root)
before = {p: ticks(p) for p in pids}
time.sleep(secs)
hz = os.sysconf("SC_CLK_TCK"); total = 0; by = {}
for p in pids:
    name, t = ticks(p)
    if name is None: continue
    d = t - before[p][1]; total += d
    by[name] = by.get(name, 0) + d
print(f"total {100*total/hz/secs:.1f}% of a core over {secs:.0f} s")
for n, d in sorted(by.items(), key=lambda x: -x[1])[:10]:
    print(f"  {n}: {100*d/hz/secs:.1f}%")
