#!/usr/bin/env python3
"""The manual pages come from the option tables --help prints: every command
has a page, every option of its --help (and of its subcommands') is on it
with its environment variable, the pages render without groff warnings, and
`cmake --install` puts them where man finds them."""
import os
import re
import shutil
import subprocess

from lrtest import BIN, check, finish, run_cli, tmpdir

d = tmpdir()
SRC = os.environ.get("LR_SOURCE_DIR", ".")
BUILD = os.path.dirname(BIN)

top = run_cli(["--help"]).stdout.decode()
commands = re.findall(r"^  ([a-z][a-z-]*) ", top.split("commands:", 1)[1], re.M)
check(len(commands) >= 7 and "serve" in commands and "agent" in commands,
      "--help lists the commands: %r" % commands)


def help_options(args):
    out = run_cli(args + ["--help"]).stdout.decode()
    return set(re.findall(r"^  --([a-z][a-z0-9-]*)", out, re.M)) - {"help"}


def roff_options(page):
    return set(re.findall(r"^\\fB\\-\\-([a-z][a-z0-9\\-]*)\\fR", page, re.M))


index = run_cli(["--man"]).stdout.decode()
check(index.startswith(".TH LAMBDA\\-REGISTRY 1 "), "lambda-registry(1) header")
for cmd in commands:
    p = run_cli(["--man", cmd])
    check(p.returncode == 0, "--man %s: %r" % (cmd, p.stderr))
    page = p.stdout.decode()
    check(page.startswith(".TH LAMBDA\\-REGISTRY\\-%s 1 " % cmd.upper().replace("-", "\\-")),
          "%s: page header" % cmd)
    check(("lambda\\-registry\\-%s" % cmd.replace("-", "\\-")) in index,
          "lambda-registry(1) points at lambda-registry-%s(1)" % cmd)
    got = {o.replace("\\-", "-") for o in roff_options(page)} - {"help"}
    want = help_options([cmd])
    # A command with subcommands ("settings put") documents theirs too.
    subs = re.findall(r"^\.SS (.*)$", page, re.M)
    for sub in subs:
        want |= help_options(sub.replace("\\-", "-").split())
    check(got == want, "%s: the page's options equal --help's: only on the page %r, "
          "only in --help %r" % (cmd, sorted(got - want), sorted(want - got)))
    for opt in want:
        env = "LAMBDA_REGISTRY_" + opt.upper().replace("-", "_")
        check(env in page, "%s: --%s names %s" % (cmd, opt, env))
    if shutil.which("groff"):
        r = subprocess.run(["groff", "-man", "-ww", "-z", "-Tutf8"], input=page.encode(),
                           capture_output=True)
        check(r.returncode == 0 and not r.stderr, "%s: groff warns: %r" % (cmd, r.stderr[:300]))
check(run_cli(["--man", "frobnicate"]).returncode == 2, "--man of an unknown command: 2")

# The build wrote the same pages, and an install puts them under man1.
for cmd in commands:
    path = os.path.join(BUILD, "man", "lambda-registry-%s.1" % cmd)
    with open(path) as f:
        check(f.read() == run_cli(["--man", cmd]).stdout.decode(), "%s is current" % path)
if shutil.which("cmake") and os.path.exists(os.path.join(BUILD, "cmake_install.cmake")):
    dest = os.path.join(d, "root")
    r = subprocess.run(["cmake", "--install", BUILD, "--prefix", "/usr"],
                       env=dict(os.environ, DESTDIR=dest), capture_output=True)
    check(r.returncode == 0, "cmake --install: %r" % r.stderr[-300:])
    for cmd in commands:
        check(os.path.exists(os.path.join(dest, "usr/share/man/man1/lambda-registry-%s.1" % cmd)),
              "installed lambda-registry-%s.1" % cmd)
    check(os.access(os.path.join(dest, "usr/bin/lambda-registry"), os.X_OK), "installed the binary")
finish()
