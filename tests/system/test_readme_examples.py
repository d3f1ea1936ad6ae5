"""README.md's curl and HTTPie examples, run top to bottom against a real server process.

The block under "### Examples (curl and HTTPie)" is run by bash exactly as written (only `BASE`
pointed at the test server), as a script: no terminal, stdin closed, `set -euo pipefail`, so
the run fails when any command fails. No wrapper adds flags: that every curl fails on an error
answer (`-f`) and every HTTPie call ignores stdin and fails on an error answer
(`--ignore-stdin --check-status`) is checked on the README's own lines. A command whose
comment says `# 404 expected` (any 4xx/5xx code) must answer that status instead.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.factories import burst, real_photo
from tests.system.conftest import PROJECT_ROOT, ServerProcess

TOOLS = ("bash", "curl", "http", "jq")

SECTION = "### Examples (curl and HTTPie)"
EXPECTED_ERROR = re.compile(r"^(?P<command>\S.*?)\s+#\s*(?P<status>[45]\d\d) expected\b")
# A curl or HTTPie command, up to the end of its pipeline stage.
INVOCATION = re.compile(r"(?:^|(?<=[\s(|;&]))(?P<tool>curl|http)\s[^|;&)]*")
CURL_FAILS = re.compile(r"(?:^|\s)(?:-[a-zA-Z]*f[a-zA-Z]*|--fail|--fail-with-body)(?=\s|$)")

PRELUDE = r"""
set -Eeuo pipefail
trap 'echo "README example failed: $BASH_COMMAND" >&2' ERR
expect_status() {
    local want=$1 out
    shift
    if out=$("$@" 2>&1); then
        echo "expected HTTP $want, but it succeeded: $*" >&2
        return 1
    fi
    if ! grep -q "$want" <<<"$out"; then
        echo "expected HTTP $want from: $*; got: $out" >&2
        return 1
    fi
}
"""


def readme_examples(readme: str) -> str:
    """The first ```bash block after the examples heading."""
    section = readme[readme.index(SECTION) :]
    match = re.search(r"```bash\n(.*?)```", section, re.DOTALL)
    assert match is not None, "no bash block under the examples heading"
    return match.group(1)


def as_test_script(block: str, base_url: str) -> str:
    """Point BASE at the server and turn `# NNN expected` lines into status checks (an HTTPie
    call there gets `--check-status`, so that its status is seen)."""
    lines = []
    for line in block.splitlines():
        if line.startswith("BASE="):
            line = f"BASE={base_url}"
        elif match := EXPECTED_ERROR.match(line):
            command = re.sub(
                r"^http (?!.*--check-status)", "http --check-status ", match["command"]
            )
            line = f"expect_status {match['status']} {command}"
        lines.append(line)
    return PRELUDE + "\n".join(lines) + "\n"


def unsafe_commands(block: str) -> list[str]:
    """The curl commands without `-f` and the HTTPie calls without `--ignore-stdin` or (unless
    an error is expected) `--check-status`: the ones a script would get wrong."""
    unsafe = []
    for line in re.sub(r"\\\n\s*", " ", block).splitlines():
        if line.lstrip().startswith("#"):
            continue
        expects_error = EXPECTED_ERROR.match(line) is not None
        for match in INVOCATION.finditer(line.split("  #", 1)[0]):
            command, words = match.group(0), match.group(0).split()
            if match["tool"] == "curl":
                safe = CURL_FAILS.search(command) is not None
            else:
                safe = "--ignore-stdin" in words and (expects_error or "--check-status" in words)
            if not safe:
                unsafe.append(command.strip())
    return unsafe


def readme_block() -> str:
    return readme_examples((PROJECT_ROOT / "README.md").read_text())


def test_readme_is_parsed_as_expected() -> None:
    block = readme_block()
    script = as_test_script(block, "http://127.0.0.1:1")
    assert "BASE=http://127.0.0.1:1" in script
    assert "expect_status 404 http --check-status --ignore-stdin GET $BASE/images/999999" in script
    # Both tools and every new export are exercised.
    for needle in ("curl ", "http ", "format=xmp", "contact-sheet", "upload-and-add"):
        assert needle in block
    # Every command is seen, continuation lines and pipelines included.
    tools = [m["tool"] for line in block.splitlines() for m in INVOCATION.finditer(line)]
    assert (tools.count("curl"), tools.count("http")) == (
        block.count("curl -"),
        block.count("http -"),
    )


def test_every_readme_command_fails_on_an_error_answer_and_ignores_stdin() -> None:
    assert unsafe_commands(readme_block()) == []


@pytest.mark.parametrize(
    ("flag", "without"), [("-fsS ", "-sS "), ("--ignore-stdin ", ""), ("--check-status ", "")]
)
def test_a_line_that_loses_its_flag_is_caught(flag: str, without: str) -> None:
    """Each command of the README, one at a time, with the flag taken off: the check sees it."""
    block = readme_block()
    places = [m.start() for m in re.finditer(re.escape(flag), block)]
    assert places
    for at in places:
        mutated = block[:at] + without + block[at + len(flag) :]
        assert len(unsafe_commands(mutated)) == 1, mutated[at - 60 : at + 60]


@pytest.mark.skipif(
    any(shutil.which(tool) is None for tool in TOOLS) and not os.environ.get("CI"),
    reason=f"needs {', '.join(TOOLS)}",  # never skipped in CI, where .ci/run installs them
)
@pytest.mark.slow
def test_readme_examples_run_top_to_bottom(server: ServerProcess, tmp_path: Path) -> None:
    # Six photos, two bursts of three, as the README asks for.
    frames = burst(real_photo("chelsea.png"), 3, seed=1) + burst(real_photo("coffee.png"), 3, 2)
    for k, data in enumerate(frames, start=1):
        (tmp_path / f"IMG_{k:04d}.jpg").write_bytes(data)
    block = readme_examples((PROJECT_ROOT / "README.md").read_text())

    result = subprocess.run(
        ["bash", "-c", as_test_script(block, server.url)],
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, f"stdout:\n{result.stdout[-3000:]}\nstderr:\n{result.stderr}"
    # What the examples downloaded is what they say.
    assert (tmp_path / "wedding.csv").read_text().startswith("image_id,")
    assert (tmp_path / "wedding-xmp.zip").read_bytes()[:2] == b"PK"
    assert (tmp_path / "wedding.jpg").read_bytes()[:2] == b"\xff\xd8"
    assert (tmp_path / "thumb.jpg").read_bytes()[:2] == b"\xff\xd8"
