"""Test plugin in a dependency cycle with mod_cycle_b."""

import kehu

MANIFEST = kehu.Manifest(name="mod_cycle_a", version="0.1.0", summary="Test: cycle", depends={"mod_cycle_b": ""})
