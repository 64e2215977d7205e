"""A structural check of DICOM files, in Python, before GDCM reads any of them.

GDCM allocates each element's declared value length before it finds that the file is shorter:
a 1 KB file whose element claims 4 GB makes the reader allocate 4 GB (found by fuzzing the zip
upload path: a few damaged slices took a test process past 24 GB). :func:`dicom_file_problem`
walks every element header of a file (the file meta group in explicit VR little endian, then
the data set in its transfer syntax, into sequences and items) and reports the first element
whose value length exceeds what is left of the file, or whose value representation is not one
DICOM defines. Nothing is decoded; each header costs a few bytes of reading, so a 300-slice
series is checked in a fraction of a second.

Example:
    >>> dicom_file_problem(b"not a dicom file")
    'not DICOM'
"""

from __future__ import annotations

import struct

__all__ = ["dicom_file_problem", "NOT_DICOM"]

NOT_DICOM = "not DICOM"

# Value representations (PS3.5 6.2); the first group has a 2-byte reserved field and a 4-byte length.
_LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}
_SHORT_VRS = {b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FD", b"FL", b"IS", b"LO", b"LT", b"PN", b"SH",
              b"SL", b"SS", b"ST", b"TM", b"US", b"UI", b"UL"}
_UNDEFINED = 0xFFFFFFFF
_ITEM, _SEQ_END, _PIXEL_DATA = 0xFFFEE000, 0xFFFEE0DD, 0x7FE00010
_IMPLICIT_LE, _EXPLICIT_BE, _DEFLATED = "1.2.840.10008.1.2", "1.2.840.10008.1.2.2", "1.2.840.10008.1.2.1.99"


def _header(data: memoryview, pos: int, end: int, *, explicit: bool, order: str
            ) -> tuple[int, int, bytes, int, int] | str:
    """(group, element, VR, value length, position of the value) of the element header at ``pos``,
    or a problem. Items and delimiters (group FFFE) never carry a VR; neither does implicit VR."""
    if end - pos < 8:
        return "truncated element header"
    group, element = struct.unpack_from(order + "HH", data, pos)
    if group == 0xFFFE or not explicit:
        return group, element, b"", struct.unpack_from(order + "I", data, pos + 4)[0], pos + 8
    vr = bytes(data[pos + 4:pos + 6])
    if vr in _SHORT_VRS:
        return group, element, vr, struct.unpack_from(order + "H", data, pos + 6)[0], pos + 8
    if vr not in _LONG_VRS:
        return f"element ({group:04X},{element:04X}) has an unknown value representation"
    if end - pos < 12:
        return "truncated element header"
    return group, element, vr, struct.unpack_from(order + "I", data, pos + 8)[0], pos + 12


def _walk(data: memoryview, pos: int, end: int, *, explicit: bool, little: bool, stop_group: int | None = None
          ) -> tuple[int, str | None]:
    """Walk element headers in ``data[pos:end]``; return (position reached, problem or None).

    Sequences and items are entered (their content is element headers too); the fragments of
    encapsulated pixel data (undefined-length OB/OW/UN that is not a sequence) are items whose
    values are skipped by length. ``stop_group``: stop before the first element of another group.
    """
    order = "<" if little else ">"
    raw_items = 0  # depth of undefined-length non-sequence values (encapsulated pixel data)
    while pos < end:
        if stop_group is not None and end - pos >= 2 and struct.unpack_from(order + "H", data, pos)[0] != stop_group:
            return pos, None  # the next group may use another transfer syntax: not read here
        head = _header(data, pos, end, explicit=explicit, order=order)
        if isinstance(head, str):
            return pos, head
        group, element, vr, length, pos = head
        tag = (group << 16) | element
        if group == 0xFFFE:  # item / delimiters
            if tag == _SEQ_END and raw_items:
                raw_items -= 1
            if tag == _ITEM and length != _UNDEFINED:
                if length > end - pos:
                    return pos, f"an item claims {length:,} bytes but only {end - pos:,} remain"
                if raw_items:  # a pixel-data fragment: raw bytes
                    pos += length
            continue
        if length == _UNDEFINED:
            if tag == _PIXEL_DATA or (explicit and vr != b"SQ"):
                raw_items += 1  # encapsulated pixel data (OB/OW) or UN: raw fragments follow as items
            continue  # a sequence: its items follow and are walked into
        if length > end - pos:
            return pos, (f"element ({group:04X},{element:04X}) claims {length:,} bytes but only "
                         f"{end - pos:,} remain in the file")
        # a defined-length sequence is walked into (in implicit VR: a value that starts with an item)
        nested = vr == b"SQ" or (not explicit and length >= 8 and tag != _PIXEL_DATA
                                 and struct.unpack_from(order + "HH", data, pos) == (0xFFFE, 0xE000))
        if not nested:
            pos += length  # a value: skipped
    return pos, None


def dicom_file_problem(content: bytes | bytearray | memoryview) -> str | None:
    """``None`` when every element header of a DICOM Part-10 file fits the file; otherwise a
    short reason (:data:`NOT_DICOM` when there is no ``DICM`` preamble, e.g. a text file).

    Args:
        content: the whole file (bytes or a memory map of it).
    """
    with memoryview(content) as data:  # released on return, so a memory map behind it can close
        return _problem(data)


def _problem(data: memoryview) -> str | None:
    if len(data) < 132 or bytes(data[128:132]) != b"DICM":
        return NOT_DICOM
    pos, problem = _walk(data, 132, len(data), explicit=True, little=True, stop_group=0x0002)
    if problem:
        return problem
    syntax = _transfer_syntax(data[132:pos])
    if syntax == _DEFLATED:
        return "deflate-compressed DICOM (transfer syntax 1.2.840.10008.1.2.1.99) is not supported"
    explicit, little = syntax != _IMPLICIT_LE, syntax != _EXPLICIT_BE
    stopped, problem = _walk(data, pos, len(data), explicit=explicit, little=little)
    if problem and explicit and stopped == pos:
        # a data set written in implicit VR under an explicit transfer syntax: GDCM detects this
        # from the first element and reads it as implicit, so check it that way too
        _, problem = _walk(data, pos, len(data), explicit=False, little=little)
    return problem


def _transfer_syntax(meta: memoryview) -> str:
    """(0002,0010) from the file meta group (already walked: every header fits); explicit VR
    little endian when absent."""
    pos = 0
    while pos < len(meta):
        group, element, _vr, length, value = _header(meta, pos, len(meta), explicit=True, order="<")
        if (group, element) == (0x0002, 0x0010):
            return bytes(meta[value:value + length]).rstrip(b"\0 ").decode("ascii", "replace")
        pos = value + length
    return "1.2.840.10008.1.2.1"
