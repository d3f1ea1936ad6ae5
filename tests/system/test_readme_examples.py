"""README.md's curl and HTTPie examples, run top to bottom against a real server process.

The block under "### Examples (curl and HTTPie)" is run by bash exactly as written, with only
`BASE` pointed at the test server, and with `curl` and `http` made to fail on any answer that
is not 2xx (`--fail-with-body`, `--check-status`). A command whose comment says
`# 404 expected` (any 4xx/5xx code) must fail with that status instead.
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
# Skipped on a developer machine without them; never in CI, where .ci/run installs them.
pytestmark = [
    pytest.mark.skipif(
        any(shutil.which(tool) is None for tool in TOOLS) and not os.environ.get("CI"),
        reason=f"needs {', '.join(TOOLS)}",
    ),
    pytest.mark.slow,
]

SECTION = "### Examples (curl and HTTPie)"
EXPECTED_ERROR = re.compile(r"^(?P<command>\S.*?)\s+#\s*(?P<status>[45]\d\d) expected\b")

PRELUDE = r"""
set -Eeuo pipefail
trap 'echo "README example failed: $BASH_COMMAND" >&2' ERR
curl() { command curl --fail-with-body --silent --show-error "$@"; }
# --ignore-stdin: run without a terminal, HTTPie would otherwise read stdin as the body.
http() { command http --check-status --ignore-stdin "$@"; }
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
    """Point BASE at the server and turn `# NNN expected` lines into status checks."""
    lines = []
    for line in block.splitlines():
        if line.startswith("BASE="):
            line = f"BASE={base_url}"
        elif match := EXPECTED_ERROR.match(line):
            line = f"expect_status {match['status']} {match['command']}"
        lines.append(line)
    return PRELUDE + "\n".join(lines) + "\n"


def test_readme_is_parsed_as_expected() -> None:
    block = readme_examples((PROJECT_ROOT / "README.md").read_text())
    script = as_test_script(block, "http://127.0.0.1:1")
    assert "BASE=http://127.0.0.1:1" in script
    assert "expect_status 404 http GET $BASE/images/999999" in script
    # Both tools and every new export are exercised.
    for needle in ("curl ", "http ", "format=xmp", "contact-sheet", "upload-and-add"):
        assert needle in block


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
