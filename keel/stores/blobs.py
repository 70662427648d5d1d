"""Content-addressed blobs in the data dir: large payloads travel through Temporal as keys.

In embedded mode the API, CLI and worker share the data dir; scaled out, point
`data_dir` at a shared volume (an object-store adapter would slot in here). Each tenant has its
own folder: the same content uploaded by two tenants is two blobs, and a key read for one
tenant never finds another's.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

from keel.core.identity import check_tenant

_KEY = re.compile(r"^[0-9a-f]{64}$")


class BlobNotFoundError(KeyError):
    pass


class BlobStore:
    def __init__(self, root: Path) -> None:
        self._root = root

    def put_json(self, tenant: str, value: dict[str, Any]) -> str:
        data = json.dumps(value, sort_keys=True, ensure_ascii=False).encode()
        key = hashlib.sha256(data).hexdigest()
        path = self._path(tenant, key)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            # Write then rename: a reader never sees half a blob.
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_bytes(data)
            tmp.replace(path)
        return key

    def get_json(self, tenant: str, key: str) -> dict[str, Any]:
        if not _KEY.match(key):
            raise BlobNotFoundError(f"not a blob key: {key!r}")
        try:
            result: dict[str, Any] = json.loads(self._path(tenant, key).read_bytes())
        except FileNotFoundError:
            raise BlobNotFoundError(f"blob {key} is not in {self._root}") from None
        return result

    def _path(self, tenant: str, key: str) -> Path:
        return self._root / check_tenant(tenant) / key[:2] / f"{key}.json"
