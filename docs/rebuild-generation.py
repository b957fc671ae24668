#!/usr/bin/env python3
"""Rebuild a SQLite database from a railguard page generation, without railguard (docs/pages.md).

    python3 rebuild-generation.py STORE/NAME.generation.json OUT.db

Standard library only; the packs and page lists are zstd frames, decompressed by Python 3.14's
compression.zstd or else by the stock `zstd` tool. Reads format 1 (the page list in the manifest)
and format 2 (the page list in STORE/lists/). Every object, every page and the whole file are
checked against their sha256.
"""
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path


def unzstd(data):
    try:
        from compression import zstd  # Python 3.14+
        return zstd.decompress(data)
    except ImportError:
        return subprocess.run(["zstd", "-d", "-c", "-q"], input=data, capture_output=True, check=True).stdout


def check(condition, problem):
    if not condition:
        sys.exit(f"error: {problem}")


def rebuild(manifest, packs, where, partial):
    size = manifest["page_size"]
    with partial as out:
        out.truncate(size * manifest["page_count"])
        for pack in manifest["packs"]:
            data = (packs / f"{pack}.pack").read_bytes()
            check(hashlib.sha256(data).hexdigest() == pack, f"pack {pack} is damaged")
            check(data[:8] == b"RGPACK1\n", f"pack {pack}: unknown format")
            page_size, count = int.from_bytes(data[8:12], "big"), int.from_bytes(data[12:16], "big")
            table, pages = data[16:16 + 32 * count], unzstd(data[16 + 32 * count:])
            for index in range(count):
                digest = table[32 * index:32 * (index + 1)].hex()
                page = pages[page_size * index:page_size * (index + 1)]
                check(hashlib.sha256(page).hexdigest() == digest, f"pack {pack}: page {index} is damaged")
                for number in where.pop(digest, []):
                    out.seek(number * size)
                    out.write(page)
        check(not where, f"{len(where)} page(s) are in none of the generation's packs")
    with open(partial.name, "rb") as rebuilt:
        whole = hashlib.file_digest(rebuilt, "sha256").hexdigest()
    check(whole == manifest["raw_sha256"], "the rebuilt file does not match the manifest's sha256")


def page_list(manifest, store):
    if manifest["format"] == 1:
        return manifest["pages"]
    name = manifest["page_list"]
    data = (store / "lists" / f"{name}.list").read_bytes()
    check(hashlib.sha256(data).hexdigest() == name, f"page list {name} is damaged")
    check(data[:8] == b"RGLIST1\n", f"page list {name}: unknown format")
    digests = unzstd(data[16:])
    check(len(digests) == 32 * manifest["page_count"], f"page list {name} does not match the manifest")
    return [digests[i:i + 32].hex() for i in range(0, len(digests), 32)]


def main(manifest_path, out_path):
    manifest = json.loads(Path(manifest_path).read_text())
    check(manifest["kind"] == "pages" and manifest["format"] in (1, 2), "not a format-1 or format-2 generation")
    size = manifest["page_size"]
    where = {}
    for number, digest in enumerate(page_list(manifest, Path(manifest_path).parent)):
        where.setdefault(digest, []).append(number)
    partial = open(f"{out_path}.partial", "xb")  # ours alone: never an existing file
    try:
        rebuild(manifest, Path(manifest_path).parent / "packs", where, partial)
        os.link(partial.name, out_path)  # never over an existing file
    finally:
        os.unlink(partial.name)
    print(f"rebuilt {manifest['name']} into {out_path}: {manifest['page_count']} pages of {size} bytes; "
          f"check it with: sqlite3 {out_path} 'PRAGMA integrity_check'")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
