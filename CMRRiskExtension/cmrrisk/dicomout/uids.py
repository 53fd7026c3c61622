"""Deterministic UIDs: the same input, model and frame always give the same UID, so a PACS that
receives a result twice replaces it instead of collecting duplicates."""

from __future__ import annotations


def derived_uid(*parts) -> str:
    """A 2.25 UID from a hash of ``parts`` (pydicom's generate_uid with the parts as entropy)."""
    from pydicom.uid import generate_uid

    return str(generate_uid(prefix=None, entropy_srcs=[str(p) for p in parts]))
