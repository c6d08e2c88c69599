"""The Terraform and k8s manifests agree with shared.bootstrap (infra/check_infra.py)."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
pytest.importorskip("hcl2")

ROOT = Path(__file__).resolve().parents[2]


def _checker():
    spec = importlib.util.spec_from_file_location("check_infra", ROOT / "infra" / "check_infra.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_infra_has_no_problems() -> None:
    assert _checker().check_all(ROOT) == []


def test_a_subscription_without_oidc_token_is_reported(tmp_path: Path) -> None:
    from shared.bootstrap import DEAD_LETTER_TOPIC, SUBSCRIPTIONS

    broken = tmp_path / "terraform"
    shutil.copytree(ROOT / "infra" / "terraform", broken)
    main = broken / "main.tf"
    text = main.read_text()
    start = text.index("    oidc_token {")
    end = text.index("    }\n", start) + len("    }\n")
    main.write_text(text[:start] + text[end:])

    problems = _checker().check_terraform(broken, SUBSCRIPTIONS, DEAD_LETTER_TOPIC)

    assert problems
    assert all("oidc_token" in p and "main.tf" in p for p in problems)
    assert len(problems) == len(SUBSCRIPTIONS)
