"""A batch's picks as XMP sidecars, the way Lightroom, Capture One and darktable read them.

One sidecar per image: a star rating (`xmp:Rating`), a colour label (`xmp:Label`) and keywords,
hierarchical (`lr:hierarchicalSubject`: `Pixal|Group 3`, `Pixal|Keeper`) and flat
(`dc:subject`: `Pixal`, `Group 3`, `Keeper`, as Lightroom writes them), and `Pixal|Eyes closed`
on a frame where the judge read closed eyes on a face. The photographer's decision wins where
there is one (a reject is Rating -1, their stars and colour label replace the defaults), a
cull's next, the judge's suggestion otherwise; `pixal:DecidedBy` says which (user, judge or
suggestion). Built with ElementTree,
so names with `<`, `&` or quotes come out as valid XML.
"""

from __future__ import annotations

import io
import re
import stat
import time
import unicodedata
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import PurePath
from typing import Literal
from xml.etree import ElementTree

from sqlalchemy.orm import Session

from database import readiness
from database.models import ImageBatchAssociation
from services import batch_service

NS = {
    "x": "adobe:ns:meta/",
    "rdf": "http://www.w3.org/1999/02/22-rdf-syntax-ns#",
    "xmp": "http://ns.adobe.com/xap/1.0/",
    "dc": "http://purl.org/dc/elements/1.1/",
    "lr": "http://ns.adobe.com/lightroom/1.0/",
    # Ours: whose decision a sidecar carries (pixal:DecidedBy = user, judge or suggestion).
    "pixal": "http://ns.pixal.app/judge/1.0/",
}
for _prefix, _uri in NS.items():
    ElementTree.register_namespace(_prefix, _uri)

KEYWORD_ROOT = "Pixal"
# A keyword a photographer can filter on in Lightroom: someone blinked (processing/eyes.py).
EYES_CLOSED_KEYWORD = "Eyes closed"
Label = Literal["Red", "Yellow", "Green", "Blue", "Purple", "none"]
Naming = Literal["basename", "full"]
# Which sidecar name each editor reads at import. darktable reads `IMG_0001.xmp` through its
# Lightroom importer, which turns Rating -1 (rejected) into 2 stars; `IMG_0001.JPG.xmp` is its
# own name, read as rejected. digiKam writes and reads `IMG_0001.CR2.xmp` too.
Editor = Literal["lightroom", "capture-one", "darktable", "digikam"]
EDITOR_NAMING: dict[str, Naming] = {
    "lightroom": "basename",
    "capture-one": "basename",
    "darktable": "full",
    "digikam": "full",
}
# Characters no file system or archive tool is happy with in a name.
_UNSAFE = re.compile(r'[\x00-\x1f\x7f<>:"/\\|?*]')
# What XML 1.0 cannot hold (its `Char` production's complement), and the non-characters it
# discourages: ElementTree writes these as they are, and the sidecar would not parse. Labels
# stored before they were refused at the API may hold them; each becomes U+FFFD.
_NOT_XML = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufdcf\ufdf0-\ufffd\U00010000-\U0010ffff]")
# Longest file name most file systems take (ext4, APFS, NTFS count 255 bytes or UTF-16 units;
# bytes of UTF-8 are the stricter): a longer zip member cannot be extracted.
MAX_NAME_BYTES = 255


@dataclass(frozen=True, slots=True)
class XmpOptions:
    """Stars (-1 = rejected, 0..5) and colour labels per role; how sidecars are named."""

    keeper_rating: int = 5
    other_rating: int = 2
    ungrouped_rating: int = 3
    keeper_label: Label = "Green"
    other_label: Label = "Red"
    ungrouped_label: Label = "Yellow"
    naming: Naming = "basename"


@dataclass(frozen=True, slots=True)
class Pick:
    """What one sidecar says about one image."""

    image_id: int
    original_filename: str
    group_label: str | None
    is_keeper: bool
    eyes_closed: bool = False
    # The decision on the image (services/decision_service.py), None where there is none.
    pick: str | None = None
    rating: int | None = None
    color_label: str | None = None
    decided_by: str | None = None
    # A RAW+JPEG pair's second file: it gets the same XMP (services/companions.py).
    companion_filename: str | None = None


