"""Import a card or folder in place from the command line, through a running server.

    python -m scripts.import_folder /media/card/DCIM "Wedding 2026-05-01"

The folder must be under one of the server's IMPORT_ROOTS (it is read by the server, where it
is, and never copied). Prints the progress until the import ends; exits 0 when it completed,
1 when it failed or was refused. `--server` (default `$PIXAL_SERVER` or
http://127.0.0.1:8000) and `$API_KEY` say where and how to ask.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.request
from typing import Any


def _call(server: str, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"{server.rstrip('/')}{path}", data=data, method=method)
    request.add_header("Content-Type", "application/json")
    if key := os.environ.get("API_KEY"):
        request.add_header("X-API-Key", key)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def _line(progress: dict[str, Any]) -> str:
    rate = progress.get("files_per_second")
    return (
        f"{progress['status']}: {progress['done']}/{progress['found']} files, "
        f"{progress['failed']} failed, {progress['duplicates']} duplicates, "
        f"{progress['refused']} refused" + (f", {rate} files/s" if rate else "")
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("path", help="the folder, on the server, under one of IMPORT_ROOTS")
    parser.add_argument("batch_name", help="the name of the batch the photos go into")
    parser.add_argument("--server", default=os.environ.get("PIXAL_SERVER", "http://127.0.0.1:8000"))
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between polls")
    args = parser.parse_args(argv)

    path = os.path.abspath(args.path) if os.path.isdir(args.path) else args.path
    status, answer = _call(
        args.server, "POST", "/imports", {"path": path, "batch_name": args.batch_name}
    )
    if status != 202:
        print(f"refused ({status}): {answer.get('detail')}", file=sys.stderr)
        return 1
    import_id = answer["id"]
    print(f"import {import_id} into batch {answer['batch_id']}: {answer['path']}")
    while True:
        status, progress = _call(args.server, "GET", f"/imports/{import_id}")
        if status != 200:
            print(f"progress unavailable ({status}): {progress.get('detail')}", file=sys.stderr)
            return 1
        print(_line(progress), flush=True)
        if progress["status"] in {"complete", "failed"}:
            for failure in progress["failures"]:
                print(f"  {failure['file']}: {failure['reason']}")
            return 0 if progress["status"] == "complete" else 1
        time.sleep(args.interval)


if __name__ == "__main__":
    sys.exit(main())
