"""Test plugin in a dependency cycle with mod_cycle_a."""

import kehu

MANIFEST = kehu.Manifest(name="mod_cycle_b", version="0.1.0", summary="Test: cycle", depends={"mod_cycle_a": ""})
