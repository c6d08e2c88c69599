import pytest

from cashmatch.settings import SettingsError, load_settings

pytestmark = pytest.mark.unit


def test_defaults_are_the_local_stack():
    settings = load_settings()
    assert settings.stack == "local"
    assert settings.gates.primary_metric == "auto_rate@99"


def test_environment_and_file_are_read(monkeypatch, tmp_path):
    env_file = tmp_path / "cashmatch.env"
    env_file.write_text("CASHMATCH_TEST_FRACTION=0.3\nCASHMATCH_GATE_ALPHA=0.01\n")
    monkeypatch.setenv("CASHMATCH_SETTINGS_FILE", str(env_file))
    monkeypatch.setenv("CASHMATCH_MAX_ATTEMPTS", "7")
    settings = load_settings()
    assert settings.test_fraction == 0.3
    assert settings.max_attempts == 7
    assert settings.gates.alpha == 0.01


def test_invalid_value_names_the_variable(monkeypatch):
    monkeypatch.setenv("CASHMATCH_TEST_FRACTION", "1.5")
    with pytest.raises(SettingsError, match="CASHMATCH_TEST_FRACTION"):
        load_settings()
    monkeypatch.delenv("CASHMATCH_TEST_FRACTION")
    monkeypatch.setenv("CASHMATCH_GATE_ALPHA", "lots")
    with pytest.raises(SettingsError, match="CASHMATCH_GATE_ALPHA"):
        load_settings()
    monkeypatch.setenv("CASHMATCH_GATE_ALPHA", "0.05")
    monkeypatch.setenv("CASHMATCH_GATE_PRIMARY_METRIC", "vibes")
    with pytest.raises(SettingsError, match="CASHMATCH_GATE_PRIMARY_METRIC.*no paired comparison"):
        load_settings()


def test_the_retired_min_gain_says_what_replaced_it(monkeypatch):
    monkeypatch.setenv("CASHMATCH_GATE_MIN_GAIN", "0.002")
    with pytest.raises(SettingsError, match="MIN_GAIN is no longer a setting.*GATE_ALPHA"):
        load_settings()


def test_gcp_stack_names_what_is_missing(monkeypatch):
    monkeypatch.setenv("CASHMATCH_STACK", "gcp")
    with pytest.raises(SettingsError, match="CASHMATCH_BUCKET.*CASHMATCH_PROJECT"):
        load_settings()


def test_missing_settings_file_and_missing_warehouse_are_clear(monkeypatch):
    monkeypatch.setenv("CASHMATCH_SETTINGS_FILE", "/nonexistent/file.env")
    with pytest.raises(SettingsError, match="no such file"):
        load_settings()
    monkeypatch.delenv("CASHMATCH_SETTINGS_FILE")
    with pytest.raises(SettingsError, match="CASHMATCH_WAREHOUSE"):
        _ = load_settings().warehouse_path


def test_a_misspelt_variable_is_named(monkeypatch):
    monkeypatch.setenv("CASHMATCH_WORKSPCE", "/tmp/x")
    with pytest.raises(SettingsError, match="unknown setting.*CASHMATCH_WORKSPCE"):
        load_settings()


def test_every_name_in_the_settings_file_must_be_a_setting(monkeypatch, tmp_path):
    settings_file = tmp_path / "cashmatch.env"
    settings_file.write_text("# the demo's choices\nCASHMATCH_TEST_FRACTION=0.3\nSERVING=ray\n")
    monkeypatch.setenv("CASHMATCH_SETTINGS_FILE", str(settings_file))
    with pytest.raises(SettingsError, match=r"unknown setting\(s\): SERVING \(names start with"):
        load_settings()
    settings_file.write_text("# the demo's choices\nexport CASHMATCH_TEST_FRACTION=0.3\n")
    assert load_settings().test_fraction == 0.3


def test_a_settings_wide_error_names_what_is_missing_without_dumping_every_setting(monkeypatch):
    monkeypatch.setenv("CASHMATCH_STACK", "gcp")
    with pytest.raises(SettingsError) as caught:
        load_settings()
    said = str(caught.value)
    assert "the gcp stack needs CASHMATCH_BUCKET, CASHMATCH_PROJECT" in said
    assert "QualityGates" not in said and "got {" not in said
