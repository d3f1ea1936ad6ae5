"""/docs and /redoc render in a real browser with no network: the assets come from the app.

Headless Chromium (Debian's `chromium`, installed by .ci/run) loads each page from a real
server process, with its background networking off, and we read the DOM it rendered. A
screenshot of /docs is written to `artifacts/docs.png` (and /redoc to `artifacts/redoc.png`)
for a person to look at; CI keeps the `artifacts/` folder.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.system.conftest import PROJECT_ROOT, ServerProcess

ARTIFACTS = PROJECT_ROOT / "artifacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

# Skipped on a developer machine without chromium; never in CI, where .ci/run installs it.
pytestmark = [
    pytest.mark.skipif(
        CHROMIUM is None and not os.environ.get("CI"), reason="chromium is not installed"
    ),
    pytest.mark.slow,
    pytest.mark.one_database,
]


def _chromium(url: str, user_data_dir: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    command = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--hide-scrollbars",
        f"--user-data-dir={user_data_dir}",
        "--window-size=1280,1600",
        # Let the page's scripts fetch /openapi.json and render before the DOM is read.
        "--virtual-time-budget=15000",
        *extra,
        url,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=True)


@pytest.mark.parametrize(
    ("path", "rendered_marker"),
    [
        # Swagger UI writes one `opblock` per operation, with its operation id in the ids.
        ("/docs", 'id="operations-Images-uploadImages"'),
        # ReDoc writes a section per operation, anchored by its operation id.
        ("/redoc", 'id="operation/uploadImages"'),
    ],
)
def test_docs_render_offline_in_a_browser(
    server: ServerProcess, tmp_path: Path, path: str, rendered_marker: str
) -> None:
    dom = _chromium(f"{server.url}{path}", tmp_path / "profile-dom", "--dump-dom").stdout
    assert rendered_marker in dom, dom[-2000:]
    # The whole operation list, not one entry: a few from each router.
    for operation_id in ("getAllImages", "analyzeBatch", "exportBatch", "health"):
        assert operation_id in dom
    assert "cdn.jsdelivr.net" not in dom

    ARTIFACTS.mkdir(exist_ok=True)
    screenshot = ARTIFACTS / f"{path.strip('/')}.png"
    screenshot.unlink(missing_ok=True)
    _chromium(f"{server.url}{path}", tmp_path / "profile-shot", f"--screenshot={screenshot}")
    # A blank white page compresses to almost nothing; a rendered one does not.
    assert screenshot.stat().st_size > 20_000
