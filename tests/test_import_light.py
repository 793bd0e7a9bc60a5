"""`import cachedeps` and the storage modules load no framework and no memcache client."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("django", "sqlalchemy", "pymemcache")


def test_core_imports_load_no_framework_or_client():
    code = (
        "import sys\n"
        "import cachedeps, cachedeps.config, cachedeps.serde, cachedeps.store, cachedeps.store.embedded\n"
        "cachedeps.open_store('embedded://light').set('k', b'v')\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout
