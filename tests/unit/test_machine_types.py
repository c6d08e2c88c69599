"""The Vertex AI machine type follows the month's size (CASHMATCH_VERTEX_MACHINE_TYPES)."""

import pytest

from cashmatch.adapters.gcp.vertex_training import VertexTraining
from cashmatch.domain.machine_types import (
    DEFAULT_MACHINE_TYPES,
    machine_for,
    parse_machine_types,
)
from cashmatch.ports import TrainingJob
from cashmatch.settings import SettingsError, load_settings

pytestmark = pytest.mark.unit


def test_the_default_table_grows_the_machine_with_the_month():
    table = parse_machine_types(DEFAULT_MACHINE_TYPES)
    assert machine_for(table, 0) == "n1-standard-4"
    assert machine_for(table, 50_000) == "n1-standard-4"
    assert machine_for(table, 50_001) == "n1-highmem-8"
    assert machine_for(table, 300_000) == "n1-highmem-8"
    assert machine_for(table, 1_000_000) == "n1-highmem-16"


def test_one_type_for_every_month_and_underscores_in_bounds():
    assert machine_for(parse_machine_types("*:n1-standard-8"), 10**9) == "n1-standard-8"
    table = parse_machine_types(" <=1_000 : e2-standard-4 , *:e2-highmem-16 ")
    assert machine_for(table, 1000) == "e2-standard-4"
    assert machine_for(table, 1001) == "e2-highmem-16"


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("", "expected '<=TRANSFERS:MACHINE'"),
        ("<=100:n1-standard-4", "the last row must be '*:MACHINE'"),
        ("<=100:n1-standard-4,<=50:n1-highmem-8,*:n1-highmem-16", "bounds must grow"),
        ("*:n1-standard-4,<=50:n1-highmem-8", "nothing may follow the '*' row"),
        ("100:n1-standard-4,*:n1-highmem-8", "the bound must be '<=N'"),
        ("<=1e5:n1-standard-4,*:n1-highmem-8", "the bound must be '<=N'"),
        ("<=100:N1 STANDARD,*:n1-highmem-8", "is not a machine type"),
        ("<=100 n1-standard-4,*:n1-highmem-8", "row 1"),
    ],
)
def test_a_bad_table_is_refused_naming_the_row(text, says):
    with pytest.raises(ValueError, match=r"row|last row") as caught:
        parse_machine_types(text)
    assert says in str(caught.value)


def test_settings_refuse_a_bad_table_naming_the_variable(monkeypatch):
    monkeypatch.setenv("CASHMATCH_VERTEX_MACHINE_TYPES", "<=100:n1-standard-4")
    with pytest.raises(SettingsError, match="CASHMATCH_VERTEX_MACHINE_TYPES") as caught:
        load_settings()
    assert "the last row must be" in str(caught.value)


def test_settings_parse_the_table(monkeypatch):
    monkeypatch.setenv("CASHMATCH_VERTEX_MACHINE_TYPES", "<=10:n1-standard-4,*:n1-highmem-8")
    table = load_settings().vertex_machine_table
    assert table == ((10, "n1-standard-4"), (None, "n1-highmem-8"))


def test_the_old_single_type_setting_says_what_replaced_it(monkeypatch):
    monkeypatch.setenv("CASHMATCH_VERTEX_MACHINE_TYPE", "n1-standard-8")
    with pytest.raises(SettingsError, match="CASHMATCH_VERTEX_MACHINE_TYPES"):
        load_settings()


@pytest.mark.parametrize(
    ("month_transfers", "machine"),
    [(40_000, "n1-standard-4"), (100_000, "n1-highmem-8"), (1_000_000, "n1-highmem-16")],
)
def test_the_custom_job_runs_on_the_months_machine(month_transfers, machine):
    training = VertexTraining(
        object(),
        project="p",
        region="europe-west1",
        image="europe-west1-docker.pkg.dev/p/cashmatch/trainer:1",
        machine_types=parse_machine_types(DEFAULT_MACHINE_TYPES),
    )
    job = TrainingJob(
        model_version="m-1",
        dataset_uri="gs://b/datasets/manifests/2025-01.json",
        dataset_version="ds-1",
        command=("python", "-m", "x"),
        month_transfers=month_transfers,
    )
    (pool,) = training.custom_job(job).job_spec.worker_pool_specs
    assert pool.machine_spec.machine_type == machine