def batch_picks(session: Session, batch_id: int) -> list[tuple[ImageBatchAssociation, Pick]]:
    """Each member of the batch in its order, with what its XMP says."""
    batch = batch_service.get_batch(session, batch_id)
    return [
        (
            association,
            Pick(
                image_id=association.image.id,
                original_filename=association.image.original_filename,
                group_label=association.group_label,
                is_keeper=readiness.is_keeper(association),
                eyes_closed="closed" in (association.image.eyes or "").split(","),
                pick=association.pick,
                rating=association.rating,
                color_label=association.color_label,
                decided_by=association.decided_by,
                companion_filename=association.image.companion_original_filename,
            ),
        )
        for association in batch.image_associations
    ]


def sidecars_zip(session: Session, batch_id: int, options: XmpOptions) -> bytes:
    """A zip of one `.xmp` per file of the batch's images (see `sidecar_names` for clashes):
    a RAW+JPEG pair named `full` gets `IMG_0001.CR2.xmp` and `IMG_0001.JPG.xmp` (darktable
    shows both files, each reading its own), named `basename` one `IMG_0001.xmp` for both."""
    picks = [pick for _association, pick in batch_picks(session, batch_id)]
    wanted = [
        (pick.image_id, sidecar_name(pick, options.naming, filename), pick)
        for pick in picks
        for filename in sidecar_files(pick, options.naming)
    ]
    names = unique_paths([(image_id, name) for image_id, name, _pick in wanted])
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, (_image_id, _wanted, pick) in zip(names, wanted, strict=True):
            archive.writestr(zip_member(name), sidecar_xml(pick, options))
    return buffer.getvalue()


def sidecar_files(pick: Pick, naming: Naming) -> list[str]:
    """The image's files that get a sidecar of their own: both of a RAW+JPEG pair named
    `full`, else the main file only (`basename`: the pair shares one stem, so one name)."""
    if pick.companion_filename and naming == "full":
        return [pick.original_filename, pick.companion_filename]
    return [pick.original_filename]


def zip_member(name: str, compress_type: int = zipfile.ZIP_DEFLATED) -> zipfile.ZipInfo:
    """A zip entry readable by everyone once unzipped."""
    # writestr with a bare name stores mode 0600: unzipped, a sidecar then was readable by its
    # owner only (Lightroom on another account, a NAS share saw nothing).
    member = zipfile.ZipInfo(name, date_time=time.localtime()[:6])
    member.compress_type = compress_type
    member.external_attr = (stat.S_IFREG | 0o644) << 16
    return member


def sidecar_name(pick: Pick, naming: Naming, filename: str | None = None) -> str:
    """`IMG_0001.xmp` (`basename`) or `IMG_0001.CR2.xmp` (`full`) for `IMG_0001.CR2`: the
    image's main file, or `filename` (its companion)."""
    original = photo_name(pick, filename)
    stem = PurePath(original).stem if naming == "basename" else original
    return _fit_bytes(stem or f"image-{pick.image_id}", ".xmp")


def photo_name(pick: Pick, filename: str | None = None) -> str:
    """The photo's own file name (or `filename`, its companion's), made safe for a zip or a
    file system."""
    # NFC: macOS stores names decomposed, so "é" and "e\u0301" are one file there.
    original = unicodedata.normalize("NFC", _safe_name(filename or pick.original_filename))
    return original or f"image-{pick.image_id}"


def sidecar_names(picks: Iterable[Pick], naming: Naming) -> dict[int, str]:
    """Zip member name per image id.

    `basename`: `IMG_0001.xmp` for `IMG_0001.CR2` (Lightroom, Capture One, darktable's
    Lightroom import); `full`: `IMG_0001.CR2.xmp` (darktable's own sidecars). Two images whose
    sidecars would share a name (the same file name from two cards, or a RAW+JPEG pair with
    `basename`) keep that name, each in its own folder `image-<id>/`, except the first, which
    stays at the top; nothing is overwritten and every sidecar still matches its photo's name.
    """
    return unique_names((pick.image_id, sidecar_name(pick, naming)) for pick in picks)


def unique_names(wanted: Iterable[tuple[int, str]]) -> dict[int, str]:
    """Each image's wanted name; a name taken already (ignoring case, as Windows and macOS
    file systems do) goes into a folder `image-<id>/`."""
    pairs = list(wanted)
    return dict(zip((image_id for image_id, _ in pairs), unique_paths(pairs), strict=True))


