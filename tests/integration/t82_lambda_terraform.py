#!/usr/bin/env python3
"""deploy/terraform parses (HCL parser @cdktf/hcl2json, pinned by
tests/terraform/package-lock.json and installed from it with npm ci into the
gitignored tests/terraform/node_modules; terraform itself is not installable
here) and holds the
function, role, permission and API resources wired to each other, with a
least-privilege policy covering exactly what the DynamoDB store calls."""

import json
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lrtest import check, finish, npm_ci  # noqa: E402

SRC = os.environ["LR_SOURCE_DIR"]
TF = os.path.join(SRC, "deploy", "terraform")
DEPS = os.path.join(SRC, "tests", "terraform")


PARSE_JS = """
const { parse } = require('@cdktf/hcl2json');
const fs = require('fs');
(async () => {
  const out = {};
  for (const f of process.argv.slice(1)) out[f] = await parse(f, fs.readFileSync(f, 'utf8'));
  process.stdout.write(JSON.stringify(out));
})().catch((e) => { console.error(String(e)); process.exit(1); });
"""


def parse_all():
    files = sorted(f for f in os.listdir(TF) if f.endswith(".tf"))
    check(files, "no .tf files")
    out = subprocess.run(["node", "-e", PARSE_JS] + [os.path.join(TF, f) for f in files],
                         cwd=DEPS, capture_output=True, text=True,
                         env=dict(os.environ, NODE_PATH=os.path.join(DEPS, "node_modules")))
    check(out.returncode == 0, "hcl2json: " + out.stderr)
    if out.returncode:
        return {}, files
    merged = {}
    for path, doc in json.loads(out.stdout).items():
        check(isinstance(doc, dict) and doc, "%s parsed to nothing" % path)
        for kind, blocks in doc.items():
            if kind in ("resource", "data"):
                for typ, named in blocks.items():
                    for name, body in named.items():
                        key = "%s.%s" % (typ, name)
                        check(key not in merged.setdefault(kind, {}), "%s declared twice" % key)
                        merged[kind][key] = body[0]
            elif kind in ("variable", "output"):
                for name, body in blocks.items():
                    merged.setdefault(kind, {})[name] = body[0]
            elif kind == "locals":
                for body in blocks:
                    merged.setdefault("locals", {}).update(body)
            else:
                merged.setdefault(kind, []).append(blocks)
    return merged, files


def strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from strings(v)


def refs(value):
    """Every resource/data/var/local reference inside a value's expressions."""
    found = set()
    for s in strings(value):
        for expr in re.findall(r"\$\{(.*?)\}(?!\})", s, re.S):
            for m in re.finditer(r"\b((?:data\.)?aws_[a-z0-9_]+\.[a-z0-9_]+(?:\[\d+\])?"
                                 r"(?:\.[a-z0-9_]+)?|var\.[a-z0-9_]+|local\.[a-z0-9_]+)", expr):
                found.add(re.sub(r"\[\d+\]", "", m.group(1)))
    return found


def refers(value, target):
    return any(r == target or r.startswith(target + ".") for r in refs(value))


def one(res, typ):
    keys = [k for k in res if k.startswith(typ + ".")]
    check(len(keys) == 1, "one %s, found %s" % (typ, keys))
    return (keys[0], res[keys[0]]) if keys else (typ + ".missing", {})


def store_actions():
    """The DynamoDB operations src/store/dynamodb.c issues, if it is there."""
    path = os.path.join(SRC, "src", "store", "dynamodb.c")
    if not os.path.exists(path):
        return None
    code = open(path).read()
    ops = set(re.findall(r'ddb_(?:request|write|doc_write)\(\s*\w+,\s*"([A-Za-z]+)"', code))
    # IAM has no action of its own for a transaction: each of its Put,
    # Update and Delete needs the permission of PutItem, UpdateItem,
    # DeleteItem (docs.aws.amazon.com/amazondynamodb/latest/developerguide/
    # transaction-apis-iam.html).
    if "TransactWriteItems" in ops:
        ops = (ops - {"TransactWriteItems"}) | {"PutItem", "UpdateItem", "DeleteItem"}
    return ops


def doc_statements(data, pol):
    """The statements of the policy document the role policy uses."""
    doc_key = next(iter(r for r in refs(pol.get("policy")) if r.startswith("data.")), "")
    return data.get(doc_key[len("data."):].rsplit(".json", 1)[0], {}).get("statement", [])


