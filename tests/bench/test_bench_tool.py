"""`python -m bench`: every benchmark listed with a one-sentence line, and run by name.

The rule a new bench module must meet (bench/README.md): a docstring whose first line is one
whole sentence, followed by a blank line. Runnable modules are listed as benchmarks, the rest
as helpers; nothing else is required of a new module.
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from bench.__main__ import BENCH_DIR, BenchModule, bench_modules
from database.migrations import PROJECT_ROOT

MODULES = bench_modules()


def run_bench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bench", *args],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def sentence_problem(module: BenchModule) -> str | None:
    """Why the module's docstring does not open with one whole sentence, or None."""
    if not module.docstring:
        return "no docstring"
    first, _, rest = module.docstring.partition("\n")
    if rest and not rest.startswith("\n"):
        return f"the first line runs on to the next: {first!r}"
    if not first[:1].isupper():
        return f"the first line does not start with a capital: {first!r}"
    if not first.endswith("."):
        return f"the first line does not end with a full stop: {first!r}"
    if re.search(r"[.!?] [A-Z]", first):
        return f"the first line holds more than one sentence: {first!r}"
    return None


def test_the_bench_package_has_benchmarks_and_helpers() -> None:
    names = {module.name for module in MODULES}
    assert {"scratch", "keeper", "library_scale"} <= names
    assert next(m for m in MODULES if m.name == "keeper").runnable
    assert not next(m for m in MODULES if m.name == "scratch").runnable


@pytest.mark.parametrize("module", MODULES, ids=[module.name for module in MODULES])
def test_every_bench_module_opens_with_one_sentence(module: BenchModule) -> None:
    problem = sentence_problem(module)
    assert problem is None, f"bench/{module.name}.py: {problem} (see bench/README.md)"


def test_a_docstring_that_wraps_is_refused() -> None:
    wrapped = BenchModule("x", BENCH_DIR / "x.py", "Something measured over\ntwo lines.", True)
    assert sentence_problem(wrapped) is not None
    two = BenchModule("x", BENCH_DIR / "x.py", "One thing. Another thing.", True)
    assert sentence_problem(two) is not None


def test_python_m_bench_lists_every_module_with_its_line() -> None:
    listed = run_bench()

    assert listed.returncode == 0, listed.stderr
    benchmarks, _, helpers = listed.stdout.partition("Helpers")
    for module in MODULES:
        line = f"{module.name}  " if module.runnable else f"{module.name} "
        part = benchmarks if module.runnable else helpers
        assert any(
            row.strip().startswith(line.strip()) and row.rstrip().endswith(module.summary)
            for row in part.splitlines()
        ), f"{module.name} missing from python -m bench:\n{listed.stdout}"


def test_python_m_bench_runs_one_by_name() -> None:
    ran = run_bench("decode", "--help")

    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.startswith("usage: decode.py")
    unknown = run_bench("no_such_benchmark")
    assert unknown.returncode == 2
    assert "python -m bench lists them" in unknown.stderr


def test_only_bench_scratch_creates_databases() -> None:
    """One scratch-database helper: no benchmark makes its own database."""
    makers = [
        path.name
        for path in sorted(BENCH_DIR.glob("*.py"))
        if "CREATE DATABASE" in path.read_text(encoding="utf-8") and path.name != "scratch.py"
    ]
    assert makers == [], f"use bench.scratch.scratch_postgres instead, in {makers}"
