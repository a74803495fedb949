"""The dynamic section of an ELF shared library (what `readelf -d` shows), in pure Python.

The CUDA execution provider's DT_NEEDED entries are the libraries the dynamic loader must find
before `libonnxruntime_providers_cuda.so` loads, so a fix derived from them is complete. Only
64-bit little-endian files are read (x86-64 and aarch64 Linux, where these wheels exist).
"""

from __future__ import annotations

import struct

SHT_DYNAMIC = 6
DT_NULL, DT_NEEDED, DT_RPATH, DT_RUNPATH = 0, 1, 15, 29
_SECTION = "<IIQQQQIIQQ"  # Elf64_Shdr: name type flags addr offset size link info align entsize


def elf_dynamic(path: str) -> dict | None:
    """{"needed": [...], "runpath": [...]} of a 64-bit little-endian ELF file, or None."""
    try:
        with open(path, "rb") as fh:
            hdr = fh.read(64)
            if hdr[:4] != b"\x7fELF" or hdr[4] != 2 or hdr[5] != 1:
                return None
            shoff = struct.unpack_from("<Q", hdr, 0x28)[0]
            shentsize, shnum = struct.unpack_from("<HH", hdr, 0x3A)
            fh.seek(shoff)
            raw = fh.read(shentsize * shnum)
            sections = [struct.unpack_from(_SECTION, raw, i * shentsize) for i in range(shnum)]
            dynamic = next((s for s in sections if s[1] == SHT_DYNAMIC), None)
            if dynamic is None:
                return None
            strtab = sections[dynamic[6]]  # sh_link of the dynamic section: its string table
            fh.seek(strtab[4])
            strings = fh.read(strtab[5])
            fh.seek(dynamic[4])
            dyn = fh.read(dynamic[5])
        return _entries(dyn, strings)
    except (OSError, struct.error, IndexError, ValueError):
        return None


def _entries(dyn: bytes, strings: bytes) -> dict:
    def cstr(offset: int) -> str:
        return strings[offset : strings.index(b"\0", offset)].decode("utf-8", "replace")

    needed: list[str] = []
    runpath: list[str] = []
    for i in range(0, len(dyn) - 15, 16):
        tag, val = struct.unpack_from("<qQ", dyn, i)
        if tag == DT_NULL:
            break
        if tag == DT_NEEDED:
            needed.append(cstr(val))
        elif tag in (DT_RPATH, DT_RUNPATH):
            runpath += cstr(val).split(":")
    return {"needed": needed, "runpath": runpath}
