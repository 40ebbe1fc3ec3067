"""The properties `pong fuzz` runs (tools/fuzz_properties.py), as ordinary hypothesis tests.

Under the suite's profiles they run like every other property test; under HypoFuzz
(`hypothesis fuzz -- tests/`) they are fuzz targets next to the rest.
"""

from __future__ import annotations

from hypothesis import settings

from tools.fuzz_properties import PROPERTIES, GivenProperty, MachineProperty

for _prop in PROPERTIES:
    if isinstance(_prop, GivenProperty):
        globals()[f"test_{_prop.name}"] = _prop.test(settings())
    elif isinstance(_prop, MachineProperty):
        globals()[f"test_{_prop.name}"] = _prop.machine.TestCase


def test_every_property_is_here():
    assert {p.name for p in PROPERTIES} <= {name[5:] for name in globals() if name.startswith("test_")}
