"""Test plugin written for a core API this core does not offer."""

import kehu

MANIFEST = kehu.Manifest(name="mod_future_core", version="0.1.0", summary="Test: core API 2", core_api=">=2,<3")
