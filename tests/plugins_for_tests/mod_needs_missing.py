"""Test plugin that depends on a module nobody installed."""

import kehu

MANIFEST = kehu.Manifest(name="mod_needs_missing", version="0.1.0", summary="Test: needs mod_absent",
                         depends={"mod_absent": ">=1.0"})
