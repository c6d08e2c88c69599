"""RemoteTraining on Vertex AI: one custom job per model version, found again by its labels.

The trainer service (Cloud Run) hands over a `TrainingJob`; this adapter builds the
`CustomJob` (one worker running the job's command in the trainer's image, with the settings
the job needs), submits it with `JobServiceClient.create_custom_job`, and polls
`get_custom_job` until the job succeeds or fails. A push delivery may wait at most 600 s, so
one delivery waits `wait_s` and then raises `TrainingStillRunning`: the redelivery lists the
jobs labelled with the version and waits for the same job instead of starting another.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from cashmatch.adapters.gcp.vertex import VERSION_LABEL, label_value
from cashmatch.domain.machine_types import (
    DEFAULT_MACHINE_TYPES,
    MachineTable,
    machine_for,
    parse_machine_types,
)
from cashmatch.ports import TrainingJob

log = logging.getLogger(__name__)

SUCCEEDED = "JOB_STATE_SUCCEEDED"
FAILED = {"JOB_STATE_FAILED", "JOB_STATE_CANCELLED", "JOB_STATE_EXPIRED"}
# The settings a job needs to reach the blob store; nothing else of the trainer's is passed.
JOB_SETTINGS = ("stack", "project", "region", "bucket", "warehouse")


class TrainingJobFailed(RuntimeError):
    """The custom job ended without a model (failed, cancelled or expired)."""


class TrainingStillRunning(RuntimeError):
    """This delivery waited long enough; a retry finds the same job and waits again."""


class VertexTraining:
    """The `RemoteTraining` port on Vertex AI custom jobs."""

    def __init__(
        self,
        client: Any,
        *,
        project: str,
        region: str,
        image: str,
        machine_types: MachineTable | None = None,
        service_account: str = "",
        env: Mapping[str, str] | None = None,
        wait_s: float = 540.0,
        poll_s: float = 15.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not image:
            raise ValueError("a Vertex AI training job needs the trainer's image")
        self.client = client
        self.parent = f"projects/{project}/locations/{region}"
        self.image = image
        self.machine_types = machine_types or parse_machine_types(DEFAULT_MACHINE_TYPES)
        self.service_account = service_account
        self.env = dict(env or {})
        self.wait_s = wait_s
        self.poll_s = poll_s
        self.sleep = sleep

    def custom_job(self, job: TrainingJob) -> Any:
        """The `aiplatform_v1.CustomJob` that runs `job.command` once in the trainer's image,
        on the machine the month's size calls for."""
        from google.cloud import aiplatform_v1

        container = aiplatform_v1.ContainerSpec(
            image_uri=self.image,
            command=list(job.command),
            env=[aiplatform_v1.EnvVar(name=k, value=v) for k, v in sorted(self.env.items())],
        )
        pool = aiplatform_v1.WorkerPoolSpec(
            machine_spec=aiplatform_v1.MachineSpec(machine_type=self.machine_type(job)),
            replica_count=1,
            container_spec=container,
        )
        return aiplatform_v1.CustomJob(
            display_name=f"cashmatch-train-{job.model_version}"[:128],
            labels={
                VERSION_LABEL: label_value(job.model_version),
                "cashmatch_dataset": label_value(job.dataset_version),
            },
            job_spec=aiplatform_v1.CustomJobSpec(
                worker_pool_specs=[pool], service_account=self.service_account
            ),
        )

    def machine_type(self, job: TrainingJob) -> str:
        """The machine type for the job's month (CASHMATCH_VERTEX_MACHINE_TYPES)."""
        return machine_for(self.machine_types, job.month_transfers)

    def run(self, job: TrainingJob) -> str:
        """Submit the job (or find it), wait for it; its name, or raise why it gave no model."""
        name, state = self._find(job)
        if name is None or state is None:
            created = self.client.create_custom_job(
                parent=self.parent, custom_job=self.custom_job(job)
            )
            name, state = created.name, created.state.name
            log.info("submitted Vertex AI custom job %s for %s", name, job.model_version)
        else:
            log.info("found Vertex AI custom job %s (%s) for %s", name, state, job.model_version)
        self._wait(name, state)
        return str(name)

    def _find(self, job: TrainingJob) -> tuple[str | None, str | None]:
        """The job already made for this version: a succeeded one, else one still running;
        (None, None) when there is none or every one failed (then a new one is submitted)."""
        query = f'labels.{VERSION_LABEL}="{label_value(job.model_version)}"'
        found = list(self.client.list_custom_jobs(request={"parent": self.parent, "filter": query}))
        succeeded = [j for j in found if j.state.name == SUCCEEDED]
        running = [j for j in found if j.state.name != SUCCEEDED and j.state.name not in FAILED]
        for item in (*succeeded, *running):
            return item.name, item.state.name
        return None, None

    def _wait(self, name: str, state: str) -> None:
        started = time.monotonic()
        while state != SUCCEEDED:
            if state in FAILED:
                current = self.client.get_custom_job(name=name)
                raise TrainingJobFailed(
                    f"Vertex AI custom job {name} ended {state}: "
                    f"{current.error.message or 'no error message'}"
                )
            if time.monotonic() - started >= self.wait_s:
                raise TrainingStillRunning(
                    f"Vertex AI custom job {name} is still {state} after {self.wait_s:.0f}s; "
                    "a retry waits for it again"
                )
            self.sleep(self.poll_s)
            state = self.client.get_custom_job(name=name).state.name