def main():
    npm_ci("terraform", "@cdktf/hcl2json")
    tf, files = parse_all()
    res, data = tf.get("resource", {}), tf.get("data", {})
    print("parsed %s: %d resources, %d data sources, %d variables, %d outputs" % (
        ", ".join(files), len(res), len(data), len(tf.get("variable", {})),
        len(tf.get("output", {}))))

    # Versions and provider: Terraform >= 1.5, AWS >= 5, no credentials.
    blob = json.dumps(tf.get("terraform", []))
    check('">= 1.5"' in blob, "required_version >= 1.5")
    check("hashicorp/aws" in blob and '">= 5.0"' in blob, "aws provider >= 5.0")
    provider = json.dumps(tf.get("provider", []))
    for word in ("access_key", "secret_key", "token", "profile", "shared_credentials"):
        check(word not in provider, "provider sets %s" % word)
    for f in os.listdir(TF):
        text = open(os.path.join(TF, f), errors="replace").read()
        check(not re.search(r"AKIA[0-9A-Z]{16}|aws_secret_access_key", text),
              "credential-like text in %s" % f)

    for v in ("region", "table_prefix", "function_name", "memory_size",
              "log_retention_days", "architecture", "api_key_enabled"):
        check(v in tf.get("variable", {}), "variable %s" % v)

    fn_key, fn = one(res, "aws_lambda_function")
    role_key, role = one(res, "aws_iam_role")
    pol_key, pol = one(res, "aws_iam_role_policy")
    perm_key, perm = one(res, "aws_lambda_permission")
    api_key, api = one(res, "aws_api_gateway_rest_api")
    r_key, route = one(res, "aws_api_gateway_resource")
    m_key, method = one(res, "aws_api_gateway_method")
    i_key, integ = one(res, "aws_api_gateway_integration")
    d_key, deploy = one(res, "aws_api_gateway_deployment")
    s_key, stage = one(res, "aws_api_gateway_stage")
    lg_key, logs = one(res, "aws_cloudwatch_log_group")

    # The function.
    check(fn.get("runtime") == "provided.al2023", "runtime provided.al2023")
    check(refers(fn.get("role"), role_key + ".arn"), "function role -> %s.arn" % role_key)
    check(refers(fn.get("architectures"), "var.architecture"), "architecture variable")
    check(refers(fn.get("memory_size"), "var.memory_size"), "memory variable")
    check(refers(fn.get("function_name"), "var.function_name"), "function name variable")
    check("filebase64sha256" in json.dumps(fn.get("source_code_hash")), "source_code_hash")
    check(refers(fn.get("filename"), "local.package_path"), "zip source")
    # Both ways to ship the zip: straight to Lambda (artifact_bucket null,
    # the default) or through an S3 object, never both at once.
    for v in ("artifact_bucket", "artifact_key"):
        check(v in tf.get("variable", {}), "variable %s" % v)
    check(tf["variable"].get("artifact_bucket", {}).get("default", "unset") is None,
          "artifact_bucket defaults to null: the direct upload stays the default")
    loc = tf.get("locals", {})
    check(refers(loc.get("use_s3"), "var.artifact_bucket") and "!= null" in loc.get("use_s3", ""),
          "use_s3 = artifact_bucket set")
    check(refers(loc.get("artifact_key"), "var.artifact_key"), "artifact_key local")
    s3_key, s3obj = one(res, "aws_s3_object")
    check(refers(s3obj.get("count"), "local.use_s3"), "the S3 object only with artifact_bucket")
    check(refers(s3obj.get("bucket"), "var.artifact_bucket") and
          refers(s3obj.get("key"), "local.artifact_key"), "object in the bucket under the key")
    check(refers(s3obj.get("source"), "local.package_path"), "the object is the zip")
    check("filebase64sha256" in json.dumps(s3obj.get("source_hash")) and
          refers(s3obj.get("source_hash"), "local.package_path"),
          "re-uploaded when the zip changes (source_hash)")
    for attr, target in (("s3_bucket", s3_key + ".bucket"), ("s3_key", s3_key + ".key"),
                         ("s3_object_version", s3_key + ".version_id")):
        check(refers(fn.get(attr), "local.use_s3") and refers(fn.get(attr), target),
              "function %s from the object when use_s3" % attr)
    fname = fn.get("filename", "")
    check(refers(fname, "local.use_s3") and re.search(r"use_s3 \? null :", fname),
          "no filename when the zip goes through S3: %r" % fname)
    for st_ in doc_statements(data, pol):
        check(not [a for a in st_.get("actions", []) if a.startswith("s3:")],
              "the role needs no S3 permission")
    check("lambda-registry-lambda.zip" in json.dumps(tf.get("locals", {})), "default zip path")
    env = json.dumps(fn.get("environment"))
    check("LAMBDA_REGISTRY_STORE" in env and "dynamodb:" in env and
          refers(fn.get("environment"), "var.table_prefix"), "store from the table prefix")
    check("LAMBDA_REGISTRY_ANSWER_FORMAT" in env and
          refers(fn.get("environment"), "var.answer_format"), "answer format from its variable")
    check(tf.get("variable", {}).get("answer_format", {}).get("default") == "text",
          "answer_format defaults to text")
    check(refers(fn.get("depends_on"), lg_key), "function after its log group")
    check(refers(logs.get("retention_in_days"), "var.log_retention_days"), "log retention")
    check("/aws/lambda/" in json.dumps(logs.get("name")) and
          refers(logs.get("name"), "var.function_name"), "log group named for the function")

    # The role and its policy: assumable by Lambda only; least privilege.
    assume = data.get(re.sub(r"^\$\{data\.|\.json\}$", "", role.get("assume_role_policy", "")), {})
    check("lambda.amazonaws.com" in json.dumps(assume), "role assumable by lambda")
    check(refers(pol.get("role"), role_key), "policy attached to the role")
    doc_key = next(iter(r for r in refs(pol.get("policy")) if r.startswith("data.")), "")
    doc = data.get(doc_key[len("data."):].rsplit(".json", 1)[0], {})
    stmts = doc.get("statement", [])
    check(stmts, "policy document %s has statements" % doc_key)
    granted = {}
    for st in stmts:
        for a in st.get("actions", []):
            granted.setdefault(a, []).append(st)
    check(not [a for a in granted if a.endswith("*")], "no wildcard actions")
    used = store_actions()
    if used is None:
        used = {"CreateTable", "DeleteItem", "DescribeTable", "GetItem", "PutItem", "Scan",
                "UpdateItem", "ListTables"}
        print("src/store/dynamodb.c not here: checking against the documented set")
    want = {"dynamodb:" + a for a in used}
    have = {a for a in granted if a.startswith("dynamodb:")}
    check(want == have, "DynamoDB actions granted %s, store uses %s" % (sorted(have),
                                                                         sorted(want)))
    for a in have - {"dynamodb:ListTables"}:
        for st in granted[a]:
            check(refers(st.get("resources"), "local.table_arns"),
                  "%s limited to the prefixed tables" % a)
    check("${var.table_prefix}*" in json.dumps(tf.get("locals", {}).get("table_arns")),
          "table ARNs end in the prefix and *")
    for st in granted.get("dynamodb:ListTables", []):
        check(st.get("actions") == ["dynamodb:ListTables"], "ListTables alone on *")
    for a in ("logs:CreateLogStream", "logs:PutLogEvents"):
        check(a in granted and all(refers(s.get("resources"), lg_key + ".arn")
                                   for s in granted[a]), "%s on the log group only" % a)

    # The API: POST /generate -> Lambda proxy, deployed to a stage.
    check(route.get("path_part") == "generate", "resource path generate")
    check(refers(route.get("parent_id"), api_key + ".root_resource_id"), "resource under root")
    check(method.get("http_method") == "POST", "method POST")
    check(refers(method.get("resource_id"), r_key + ".id"), "method on /generate")
    check(refers(method.get("api_key_required"), "var.api_key_enabled"), "api key switch")
    check(integ.get("type") == "AWS_PROXY" and integ.get("integration_http_method") == "POST",
          "Lambda proxy integration")
    check(refers(integ.get("uri"), fn_key + ".invoke_arn"), "integration -> function")
    check(refers(integ.get("resource_id"), r_key + ".id") and
          refers(integ.get("http_method"), m_key), "integration on the method")
    for k, body in ((r_key, route), (m_key, method), (i_key, integ), (d_key, deploy),
                    (s_key, stage)):
        check(refers(body.get("rest_api_id"), api_key + ".id"), "%s in the API" % k)
    check(refers(deploy.get("depends_on"), i_key), "deployment after the integration")
    check(refers(deploy.get("triggers"), i_key), "redeploys when the integration changes")
    check(refers(stage.get("deployment_id"), d_key + ".id"), "stage -> deployment")

    # The permission the first version lacked.
    check(perm.get("action") == "lambda:InvokeFunction", "permission action")
    check(perm.get("principal") == "apigateway.amazonaws.com", "permission principal")
    check(refers(perm.get("function_name"), fn_key), "permission -> function")
    check(refers(perm.get("source_arn"), api_key + ".execution_arn") and
          perm.get("source_arn", "").endswith("/POST/generate"), "permission source_arn")

    # Optional API key and usage plan, switched by the variable.
    for typ in ("aws_api_gateway_api_key", "aws_api_gateway_usage_plan",
                "aws_api_gateway_usage_plan_key"):
        k, body = one(res, typ)
        check(refers(body.get("count"), "var.api_key_enabled"), "%s switched" % k)
    _, plan = one(res, "aws_api_gateway_usage_plan")
    check(refers(plan.get("api_stages"), s_key) and refers(plan.get("api_stages"), api_key),
          "usage plan on the stage")

    # Outputs.
    outs = tf.get("output", {})
    check(refers(outs.get("invoke_url", {}).get("value"), s_key + ".invoke_url") and
          "/generate" in json.dumps(outs.get("invoke_url")), "output invoke_url")
    check(refers(outs.get("function_name", {}).get("value"), fn_key), "output function_name")

    # Every reference points at something declared.
    declared = set(res) | {"data." + k for k in data} | \
        {"var." + k for k in tf.get("variable", {})} | \
        {"local." + k for k in tf.get("locals", {})}
    for r in sorted(refs(tf)):
        base = ".".join(r.split(".")[:3 if r.startswith("data.") else 2])
        check(base in declared, "reference to undeclared %s" % r)

    finish()


if __name__ == "__main__":
    main()
