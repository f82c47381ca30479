#!/usr/bin/env python3
# Usage, with `make services` running and the variables it prints exported:
#   python3 infra/local/bench/token_overhead.py "$(chatctl token 1)" 1000
# Per-request cost of a token at the gateway: GET /users/ through the trust-client address
# (no token) and the verifying address (bearer token), interleaved, one connection each.
import http.client, os, statistics, sys, time
def client(url):
    host = url.split("//")[1]
    return http.client.HTTPConnection(host)
plain, jwt = client(os.environ["CHAT_API_URL"]), client(os.environ["CHAT_API_URL_JWT"])
token = sys.argv[1]; n = int(sys.argv[2])
times = {"trust-client": [], "jwt": []}
for i in range(n + 50):
    for name, conn, headers in (("trust-client", plain, {}), ("jwt", jwt, {"Authorization": "Bearer " + token})):
        t = time.perf_counter()
        conn.request("GET", "/users/", headers=headers)
        r = conn.getresponse(); r.read()
        assert r.status == 200, r.status
        if i >= 50:
            times[name].append((time.perf_counter() - t) * 1000)
for name, ts in times.items():
    ts.sort()
    print(f"{name}: n={len(ts)} p50 {statistics.median(ts):.2f} ms p99 {ts[int(len(ts)*0.99)-1]:.2f} ms")
