"""The RemoteTraining port: where a candidate is trained when it is not in this process.

The trainer trains in process by default. A `RemoteTraining` adapter (Vertex AI custom jobs on
the gcp stack) runs the same training elsewhere: the job writes the artifact and its result
next to it in the blob store, and the trainer registers the version from there as it does after
an in-process run. Nothing here knows a cloud SDK.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field


class TrainingJob(BaseModel):
    """One candidate to train elsewhere; the same job twice names the same model version."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model_version: str = Field(description="the deterministic version the job must produce")
    dataset_uri: str = Field(description="manifest URI of the dataset to train on")
    dataset_version: str = Field(description="the dataset version the event named")
    command: tuple[str, ...] = Field(
        description="what the job runs in the trainer's image (python -m ... with arguments)"
    )


@runtime_checkable
class RemoteTraining(Protocol):
    """Runs a training job to its end; the artifact and result are in the blob store after."""

    def run(self, job: TrainingJob) -> str:
        """Run (or find and wait for) the job; return its name; raise if it did not succeed."""
        ...
