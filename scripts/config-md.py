#!/usr/bin/env python3
"""Regenerate the key tables of docs/config.md from lib/settings.c's table.

    scripts/config-md.py BUILD/lib/settings-dump docs/config.md          # rewrite
    scripts/config-md.py --check BUILD/lib/settings-dump docs/config.md  # fail if stale

Each table sits between `<!-- settings SECTION -->` and `<!-- /settings -->`;
everything outside the markers is prose written by hand.
"""
import re
import subprocess
import sys

BEGIN = re.compile(r"^<!-- settings (\S+) -->$")
END = "<!-- /settings -->"


def load(dump):
    out = subprocess.run([dump], check=True, capture_output=True, text=True).stdout
    rows = {}
    for line in out.splitlines():
        owner, section, name, dflt, accepts, doc = line.split("\t")
        rows.setdefault(section, []).append((name, dflt, accepts, doc))
    return rows


def cell(text):
    return text.replace("|", "\\|")


def table(rows, section):
    if section not in rows:
        raise SystemExit(f"config-md: docs name section [{section}], which the table does not have")
    head = "hyperparameter" if section == "hparam" else "key"
    lines = [f"| {head} | default | accepts | meaning |", "| --- | --- | --- | --- |"]
    for name, dflt, accepts, doc in rows[section]:
        d = "none" if dflt == "-" else f"`{dflt}`"
        lines.append(f"| `{name}` | {d} | {cell(accepts)} | {cell(doc)} |")
    return lines


def render(text, rows):
    out, inside, seen = [], None, set()
    for line in text.splitlines():
        m = BEGIN.match(line)
        if inside is None:
            out.append(line)
            if m:
                inside = m.group(1)
                seen.add(inside)
                out.extend(table(rows, inside))
        elif line == END:
            out.append(line)
            inside = None
    if inside is not None:
        raise SystemExit(f"config-md: <!-- settings {inside} --> has no {END}")
    missing = [s for s in rows if s not in seen]
    if missing:
        raise SystemExit(f"config-md: the docs have no table for section(s) {', '.join(missing)}")
    return "\n".join(out) + "\n"


def main(argv):
    check = "--check" in argv
    args = [a for a in argv if a != "--check"]
    if len(args) != 2:
        raise SystemExit(__doc__)
    dump, doc = args
    rows = load(dump)
    text = open(doc).read()
    new = render(text, rows)
    if check:
        if new != text:
            import difflib
            sys.stdout.writelines(difflib.unified_diff(text.splitlines(True), new.splitlines(True),
                                                       doc, "generated from lib/settings.c"))
            print(f"\n{doc} disagrees with lib/settings.c: run scripts/config-md.py "
                  f"BUILD/lib/settings-dump {doc}")
            return 1
        print(f"{doc} agrees with lib/settings.c ({sum(len(r) for r in rows.values())} keys)")
        return 0
    if new != text:
        open(doc, "w").write(new)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
