"""cfn-lint on infra/template.yaml, before and after the SAM transform.

cfn-lint (1.x) checks SAM resources against SAM's schemas without expanding them, so what the
transform generates (roles and their policies, API routes and permissions, event source
mappings) is never linted. Here aws-sam-translator, the library behind the
AWS::Serverless-2016-10-31 transform, expands the template as CloudFormation would after
`sam package` (which replaces each local CodeUri by an S3 location), and cfn-lint checks the
result as well.

The expansion is also what the local stack checks every AWS call against (infra/local/iam):
`--expand` writes it to a file instead of linting.

Usage: python check_template.py TEMPLATE              lint
       python check_template.py --expand TEMPLATE OUT  write the expanded template to OUT
(with cfn-lint and aws-sam-translator installed)
"""

import copy
import json
import os
import subprocess
import sys
import tempfile

from cfnlint.decode import decode
from samtranslator.public.exceptions import InvalidDocumentException
from samtranslator.translator.transform import transform


class NoManagedPolicies:
    """The template names no managed policy by name, so none needs looking up in IAM."""

    def load(self):
        return {}


def packaged(template):
    """The template as `sam package` leaves it: code in S3 instead of a local path."""
    template = copy.deepcopy(template)
    for logical_id, resource in template.get("Resources", {}).items():
        if resource.get("Type") == "AWS::Serverless::Function":
            resource["Properties"]["CodeUri"] = f"s3://sam-package-bucket/{logical_id}.zip"
    return template


def expand(path):
    """The template after the SAM transform, or None (the problems printed)."""
    template, problems = decode(path)
    if problems:
        for problem in problems:
            print(problem, file=sys.stderr)
        return None
    # The transform resolves pseudo parameters such as AWS::Region from the environment.
    os.environ.setdefault("AWS_DEFAULT_REGION", "eu-west-1")
    try:
        return transform(json.loads(json.dumps(packaged(template))), {}, NoManagedPolicies())
    except InvalidDocumentException as e:
        for cause in e.causes:
            print(f"SAM transform: {cause.message}", file=sys.stderr)
        return None


def write_expanded(path, out):
    expanded = expand(path)
    if expanded is None:
        return 1
    with open(out + ".tmp", "w") as f:
        json.dump(expanded, f, indent=1)
    os.replace(out + ".tmp", out)
    return 0


def main(path):
    expanded = expand(path)
    if expanded is None:
        return 1
    with tempfile.TemporaryDirectory() as work:
        out = os.path.join(work, "template.expanded.json")
        with open(out, "w") as f:
            json.dump(expanded, f, indent=1)
        status = subprocess.call([os.path.join(os.path.dirname(sys.executable), "cfn-lint"), "--", path, out])
    kinds = sorted({r["Type"] for r in expanded["Resources"].values()})
    print(f"cfn-lint: {'passed' if status == 0 else 'FAILED'} on {path} and its SAM expansion "
          f"({len(expanded['Resources'])} resources: {', '.join(kinds)})")
    return status


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--expand":
        sys.exit(write_expanded(sys.argv[2], sys.argv[3]))
    sys.exit(main(sys.argv[1]))
