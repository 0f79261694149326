#!/usr/bin/env python3
"""The Lambda package: what the zip holds, that nothing in it needs a glibc
newer than AL2023's 2.34, that bootstrap loads every bundled library from
its own lib/ in a clean environment, and that building it again from the
same sources, in another directory, gives the same zip bytes."""

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lrtest import check, finish, skip  # noqa: E402
from lambda_emulator import RuntimeAPI, rest_event  # noqa: E402

BIN = os.environ["LR_BIN"]
SRC = os.environ["LR_SOURCE_DIR"]
LAMBDA_BIN = os.path.join(os.path.dirname(BIN), "lambda-registry-lambda")
SCRIPT = os.path.join(SRC, "scripts", "lambda-package.sh")
MAX_GLIBC = (2, 34)
GLIBC_LIBS = re.compile(r"^(libc|libm|libpthread|libdl|librt|libresolv|libutil|libanl|"
                        r"libBrokenLocale)\.so\.|^ld-linux.*\.so\.|^linux-vdso\.so\.")
EPOCH = "1700000000"


def package(binary, out):
    env = dict(os.environ, SOURCE_DATE_EPOCH=EPOCH)
    subprocess.run([SCRIPT, binary, out], check=True, env=env, stdout=subprocess.DEVNULL)


def unpack(zip_path, dest):
    with zipfile.ZipFile(zip_path) as z:
        for info in z.infolist():
            z.extract(info, dest)
            os.chmod(os.path.join(dest, info.filename), info.external_attr >> 16 & 0o777)


def test_contents(zip_path, pkg):
    with zipfile.ZipFile(zip_path) as z:
        infos = z.infolist()
    names = [i.filename for i in infos]
    check(names == sorted(names), "entries sorted")
    check(names[0] == "bootstrap", "bootstrap first: %s" % names[:3])
    check(all(n == "bootstrap" or re.match(r"^lib/[^/]+\.so[.0-9]*$", n) for n in names),
          "only bootstrap and lib/*.so*: %s" % names)
    check(len({i.date_time for i in infos}) == 1, "one fixed time for every entry")
    check(infos[0].external_attr >> 16 & 0o777 == 0o755, "bootstrap is 0755")
    check(all(i.external_attr >> 16 & 0o777 == 0o644 for i in infos[1:]), "libraries 0644")
    libs = [n[4:] for n in names[1:]]
    check(not [n for n in libs if GLIBC_LIBS.match(n)], "no glibc library bundled")
    for need in ("libcurl.so.4", "libjansson.so.4", "libsqlite3.so.0", "libssl.so.3"):
        check(need in libs, "%s bundled" % need)
    print("zip: %d bytes, %d libraries" % (os.path.getsize(zip_path), len(libs)))

    # Every NEEDED of every file is in lib/ or is glibc's; nothing newer than 2.34.
    worst = (0, 0)
    for name in names:
        path = os.path.join(pkg, name)
        dyn = subprocess.run(["objdump", "-p", path], capture_output=True, text=True,
                             check=True).stdout
        for need in re.findall(r"NEEDED\s+(\S+)", dyn):
            check(need in libs or GLIBC_LIBS.match(need),
                  "%s needs %s, which is neither bundled nor glibc" % (name, need))
        if name == "bootstrap":
            check(re.search(r"\bRPATH\s+\$ORIGIN/lib\b", dyn) is not None,
                  "bootstrap has DT_RPATH $ORIGIN/lib")
            check("RUNPATH" not in dyn, "bootstrap has no DT_RUNPATH")
        syms = subprocess.run(["objdump", "-T", path], capture_output=True, text=True,
                              check=True).stdout
        for line in syms.splitlines():
            m = re.search(r"\*UND\*.*\bGLIBC_(\d+)\.(\d+)", line)
            if not m:
                continue
            v = (int(m.group(1)), int(m.group(2)))
            worst = max(worst, v)
            check(v <= MAX_GLIBC, "%s: %s" % (name, line.strip()))
    print("newest glibc symbol version needed: GLIBC_%d.%d" % worst)


