#!/usr/bin/env python3
"""Print every test a ctest run did not run, with its reason and output.

ctest lists skipped tests by name only, and LastTest.log records them as
"Test Passed."; its JUnit file (ctest --output-junit FILE) keeps their status
and output. Usage: scripts/ctest-skipped.py JUNIT.xml (after the run; the
Makefile's test targets call it). Prints nothing when every test ran; always
exits 0, the ctest run's status is the verdict."""
import sys
import xml.etree.ElementTree as ET

TAIL = 40  # lines of each skipped test's output


def main():
    path = sys.argv[1]
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as e:
        print("ctest-skipped: cannot read %s: %s" % (path, e))
        return
    skipped = []
    for case in root.iter("testcase"):
        mark = case.find("skipped")
        if case.get("status") != "notrun" and mark is None:
            continue
        why = mark.get("message", "") if mark is not None else ""
        if why.startswith("SKIP_RETURN_CODE"):
            why = "skipped (exit %s)" % why.split("=", 1)[-1]
        out = case.findtext("system-out") or ""
        skipped.append((case.get("name"), why or "not run", out.rstrip("\n").splitlines()))
    if not skipped:
        return
    print("\n%d test%s did not run (%s):" % (len(skipped), "" if len(skipped) == 1 else "s",
                                             path))
    for name, why, lines in skipped:
        print("--- %s: %s" % (name, why))
        if len(lines) > TAIL:
            print("    [... %d lines ...]" % (len(lines) - TAIL))
        for line in lines[-TAIL:]:
            print("    " + line)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
