"""The manifest of landed migrations: one line per migration, only ever appended to.

`alembic/manifest.txt` lists, in chain order, every migration that has landed on `main`:
revision id, down_revision, file name and the sha256 of the file. A landed migration is never
edited (somebody's database already ran it): a change to the schema is a new migration.

    python -m scripts.migration_manifest --check    # the files match the manifest (exit 1 if not)
    python -m scripts.migration_manifest --append   # list new migrations; never rewrites a line
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from dataclasses import dataclass
from pathlib import Path

from alembic.script import ScriptDirectory

PROJECT_ROOT = Path(__file__).resolve().parent.parent
ALEMBIC_DIR = PROJECT_ROOT / "alembic"
MANIFEST = ALEMBIC_DIR / "manifest.txt"
NO_PARENT = "-"
HEADER = """\
# Landed migrations, in chain order: revision  down_revision  file  sha256(file).
# Append only (python -m scripts.migration_manifest --append). Never edit a listed migration:
# a database somewhere already ran it. Change the schema with a new migration instead.
"""


@dataclass(frozen=True)
class Entry:
    revision: str
    down_revision: str  # NO_PARENT for the first; "a+b" for a merge revision
    filename: str
    sha256: str

    def line(self) -> str:
        return f"{self.revision} {self.down_revision} {self.filename} {self.sha256}"

    @property
    def parents(self) -> tuple[str, ...]:
        return () if self.down_revision == NO_PARENT else tuple(self.down_revision.split("+"))


class ManifestError(Exception):
    """The migrations on disk and the manifest disagree."""


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_manifest(path: Path = MANIFEST) -> list[Entry]:
    if not path.exists():
        return []
    entries = []
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split()
        if len(fields) != 4:
            raise ManifestError(f"{path.name}:{number}: expected 4 fields, got {line!r}")
        entries.append(Entry(*fields))
    return entries


def migrations_on_disk(alembic_dir: Path = ALEMBIC_DIR) -> list[Entry]:
    """Every migration file, base first (Alembic's own reading of the chain)."""
    scripts = ScriptDirectory(str(alembic_dir))
    heads = scripts.get_heads()
    if len(heads) > 1:
        raise ManifestError(
            f"the migrations have {len(heads)} heads {sorted(heads)}: give the unlanded one "
            "down_revision = the head on main (or add a merge revision)"
        )
    entries = []
    for script in reversed(list(scripts.walk_revisions())):
        down = script.down_revision
        if down is None:
            parent = NO_PARENT
        elif isinstance(down, str):
            parent = down
        else:
            parent = "+".join(down)
        path = Path(script.path)
        entries.append(Entry(script.revision, parent, path.name, file_sha256(path)))
    return entries


def check(manifest: list[Entry], on_disk: list[Entry]) -> list[str]:
    """What is wrong, one sentence each; empty when the files match the manifest."""
    problems = changed_since_landing(manifest, on_disk)
    listed_ids = {entry.revision for entry in manifest}
    unlisted = [entry.revision for entry in on_disk if entry.revision not in listed_ids]
    if unlisted:
        problems.append(
            f"migrations not in {MANIFEST.name}: {', '.join(unlisted)}; when you land, run "
            "python -m scripts.migration_manifest --append"
        )
    return problems + _order_problems(manifest)


def changed_since_landing(manifest: list[Entry], on_disk: list[Entry]) -> list[str]:
    """Listed migrations whose file is gone, renumbered or edited."""
    problems = []
    by_revision = {entry.revision: entry for entry in on_disk}
    for listed in manifest:
        found = by_revision.get(listed.revision)
        if found is None:
            problems.append(
                f"landed migration {listed.revision} ({listed.filename}) is missing or was "
                "renumbered: restore it as it was on main"
            )
        elif found != listed:
            problems.append(
                f"landed migration {listed.revision} ({listed.filename}) was edited "
                f"(now {found.filename}, down_revision {found.down_revision}, sha256 "
                f"{found.sha256[:12]}…, manifest says {listed.sha256[:12]}…): restore it as it "
                "was on main and make the change in a NEW migration; a database that already ran "
                "it would never see the edit"
            )
    return problems


def _order_problems(manifest: list[Entry]) -> list[str]:
    problems = []
    seen: set[str] = set()
    for entry in manifest:
        if entry.revision in seen:
            problems.append(f"revision {entry.revision} is listed twice")
        missing = [parent for parent in entry.parents if parent not in seen]
        if missing:
            problems.append(
                f"{entry.revision} revises {', '.join(missing)}, which is not listed before it"
            )
        seen.add(entry.revision)
    return problems


def append(manifest: list[Entry], on_disk: list[Entry]) -> list[Entry]:
    """The entries to append; refuses (ManifestError) if a listed migration changed."""
    listed_ids = {entry.revision for entry in manifest}
    changed = changed_since_landing(manifest, on_disk)
    if changed:
        raise ManifestError("\n".join(changed))
    new = [entry for entry in on_disk if entry.revision not in listed_ids]
    order = _order_problems(manifest + new)
    if order:
        raise ManifestError("\n".join(order))
    return new


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--check", action="store_true", help="compare the files with the manifest")
    action.add_argument("--append", action="store_true", help="list migrations not yet listed")
    parser.add_argument("--alembic-dir", type=Path, default=ALEMBIC_DIR, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    manifest_path = args.alembic_dir / MANIFEST.name
    try:
        manifest, on_disk = read_manifest(manifest_path), migrations_on_disk(args.alembic_dir)
        if args.check:
            problems = check(manifest, on_disk)
            for problem in problems:
                print(problem, file=sys.stderr)
            if not problems:
                print(f"{len(manifest)} migrations, all as landed")
            return 1 if problems else 0
        new = append(manifest, on_disk)
    except ManifestError as error:
        print(error, file=sys.stderr)
        return 1
    text = manifest_path.read_text(encoding="utf-8") if manifest_path.exists() else HEADER
    if not text.endswith("\n"):
        text += "\n"
    manifest_path.write_text(text + "".join(entry.line() + "\n" for entry in new), encoding="utf-8")
    for entry in new:
        print(f"appended {entry.revision} ({entry.filename})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
