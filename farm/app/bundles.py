"""`farm run --bundle`, `farm bundle` and `farm push`: a campaign carried as a file from a
host with no route to the farm into the central database, once."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

from farm import __version__
from farm.app.bundlefile import Header, check_writable, encode, read_bundle, write_bundle
from farm.app.ports import BundleStore, Pushed

__all__ = ["check_writable", "export_bundle", "push_bundle"]


def export_bundle(store: BundleStore, ref: str, path: Path) -> Header:
    """Write the ended campaign `ref` to `path` (whole or not at all); returns its header.

    A campaign exported twice keeps its bundle id, so its two files push as one campaign.
    """
    check_writable(path)
    payload = store.export_campaign(ref, str(uuid.uuid4()))
    header, data = encode(
        payload,
        bundle_id=payload["campaign"]["bundle_id"],
        farm=__version__,
        created=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    write_bundle(path, data)
    return header


def push_bundle(store: BundleStore, path: Path) -> tuple[Header, Pushed]:
    """Load the bundle in `path` as a campaign of its own, unless a push already did.

    The file is checked whole (format, schema, checksum, shape) before the store is asked
    to write anything, and the store writes it in one transaction."""
    bundle = read_bundle(path)
    return bundle.header, store.import_campaign(bundle.payload, str(path))
