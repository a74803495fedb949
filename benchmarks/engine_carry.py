"""Compiled engines carried between GPU leases (``compiled_engines.py --carry-out/--carry-in``):
an engine's cache folder as a tar in parts under the 16 MiB a lease hands back per file,
joined into the next machine's cache, and whether a record of another machine can resume
there (its engine is cached here)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

PART_BYTES = 15 * 2**20  # a lease hands back files of up to 16 MiB


def engine_key(rec: dict) -> str:
    """The compiled engine the record's cold step built ("" if none)."""
    start = "built the compiled engine "
    note = next((n for n in rec.get("cold", {}).get("notes", []) if n.startswith(start)), "")
    return note.removeprefix(start).split(" ", 1)[0]


def engine_folder(key: str) -> Path:
    from engine.backends.compiled_engine import KIND
    from engine.core.paths import cache_dir

    return cache_dir() / KIND / key


def carried(rec: dict) -> bool:
    """A record of another machine whose cold and warm steps ran, with its engine here."""
    key = engine_key(rec)
    done = all(rec.get(s, {}).get("exit") == 0 for s in ("cold", "warm"))
    return bool(key) and done and (engine_folder(key) / "meta.json").is_file()


def pack(key: str, carry: Path) -> dict[str, Any]:
    """The engine's cache folder as a tar in ``carry``, split into parts under 16 MiB."""
    import io
    import tarfile

    carry.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.add(engine_folder(key), arcname=key)
    data = buf.getvalue()
    parts = [data[i : i + PART_BYTES] for i in range(0, len(data), PART_BYTES)]
    for i, part in enumerate(parts):
        (carry / f"{key}.tar.{i:02d}").write_bytes(part)
    return {"key": key, "bytes": len(data), "parts": len(parts)}


def unpack(carry: Path) -> list[str]:
    """Engines carried in as parts (``pack``'s), joined into this machine's cache: their keys.
    An engine already cached here is left as it is."""
    import io
    import tarfile

    done = []
    for first in sorted(carry.glob("*.tar.00")):
        key = first.name.removesuffix(".tar.00")
        target = engine_folder(key)
        if not target.exists():
            data = b"".join(p.read_bytes() for p in sorted(carry.glob(f"{key}.tar.[0-9][0-9]")))
            with tarfile.open(fileobj=io.BytesIO(data)) as tar:
                names = tar.getnames()
                if any(n != key and not n.startswith(f"{key}/") for n in names):
                    raise SystemExit(f"{first}: a carried engine holds files outside {key}/")
                tar.extractall(target.parent, filter="data")
        done.append(key)
    return done
