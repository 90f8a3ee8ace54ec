"""Test plugin that needs mod_base 2 or later (mod_base 1.2.0 is what is installed)."""

import kehu

MANIFEST = kehu.Manifest(name="mod_wants_base_2", version="0.1.0", summary="Test: needs mod_base>=2",
                         depends={"mod_base": ">=2"})
