"""Fetch and unpack the sdist of an installed distribution into the git-ignored cache."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
import tarfile
from pathlib import Path

__all__ = ["CACHE_DIR", "SdistUnavailable", "source_tree"]

ROOT = Path(__file__).resolve().parents[2]
#: where sdists are downloaded and unpacked (``.cache/`` is git-ignored)
CACHE_DIR = ROOT / ".cache" / "orm_suites"


class SdistUnavailable(RuntimeError):
    """The sdist could not be downloaded (no network, no index)."""


def source_tree(dist: str) -> Path:
    """Return the unpacked sdist of the installed version of ``dist``, downloading it once.

    Raises:
        SdistUnavailable: ``pip download`` failed; the message holds pip's output.
    """
    version = importlib.metadata.version(dist)
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    stem = f"{dist.lower()}-{version}"
    tree = CACHE_DIR / stem
    if (tree / ".unpacked").exists():
        return tree
    archive = CACHE_DIR / f"{stem}.tar.gz"
    if not archive.exists():
        proc = subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:",
             "--dest", str(CACHE_DIR), f"{dist}=={version}"],
            capture_output=True, text=True, timeout=900,
        )
        found = [p for p in CACHE_DIR.glob("*.tar.gz") if p.name.lower() == archive.name]
        if proc.returncode != 0 or not found:
            raise SdistUnavailable(
                f"pip download of the {dist}=={version} sdist failed (exit {proc.returncode}): "
                f"{(proc.stderr or proc.stdout).strip()[-800:]}"
            )
        archive = found[0]
    with tarfile.open(archive) as tar:
        top = tar.getnames()[0].split("/", 1)[0]
        tar.extractall(CACHE_DIR, filter="data")
    unpacked = CACHE_DIR / top
    if unpacked != tree:
        unpacked.rename(tree)
    (tree / ".unpacked").touch()
    return tree
