"""A parser for the Prometheus text exposition format 0.0.4, written to the
format's description, and promtool-style lint rules. Standard library only."""
import math
import re

NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
TYPES = ("counter", "gauge", "histogram", "summary", "untyped")
# Labels that would carry a container id, an address or a client IP.
BANNED_LABELS = {"id", "ip", "addr", "address", "client", "client_ip",
                 "container", "container_id", "remote", "peer", "host"}
IP_LIKE = re.compile(r"^(\d{1,3}\.){3}\d{1,3}(:\d+)?$|^\[?[0-9a-fA-F:]*:[0-9a-fA-F:]+\]?$")


class ParseError(Exception):
    pass


def _unescape(s, allow_quote):
    out, i = [], 0
    while i < len(s):
        c = s[i]
        if c == "\\":
            if i + 1 >= len(s):
                raise ParseError("dangling backslash in %r" % s)
            n = s[i + 1]
            if n == "n":
                out.append("\n")
            elif n == "\\":
                out.append("\\")
            elif n == '"' and allow_quote:
                out.append('"')
            else:
                raise ParseError("bad escape \\%s in %r" % (n, s))
            i += 2
            continue
        out.append(c)
        i += 1
    return "".join(out)


def _value(text):
    if text in ("+Inf", "Inf"):
        return math.inf
    if text == "-Inf":
        return -math.inf
    if text == "NaN":
        return math.nan
    if not re.fullmatch(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?", text):
        raise ParseError("bad value %r" % text)
    return float(text)


def _labels(line, i):
    """Parse {a="x",...} starting at line[i] == '{'; (dict, next index)."""
    labels = {}
    i += 1
    while True:
        if line[i:i + 1] == "}":
            return labels, i + 1
        m = LABEL.match(line, i)
        if not m:
            raise ParseError("bad label name at %r" % line[i:])
        name = m.group(0)
        i = m.end()
        if line[i:i + 2] != '="':
            raise ParseError("expected =\" after %s" % name)
        i += 2
        j = i
        while j < len(line) and line[j] != '"':
            j += 2 if line[j] == "\\" else 1
        if j >= len(line):
            raise ParseError("unterminated label value")
        if name in labels:
            raise ParseError("label %s twice" % name)
        labels[name] = _unescape(line[i:j], True)
        i = j + 1
        if line[i:i + 1] == ",":
            i += 1
        elif line[i:i + 1] != "}":
            raise ParseError("expected , or } at %r" % line[i:])


def parse(text):
    """Families in order of appearance: [{name, help, type, samples:
    [(name, labels, value)]}]. Raises ParseError on anything off-format."""
    if text and not text.endswith("\n"):
        raise ParseError("the last line has no newline")
    families, by_name = [], {}

    def family(name):
        if name not in by_name:
            f = {"name": name, "help": None, "type": None, "samples": []}
            by_name[name] = f
            families.append(f)
        return by_name[name]

    def owner(sample):
        for suffix in ("_bucket", "_sum", "_count"):
            base = sample[:-len(suffix)]
            if sample.endswith(suffix) and base in by_name and \
                    by_name[base]["type"] in ("histogram", "summary"):
                return by_name[base]
        return family(sample)

    for n, line in enumerate(text.split("\n")[:-1], 1):
        if not line.strip():
            continue
        if line.startswith("#"):
            parts = line.split(None, 3)
            if len(parts) >= 3 and parts[1] in ("HELP", "TYPE"):
                if not NAME.fullmatch(parts[2]):
                    raise ParseError("line %d: bad name %r" % (n, parts[2]))
                f = family(parts[2])
                rest = parts[3] if len(parts) > 3 else ""
                if parts[1] == "HELP":
                    if f["help"] is not None:
                        raise ParseError("line %d: second HELP for %s" % (n, f["name"]))
                    f["help"] = _unescape(rest, False)
                else:
                    if f["type"] is not None:
                        raise ParseError("line %d: second TYPE for %s" % (n, f["name"]))
                    if f["samples"]:
                        raise ParseError("line %d: TYPE after samples" % n)
                    if rest not in TYPES:
                        raise ParseError("line %d: bad type %r" % (n, rest))
                    f["type"] = rest
            continue
        m = NAME.match(line)
        if not m:
            raise ParseError("line %d: bad metric name" % n)
        name, i = m.group(0), m.end()
        labels = {}
        if line[i:i + 1] == "{":
            labels, i = _labels(line, i)
        rest = line[i:].split()
        if line[i:i + 1] not in (" ", "\t") or len(rest) not in (1, 2):
            raise ParseError("line %d: expected ' value [timestamp]'" % n)
        value = _value(rest[0])
        if len(rest) == 2 and not re.fullmatch(r"-?\d+", rest[1]):
            raise ParseError("line %d: bad timestamp" % n)
        owner(name)["samples"].append((name, labels, value))
    return families


def lint(families):
    """promtool-style problems, as a list of strings (empty: clean)."""
    problems, seen = [], set()
    names = [f["name"] for f in families]
    if names != sorted(names):
        problems.append("families not sorted by name")
    if len(set(names)) != len(names):
        problems.append("a family appears twice")
    for f in families:
        if not f["help"]:
            problems.append("%s: no HELP" % f["name"])
        if not f["type"]:
            problems.append("%s: no TYPE" % f["name"])
        if f["type"] == "counter" and not f["name"].endswith("_total"):
            problems.append("%s: counter without _total" % f["name"])
        groups = {}
        for name, labels, value in f["samples"]:
            key = (name, tuple(sorted(labels.items())))
            if key in seen:
                problems.append("duplicate series %s%s" % key)
            seen.add(key)
            for k, v in labels.items():
                if k.lower() in BANNED_LABELS:
                    problems.append("%s: label %s" % (name, k))
                if IP_LIKE.match(v):
                    problems.append("%s: address-like value %s=%r" % (name, k, v))
            if f["type"] == "counter" and value < 0:
                problems.append("%s: negative counter" % name)
            if f["type"] == "histogram":
                base = tuple(sorted((k, v) for k, v in labels.items() if k != "le"))
                groups.setdefault(base, []).append((name, labels, value))
        for base, samples in groups.items():
            buckets = [(float(lb["le"]) if lb["le"] != "+Inf" else math.inf, v)
                       for n, lb, v in samples if n.endswith("_bucket")]
            count = [v for n, lb, v in samples if n.endswith("_count")]
            total = [v for n, lb, v in samples if n.endswith("_sum")]
            if not buckets or buckets[-1][0] != math.inf:
                problems.append("%s%s: no +Inf bucket last" % (f["name"], base))
            elif [b for b, _ in buckets] != sorted(b for b, _ in buckets):
                problems.append("%s%s: buckets out of order" % (f["name"], base))
            elif any(buckets[i][1] > buckets[i + 1][1] for i in range(len(buckets) - 1)):
                problems.append("%s%s: buckets not cumulative" % (f["name"], base))
            if len(count) != 1 or len(total) != 1:
                problems.append("%s%s: want one _sum and one _count" % (f["name"], base))
            elif buckets and buckets[-1][1] != count[0]:
                problems.append("%s%s: +Inf bucket != _count" % (f["name"], base))
    return problems


def value(families, name, **labels):
    """The value of the one sample `name` with exactly `labels`, or None."""
    for f in families:
        for n, lb, v in f["samples"]:
            if n == name and lb == labels:
                return v
    return None


def family_names(families):
    return {f["name"] for f in families}
