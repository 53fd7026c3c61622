"""Deterministic UIDs: the same input, model and frame always give the same UID, so a PACS that
receives a result twice replaces it instead of collecting duplicates."""

from __future__ import annotations

import uuid

#: namespace of CMRRisk's name-based UUIDs
NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://github.com/cmrrisk/cmrrisk/dicom")


def derived_uid(*parts) -> str:
    """A UID under the 2.25 root (PS3.5 B.2) from a name-based (SHA-1, version 5) UUID of ``parts``."""
    name = "\x1f".join(str(p) for p in parts)
    return f"2.25.{uuid.uuid5(NAMESPACE, name).int}"
