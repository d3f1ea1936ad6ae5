"""XMP sidecars written beside the originals of a folder imported in place.

Each photo of the import's batch gets the sidecar the batch's export would give it
(services/xmp_export.py), named for the editor, in the photo's own folder. A sidecar the
photographer already has is never replaced unless asked (`overwrite`): our rating, label and
keywords are merged into it and the rest of theirs is kept (processing/xmp_merge.py). A file is
written beside the original under a temporary name and moved over, so an editor never reads
half a sidecar; a symlink in the sidecar's place is replaced, never followed.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path, PurePath

from sqlalchemy.orm import Session

from processing.xmp_merge import UnreadableXmp, merge_packets
from services import import_service, xmp_export
from services.errors import Conflict


@dataclass
class SidecarReport:
    written: int = 0
    merged: int = 0
    skipped: list[dict[str, str]] = field(default_factory=list)


def write_sidecars(
    session: Session, import_id: int, options: xmp_export.XmpOptions, *, overwrite: bool
) -> SidecarReport:
    """Write (or merge) one sidecar beside each original of the import's batch (both files
    of a RAW+JPEG pair)."""
    folder_import = import_service.get_import(session, import_id)
    if folder_import.batch_id is None:
        raise Conflict(f"Import {import_id} has no batch any more (it was deleted).")
    folder = Path(folder_import.path)
    report = SidecarReport()
    taken: set[Path] = set()
    for association, pick in xmp_export.batch_picks(session, folder_import.batch_id):
        image = association.image
        ours = xmp_export.sidecar_xml(pick, options)
        # Both files of a RAW+JPEG pair get one (named `basename`, the pair shares one).
        targets: set[Path] = set()
        for source in (image.source_path, image.companion_source_path):
            if source is None or not Path(source).is_relative_to(folder):
                continue  # uploaded, or imported from another folder: not this import's to write
            original = Path(source)
            target = original.with_name(_sidecar_name(original, options.naming))
            if target in targets:
                continue
            targets.add(target)
            relative = str(original.relative_to(folder))
            if target in taken:
                reason = f"{target.name} is the sidecar of another photo of this name"
                report.skipped.append({"file": relative, "reason": reason})
                continue
            taken.add(target)
            _write_beside(report, original, relative, target, ours, overwrite=overwrite)
    return report


def _write_beside(
    report: SidecarReport,
    original: Path,
    relative: str,
    target: Path,
    ours: bytes,
    *,
    overwrite: bool,
) -> None:
    if not original.parent.is_dir():
        report.skipped.append({"file": relative, "reason": "its folder is gone"})
        return
    try:
        merged = _write(target, ours, overwrite=overwrite)
    except UnreadableXmp as exc:
        reason = f"{target.name} exists and is not XMP we can merge into ({exc})"
        report.skipped.append({"file": relative, "reason": reason})
        return
    except OSError as exc:
        report.skipped.append({"file": relative, "reason": exc.strerror or str(exc)})
        return
    if merged:
        report.merged += 1
    else:
        report.written += 1


def _sidecar_name(original: Path, naming: xmp_export.Naming) -> str:
    stem = PurePath(original.name).stem if naming == "basename" else original.name
    return f"{stem}.xmp"


def _write(target: Path, ours: bytes, *, overwrite: bool) -> bool:
    """Write `ours` to `target`, merged into the sidecar there unless `overwrite`; True when
    it merged."""
    merged = False
    data = ours
    if not overwrite and target.exists() and not target.is_symlink():
        data = b'<?xml version="1.0" encoding="utf-8"?>\n' + merge_packets(
            target.read_bytes(), ours
        )
        merged = True
    descriptor, temporary = tempfile.mkstemp(prefix=".pixal-", suffix=".xmp", dir=target.parent)
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(data)
        os.chmod(temporary, 0o644)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return merged
