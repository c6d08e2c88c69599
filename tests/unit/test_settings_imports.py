"""Every service imports the settings, and only some install the matching libraries: importing
the settings (and the ports, the bus's dispatch) must not pull rapidfuzz or scikit-learn in.
tests/integration/test_members.py proves the same in each member's own environment, slowly;
this says which import broke it in a second."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.unit

HEAVY = ["rapidfuzz", "sklearn", "scipy", "skops", "ray"]


def test_the_settings_import_no_matching_library():
    code = (
        "import json, sys\n"
        "import cashmatch.settings, cashmatch.ports, cashmatch.service_layer.dispatch\n"
        # what the services without the `model` extra import (collector, deployer, alerter)
        "import cashmatch.entrypoints.cloud_event\n"
        "import cashmatch.service_layer.handlers.collector\n"
        "import cashmatch.service_layer.handlers.deployer\n"
        "import cashmatch.service_layer.handlers.guardrail\n"
        "import cashmatch.service_layer.handlers.alerter\n"
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(done.stdout) == []
