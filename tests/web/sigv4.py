"""AWS Signature Version 4 for the tests' own AWS calls (DynamoDB, the Management API): the
local stack verifies signatures as AWS does, and lets the local administrator (`local`/`local`,
the stack's fallback credentials) do anything."""

import datetime
import hashlib
import hmac
import urllib.parse


def _hmac(key, text):
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def sign(method, url, body=b"", service="execute-api", headers=None,
         region="us-east-1", key="local", secret="local"):
    """The headers to send with the request: `headers`, Host, X-Amz-Date and Authorization."""
    parts = urllib.parse.urlsplit(url)
    now = datetime.datetime.now(datetime.timezone.utc)
    amz_date, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
    signed = {k.lower(): v for k, v in (headers or {}).items()}
    signed["host"] = parts.netloc
    signed["x-amz-date"] = amz_date
    names = sorted(signed)
    # Every service but S3 signs the path encoded once more, as sent.
    path = urllib.parse.quote(parts.path or "/", safe="/-_.~")
    query = "&".join(sorted(
        f"{urllib.parse.quote(k, safe='-_.~')}={urllib.parse.quote(v, safe='-_.~')}"
        for k, v in urllib.parse.parse_qsl(parts.query, keep_blank_values=True)))
    canonical = "\n".join([
        method, path, query,
        "".join(f"{n}:{' '.join(str(signed[n]).split())}\n" for n in names),
        ";".join(names), hashlib.sha256(body).hexdigest()])
    scope = f"{day}/{region}/{service}/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope,
                         hashlib.sha256(canonical.encode()).hexdigest()])
    signing_key = _hmac(f"AWS4{secret}".encode(), day)
    for part in (region, service, "aws4_request"):
        signing_key = _hmac(signing_key, part)
    signature = hmac.new(signing_key, to_sign.encode(), hashlib.sha256).hexdigest()
    signed["authorization"] = (f"AWS4-HMAC-SHA256 Credential={key}/{scope}, "
                               f"SignedHeaders={';'.join(names)}, Signature={signature}")
    return signed
