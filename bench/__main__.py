"""Lists the benchmarks with one line each, or runs one by name.

    python -m bench                   # every benchmark, then the shared helpers
    python -m bench NAME [ARGS...]    # the same as python -m bench.NAME [ARGS...]

A benchmark is a module of bench/ that runs as a program (it has an `if __name__ ==
"__main__":` block); the others are helpers the benchmarks share. The line shown is the first
line of the module's docstring, read without importing the module (imports are heavy).
"""

from __future__ import annotations

import ast
import pkgutil
import runpy
import sys
from dataclasses import dataclass
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
MAIN_GUARD = 'if __name__ == "__main__":'


@dataclass(frozen=True)
class BenchModule:
    name: str
    path: Path
    docstring: str | None
    runnable: bool

    @property
    def summary(self) -> str:
        return (self.docstring or "").strip().split("\n", 1)[0].strip()


def bench_modules(directory: Path = BENCH_DIR) -> list[BenchModule]:
    """Every module of bench/ (not `__main__`/`__init__`), sorted by name."""
    found = []
    for info in pkgutil.iter_modules([str(directory)]):
        if info.ispkg or info.name.startswith("_"):
            continue
        path = directory / f"{info.name}.py"
        source = path.read_text(encoding="utf-8")
        docstring = ast.get_docstring(ast.parse(source), clean=True)
        found.append(BenchModule(info.name, path, docstring, MAIN_GUARD in source))
    return sorted(found, key=lambda module: module.name)


def listing(modules: list[BenchModule]) -> str:
    width = max((len(module.name) for module in modules), default=0)
    lines = ["Benchmarks (python -m bench NAME [--help]):"]
    lines += [f"  {m.name:<{width}}  {m.summary}" for m in modules if m.runnable]
    lines += ["", "Helpers they share (not run on their own):"]
    lines += [f"  {m.name:<{width}}  {m.summary}" for m in modules if not m.runnable]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    modules = bench_modules()
    if not argv or argv[0] in ("-h", "--help", "list"):
        print(__doc__.splitlines()[0])
        print()
        print(listing(modules))
        return 0
    name, rest = argv[0].removeprefix("bench."), argv[1:]
    runnable = {module.name for module in modules if module.runnable}
    if name not in runnable:
        print(f"no benchmark named {name!r}; python -m bench lists them", file=sys.stderr)
        return 2
    sys.argv = [f"bench/{name}.py", *rest]
    runpy.run_module(f"bench.{name}", run_name="__main__", alter_sys=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
