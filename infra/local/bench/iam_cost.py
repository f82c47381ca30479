#!/usr/bin/env python3
# What local IAM adds to a DynamoDB call: signed GetItems on one keep-alive connection, straight
# to DynamoDB Local and through local IAM as a function, against a running make dev:
#   python3 infra/local/bench/iam_cost.py [requests]
import http.client, json, statistics, sys, time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "tests/web"))
import sigv4

BODY = json.dumps({"TableName": "chat-users", "Key": {"kind": {"S": "user"}, "id": {"N": "1"}}}).encode()

def run(port, key, secret, n):
    conn = http.client.HTTPConnection("127.0.0.1", port)
    times = []
    for i in range(n + 100):
        headers = sigv4.sign("POST", f"http://127.0.0.1:{port}/", BODY, service="dynamodb", key=key, secret=secret,
                             headers={"X-Amz-Target": "DynamoDB_20120810.GetItem",
                                      "Content-Type": "application/x-amz-json-1.0"})
        started = time.perf_counter()
        conn.request("POST", "/", body=BODY, headers=headers)
        reply = conn.getresponse()
        data = reply.read()
        if i >= 100:  # the first hundred warm up
            times.append((time.perf_counter() - started) * 1000)
        assert reply.status == 200, data
    times.sort()
    return statistics.median(times), times[int(len(times) * 0.99)]

n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
for name, port, key, secret in [("DynamoDB Local, direct", 8101, "local", "local"),
                                ("through local IAM, as get-messages", 8100, "local-fn-get-messages",
                                 "local-secret-get-messages")]:
    p50, p99 = run(port, key, secret, n)
    print(f"{name:<36} p50 {p50:.2f} ms   p99 {p99:.2f} ms")