def unique_paths(wanted: list[tuple[int, str]]) -> list[str]:
    """`unique_names` for members in order, an image having one or more (a RAW+JPEG pair's
    two files)."""
    names: list[str] = []
    taken: set[str] = set()
    for image_id, name in wanted:
        if name.casefold() in taken:
            name = f"image-{image_id}/{name}"
        taken.add(name.casefold())
        names.append(name)
    return names


def _fit_bytes(stem: str, suffix: str) -> str:
    """`stem + suffix`, the stem cut (at a whole character) so that the name takes at most
    MAX_NAME_BYTES bytes of UTF-8."""
    room = MAX_NAME_BYTES - len(suffix.encode())
    cut = stem.encode()[:room].decode(errors="ignore")
    return cut + suffix


def _xml_text(text: str) -> str:
    return _NOT_XML.sub("\ufffd", text)


def _role(pick: Pick, options: XmpOptions) -> tuple[int, str, str]:
    """(stars, colour label, keyword) from the decision where there is one (a user reject:
    -1, Lightroom's "rejected"), else from the judge's suggestion; the photographer's own
    stars and colour label win over the options'."""
    if pick.decided_by == "user" and pick.pick == "reject":
        rating, label, role = -1, "none", "Rejected"
    elif pick.is_keeper:
        rating, label, role = options.keeper_rating, options.keeper_label, "Keeper"
    elif pick.pick is None and not readiness.is_grouped(pick.group_label):
        rating, label, role = options.ungrouped_rating, options.ungrouped_label, readiness.UNGROUPED
    else:
        rating, label, role = options.other_rating, options.other_label, "Alternate"
    if pick.decided_by == "user":
        rating = pick.rating if pick.rating is not None and pick.pick != "reject" else rating
        label = pick.color_label or label
    return rating, label, role


def sidecar_xml(pick: Pick, options: XmpOptions) -> bytes:
    """The XMP packet for one image."""
    rating, label, role = _role(pick, options)
    hierarchy = [(KEYWORD_ROOT, role)]
    if readiness.is_grouped(pick.group_label):
        assert pick.group_label is not None
        # "|" separates levels in lr:hierarchicalSubject; a label holding one stays one level.
        hierarchy.insert(0, (KEYWORD_ROOT, _xml_text(pick.group_label).replace("|", "/")))
    if pick.eyes_closed:
        hierarchy.append((KEYWORD_ROOT, EYES_CLOSED_KEYWORD))

    root = ElementTree.Element(_q("x", "xmpmeta"))
    rdf = ElementTree.SubElement(root, _q("rdf", "RDF"))
    description = ElementTree.SubElement(rdf, _q("rdf", "Description"), {_q("rdf", "about"): ""})
    ElementTree.SubElement(description, _q("xmp", "Rating")).text = str(rating)
    if label != "none":
        ElementTree.SubElement(description, _q("xmp", "Label")).text = label
    decided_by = pick.decided_by or "suggestion"
    ElementTree.SubElement(description, _q("pixal", "DecidedBy")).text = decided_by
    flat = [KEYWORD_ROOT, *(leaf for _root, leaf in hierarchy)]
    _bag(description, _q("dc", "subject"), flat)
    _bag(description, _q("lr", "hierarchicalSubject"), ["|".join(path) for path in hierarchy])
    ElementTree.indent(root)
    packet: bytes = ElementTree.tostring(root, encoding="utf-8", xml_declaration=True)
    return packet


def _bag(parent: ElementTree.Element, tag: str, items: list[str]) -> None:
    bag = ElementTree.SubElement(ElementTree.SubElement(parent, tag), _q("rdf", "Bag"))
    for item in dict.fromkeys(items):  # unique, in order
        ElementTree.SubElement(bag, _q("rdf", "li")).text = item


def _q(prefix: str, name: str) -> str:
    return f"{{{NS[prefix]}}}{name}"


def _safe_name(filename: str) -> str:
    # Only the last path component (a client may send "a/b/c.jpg"), without unsafe characters.
    base = re.split(r"[/\\]", filename)[-1]
    return _UNSAFE.sub("_", base).strip(" .")