def test_loads_own_libs(pkg):
    boot = os.path.join(pkg, "bootstrap")
    out = subprocess.run(["ldd", boot], env={}, capture_output=True, text=True,
                         check=True).stdout
    libdir = os.path.join(pkg, "lib") + "/"
    for line in out.splitlines():
        m = re.match(r"\s*(\S+) => (\S+)", line)
        if m and not GLIBC_LIBS.match(m.group(1)):
            check(m.group(2).startswith(libdir), "ldd: %s" % line.strip())

    # The running process maps no library from outside the package but glibc.
    api = RuntimeAPI()
    db = os.path.join(pkg, "..", "maps.db")
    proc = subprocess.Popen([boot], env={"AWS_LAMBDA_RUNTIME_API": api.address,
                                         "LAMBDA_REGISTRY_STORE": "sqlite:" + db},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        ans = api.invoke(rest_event(None, method="GET", path="/healthz", resource="/healthz"))
        check(ans.json()["statusCode"] == 200, "packaged bootstrap answers")
        maps = open("/proc/%d/maps" % proc.pid).read()
    finally:
        api.close()
        proc.wait(timeout=20)
    mapped = sorted({line.split()[-1] for line in maps.splitlines()
                     if ".so" in line.split()[-1]})
    outside = [p for p in mapped if not p.startswith(os.path.realpath(libdir)) and
               not p.startswith(libdir) and not GLIBC_LIBS.match(os.path.basename(p))]
    check(not outside, "libraries mapped from outside the package: %s" % outside)
    check(len(mapped) > 10, "bundled libraries mapped: %d" % len(mapped))


def build_copy(tmp):
    """Build the lambda binary from a copy of the sources in another directory."""
    src = os.path.join(tmp, "elsewhere", "src-copy")
    os.makedirs(src)
    for part in ("CMakeLists.txt", "src", "tests", "scripts"):
        p = os.path.join(SRC, part)
        if os.path.isdir(p):
            shutil.copytree(p, os.path.join(src, part),
                            ignore=shutil.ignore_patterns("node_modules", "__pycache__"))
        else:
            shutil.copy2(p, os.path.join(src, part))
    cache = open(os.path.join(os.path.dirname(BIN), "CMakeCache.txt")).read()
    btype = re.search(r"^CMAKE_BUILD_TYPE:\w+=(.*)$", cache, re.M).group(1)
    build = os.path.join(tmp, "elsewhere", "b")
    subprocess.run(["cmake", "-S", src, "-B", build, "-DCMAKE_BUILD_TYPE=" + btype],
                   check=True, stdout=subprocess.DEVNULL)
    subprocess.run(["cmake", "--build", build, "-j", "2", "--target", "lambda-registry-lambda"],
                   check=True, stdout=subprocess.DEVNULL)
    return os.path.join(build, "lambda-registry-lambda")


def test_reproducible(tmp, first):
    again = os.path.join(tmp, "again.zip")
    package(LAMBDA_BIN, again)
    check(open(first, "rb").read() == open(again, "rb").read(),
          "packaging the same binary twice gives the same bytes")
    t0 = time.monotonic()
    other = os.path.join(tmp, "other.zip")
    package(build_copy(tmp), other)
    same = open(first, "rb").read() == open(other, "rb").read()
    check(same, "a build of the same sources elsewhere gives the same zip bytes")
    print("rebuilt elsewhere in %.1f s: zip %s" % (time.monotonic() - t0,
                                                  "identical" if same else "DIFFERS"))


def main():
    if os.environ.get("LR_SANITIZED") == "1":
        skip("the package is built from the release binary")
    tmp = tempfile.mkdtemp(prefix="lr-pkg-")
    try:
        zip_path = os.path.join(tmp, "lambda-registry-lambda.zip")
        package(LAMBDA_BIN, zip_path)
        pkg = os.path.join(tmp, "task")
        unpack(zip_path, pkg)
        test_contents(zip_path, pkg)
        test_loads_own_libs(pkg)
        test_reproducible(tmp, zip_path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    finish()


if __name__ == "__main__":
    main()
