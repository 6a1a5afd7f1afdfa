"""File signatures: what a file is, from its first bytes (standard library only).

Used by the readers in this package and, through ``client.wire``, by the client and the server to
name and check uploads.
"""

from __future__ import annotations

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
JPEG_MAGIC = b"\xff\xd8\xff"
NPY_MAGIC = b"\x93NUMPY"
EXR_MAGIC = b"\x76\x2f\x31\x01"
MKV_MAGIC = b"\x1a\x45\xdf\xa3"
MPEG_PS_MAGIC = b"\x00\x00\x01\xba"
ISO_BOXES = (b"ftyp", b"moov", b"mdat", b"wide", b"free", b"skip")  # MP4/MOV top-level boxes
VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".avi", ".mpg", ".ts")
PFM_MAGICS = (b"Pf", b"PF")  # one channel; three (refused by the depth decoder)


def sniff_suffix(data: bytes) -> str | None:
    """The file suffix of ``data`` from its first bytes (``.png``, ``.jpg``, ``.npy``, ``.exr``, or a
    :data:`VIDEO_SUFFIXES` container), or None when none matches."""
    for magic, suffix in ((PNG_MAGIC, ".png"), (JPEG_MAGIC, ".jpg"), (NPY_MAGIC, ".npy"), (EXR_MAGIC, ".exr")):
        if data.startswith(magic):
            return suffix
    if data[4:8] in ISO_BOXES:
        return ".mp4" if data[4:8] == b"ftyp" and data[8:12] != b"qt  " else ".mov"
    if data.startswith(MKV_MAGIC):
        return ".mkv"
    if data.startswith(b"RIFF") and data[8:12] == b"AVI ":
        return ".avi"
    if data.startswith(MPEG_PS_MAGIC):
        return ".mpg"
    if len(data) > 376 and data[0] == data[188] == 0x47:  # MPEG-TS: a sync byte every 188 bytes
        return ".ts"
    return None
