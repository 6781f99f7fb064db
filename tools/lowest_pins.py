"""Print pip constraints that pin each direct dependency to its lowest allowed version.

``make test-oldest`` installs the project with these constraints, so the suite runs
against the floor of every ``>=`` (or ``==``) in ``pyproject.toml``: the runtime
dependencies and the extras named on the command line (``dev`` by default).
Dependencies of dependencies resolve as usual (the newest that fit), as they would
for a user who pinned our direct dependencies low.

Usage: python tools/lowest_pins.py [pyproject.toml] [extra ...] > constraints.txt
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

# "name[extra]>=1.2,<3 ; marker": the name, and the version after >= or == (not ===).
_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")
_FLOOR = re.compile(r"(?:>=|==)(?!=)\s*([^,;\s]+)")


def lowest_pins(pyproject: Path, extras: list[str]) -> list[str]:
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    requirements = list(project.get("dependencies", []))
    optional = project.get("optional-dependencies", {})
    for extra in extras:
        requirements += optional[extra]
    pins: dict[str, str] = {}
    for requirement in requirements:
        spec = requirement.split(";")[0]
        name = _NAME.match(spec)
        floor = _FLOOR.search(spec)
        if name is None or floor is None:
            raise SystemExit(f"no lower bound in {requirement!r}: every dependency needs one")
        key = re.sub(r"[-_.]+", "-", name.group(1)).lower()
        pins[key] = f"{key}=={floor.group(1)}"
    return sorted(pins.values())


def main(argv: list[str]) -> None:
    path = Path(argv[0]) if argv else Path("pyproject.toml")
    extras = argv[1:] or ["dev"]
    print("\n".join(lowest_pins(path, extras)))


if __name__ == "__main__":
    main(sys.argv[1:])
