#!/usr/bin/env python3
"""The docs cannot rot: every fenced block marked ```sh runnable in README.md
and docs/*.md runs, in order, one bash per file with `set -euo pipefail`,
against a registry this test starts (`serve` on a free port with the store
./registry.db in a temporary folder that is the blocks' working directory,
`lambda-registry` on PATH, sample-data/ and docs/ reachable as in a
checkout). "127.0.0.1:8080" in a block means that registry. A block fails
the test when it exits non-zero; the message names its file and line."""
import glob
import os
import re
import shutil
import subprocess

from lrtest import BIN, SRC, Server, check, finish, tmpdir

FENCE = re.compile(r"^(\s*)```sh runnable\s*$")


def blocks(path):
    """[(line, text)] of the runnable blocks of one Markdown file."""
    out, cur, indent, start = [], None, "", 0
    with open(path) as f:
        for n, line in enumerate(f, 1):
            if cur is None:
                m = FENCE.match(line)
                if m:
                    cur, indent, start = [], m.group(1), n
            elif line.strip() == "```":
                out.append((start, "".join(cur)))
                cur = None
            else:
                cur.append(line[len(indent):] if line.startswith(indent) else line)
    check(cur is None, "%s: a runnable block opened at line %d is never closed" % (path, start))
    return out


files = [os.path.join(SRC, "README.md")] + sorted(glob.glob(os.path.join(SRC, "docs", "*.md")))
total = 0
for path in files:
    found = blocks(path)
    if not found:
        continue
    rel = os.path.relpath(path, SRC)
    d = tmpdir()
    for name in ("sample-data", "docs"):
        os.symlink(os.path.join(SRC, name), os.path.join(d, name))
    srv = Server(store="sqlite:" + os.path.join(d, "registry.db"))
    try:
        script = ["set -euo pipefail"]
        for line, text in found:
            text = text.replace("127.0.0.1:8080", "127.0.0.1:%d" % srv.port)
            text = text.replace("localhost:8080", "127.0.0.1:%d" % srv.port)
            script.append("echo '## %s:%d' >&2\n%s" % (rel, line, text))
        env = dict(os.environ, PATH=os.path.dirname(os.path.abspath(BIN)) + ":" + os.environ["PATH"],
                   HOME=d)
        r = subprocess.run(["bash", "-c", "\n".join(script)], cwd=d, env=env,
                           capture_output=True, text=True, timeout=240)
        where = re.findall(r"^## (\S+)$", r.stderr, re.M)
        check(r.returncode == 0, "%s: the block at %s failed (exit %d):\n%s\n%s"
              % (rel, where[-1] if where else "?", r.returncode, r.stdout[-1500:],
                 r.stderr[-1500:]))
        total += len(found)
        print("%s: %d runnable blocks ran" % (rel, len(found)), flush=True)
    finally:
        srv.stop()
        shutil.rmtree(d, ignore_errors=True)
check(total > 0, "the docs have runnable blocks")
finish()
