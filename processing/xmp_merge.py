"""Our XMP properties merged into a packet someone else wrote (a camera, an editor, the
photographer's own sidecar), so nothing of theirs is lost.

Every property we write replaces theirs of the same name (ours are the current picks:
rating, label, whose decision); keyword bags (`dc:subject`, `lr:hierarchicalSubject`) are
joined, theirs first. Whatever else their packet holds (develop settings, captions, GPS, …)
is kept as it was.
"""

from __future__ import annotations

import io
import re
from xml.etree import ElementTree

RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
_DESCRIPTION = f"{{{RDF}}}Description"
_LI = f"{{{RDF}}}li"
_CONTAINERS = {f"{{{RDF}}}{name}" for name in ("Bag", "Seq", "Alt")}
_DECLARATION = re.compile(rb"^\s*(<\?xml[^>]*\?>)?\s*")
_XPACKET = re.compile(rb"<\?xpacket[^>]*\?>")
_XPACKET_BEGIN = b'<?xpacket begin="\xef\xbb\xbf" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
_XPACKET_END = b'\n<?xpacket end="w"?>'
_GENERATED_PREFIX = re.compile(r"ns\d+")


class UnreadableXmp(ValueError):
    """A packet that is not XMP we can read: it is left alone."""


def wrap_packet(packet: bytes) -> bytes:
    """`packet` without an XML declaration or old wrapper, inside an `<?xpacket?>` wrapper
    (what embedded XMP carries)."""
    return _XPACKET_BEGIN + bare_packet(packet) + _XPACKET_END


def bare_packet(packet: bytes) -> bytes:
    """The packet's `x:xmpmeta` (or `rdf:RDF`) element text alone."""
    body = _XPACKET.sub(b"", packet.rstrip(b"\x00 \t\r\n"))
    return _DECLARATION.sub(b"", body, count=1).strip()


def merge_packets(theirs: bytes, ours: bytes) -> bytes:
    """`theirs` with every property of `ours` in it (see the module's docstring)."""
    their_root = _parse(theirs)
    our_root = _parse(ours)
    their_descriptions = list(their_root.iter(_DESCRIPTION))
    our_descriptions = list(our_root.iter(_DESCRIPTION))
    if not their_descriptions:
        rdf = next(their_root.iter(f"{{{RDF}}}RDF"), None)
        if rdf is None:
            if their_root.tag != "{adobe:ns:meta/}xmpmeta":
                raise UnreadableXmp("neither x:xmpmeta nor rdf:RDF")
            rdf = ElementTree.SubElement(their_root, f"{{{RDF}}}RDF")
        target = ElementTree.SubElement(rdf, _DESCRIPTION, {f"{{{RDF}}}about": ""})
        their_descriptions = [target]
    target = their_descriptions[0]
    for ours_description in our_descriptions:
        for name, value in ours_description.attrib.items():
            if name.startswith(f"{{{RDF}}}"):
                continue
            _drop(their_descriptions, name)
            target.set(name, value)
        for prop in ours_description:
            items = _items(prop)
            if items is not None:
                kept = [item for d in their_descriptions for item in _take_items(d, prop.tag)]
                _drop(their_descriptions, prop.tag)
                target.append(_bag_like(prop, list(dict.fromkeys([*kept, *items]))))
            else:
                _drop(their_descriptions, prop.tag)
                target.append(prop)
    ElementTree.indent(their_root)
    merged: bytes = ElementTree.tostring(their_root, encoding="utf-8", xml_declaration=False)
    return merged


def _parse(packet: bytes) -> ElementTree.Element:
    body = bare_packet(packet)
    try:
        for _event, (prefix, uri) in ElementTree.iterparse(io.BytesIO(body), ["start-ns"]):
            _register(prefix, uri)
        return ElementTree.fromstring(body)
    except ElementTree.ParseError as exc:
        raise UnreadableXmp(f"the XMP packet does not parse: {exc}") from None


def _register(prefix: str, uri: str) -> None:
    """Keep the file's own prefixes where no other namespace uses them (ElementTree's
    registry is process-wide: a prefix taken already, or an `nsN` one, stays as it is)."""
    known = ElementTree._namespace_map  # type: ignore[attr-defined]
    if not prefix or _GENERATED_PREFIX.fullmatch(prefix) or uri in known:
        return
    if prefix in known.values():
        return
    ElementTree.register_namespace(prefix, uri)


def _items(prop: ElementTree.Element) -> list[str] | None:
    container = next((child for child in prop if child.tag in _CONTAINERS), None)
    if container is None:
        return None
    return [li.text or "" for li in container if li.tag == _LI]


def _take_items(description: ElementTree.Element, tag: str) -> list[str]:
    found: list[str] = []
    for prop in description.findall(tag):
        text = (prop.text or "").strip()
        found.extend(_items(prop) or ([text] if text else []))
    value = description.get(tag)
    if value:
        found.append(value)
    return found


def _drop(descriptions: list[ElementTree.Element], tag: str) -> None:
    for description in descriptions:
        description.attrib.pop(tag, None)
        for prop in description.findall(tag):
            description.remove(prop)


def _bag_like(prop: ElementTree.Element, items: list[str]) -> ElementTree.Element:
    container_tag = next(child.tag for child in prop if child.tag in _CONTAINERS)
    fresh = ElementTree.Element(prop.tag)
    container = ElementTree.SubElement(fresh, container_tag)
    for item in items:
        ElementTree.SubElement(container, _LI).text = item
    return fresh
