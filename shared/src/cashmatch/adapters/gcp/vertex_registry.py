"""ModelCatalog on Vertex AI Model Registry: every champion a version of one Vertex model.

`publish_champion(record)`:

1. find the Vertex version of `record.version` by its `cashmatch_version` label (the model
   `projects/P/locations/R/models/MODEL_ID` may not exist yet);
2. if there is none, `upload_model` it: `artifact_uri` is the gs:// folder of the artifact,
   the serving container is the configured image, labels carry the version and the artifact's
   sha256 (a label holds 63 characters; the full digest is in the version description);
3. move the `champion` version alias to it (`merge_version_aliases`: off the version that
   holds it, then onto this one).

Each step looks before it writes, so publishing the same champion again only reads.
"""

from __future__ import annotations

import logging
from typing import Any

from google.api_core import exceptions as api_exceptions

from cashmatch.adapters.gcp.vertex import VERSION_LABEL, label_value
from cashmatch.domain.model_records import ModelRecord

log = logging.getLogger(__name__)

DIGEST_LABEL = "cashmatch_sha256"
CHAMPION_ALIAS = "champion"


def artifact_folder(model_uri: str) -> str:
    """The gs:// folder holding a model's artifact (Vertex wants a folder, not the file)."""
    if not model_uri.startswith("gs://") or model_uri.count("/") < 3:
        raise ValueError(f"Vertex AI Model Registry needs a gs:// artifact, not {model_uri}")
    return model_uri.rsplit("/", 1)[0] + "/"


class VertexModelCatalog:
    """The `ModelCatalog` port on Vertex AI Model Registry."""

    def __init__(
        self,
        client: Any,
        *,
        project: str,
        region: str,
        model_id: str,
        serving_image: str,
        alias: str = CHAMPION_ALIAS,
        upload_timeout_s: float = 300.0,
    ) -> None:
        if not serving_image:
            raise ValueError("an uploaded model needs a serving container image")
        self.client = client
        self.location = f"projects/{project}/locations/{region}"
        self.model_id = model_id
        self.serving_image = serving_image
        self.alias = alias
        self.upload_timeout_s = upload_timeout_s

    @property
    def model_name(self) -> str:
        """The Vertex model whose versions are the champions."""
        return f"{self.location}/models/{self.model_id}"

    def publish_champion(self, record: ModelRecord) -> str:
        """Upload `record` unless it is there, then give it the champion alias; its name."""
        folder = artifact_folder(record.model_uri)
        exists = self._get(self.model_name) is not None
        version_id = self.find_version(record.version) if exists else None
        if version_id is None:
            version_id = self._upload(record, folder, first=not exists)
        self._move_alias(version_id)
        return f"{self.model_name}@{version_id}"

    def find_version(self, version: str) -> str | None:
        """The Vertex version id labelled with our `version`, if uploaded."""
        query = f'labels.{VERSION_LABEL}="{label_value(version)}"'
        for model in self.client.list_model_versions(
            request={"name": self.model_name, "filter": query}
        ):
            return str(model.version_id)
        return None

    def model(self, record: ModelRecord, folder: str) -> Any:
        """The `aiplatform_v1.Model` uploaded for a registry record."""
        from google.cloud import aiplatform_v1

        months = ", ".join(record.training_months)
        return aiplatform_v1.Model(
            display_name=self.model_id,
            description="cashmatch: bank transfer to invoice matching; each version a champion",
            version_description=(
                f"{record.version}: artifact sha256 {record.artifact_digest}, trained on "
                f"{months} (dataset {record.dataset_version})"
            )[:1000],
            artifact_uri=folder,
            container_spec=aiplatform_v1.ModelContainerSpec(
                image_uri=self.serving_image,
                health_route="/v1/health",
                predict_route="/v1/match",
                ports=[aiplatform_v1.Port(container_port=8000)],
            ),
            labels={
                VERSION_LABEL: label_value(record.version),
                DIGEST_LABEL: label_value(record.artifact_digest),
                "cashmatch_dataset": label_value(record.dataset_version),
            },
        )

    def _upload(self, record: ModelRecord, folder: str, *, first: bool) -> str:
        from google.cloud import aiplatform_v1

        request = aiplatform_v1.UploadModelRequest(
            parent=self.location, model=self.model(record, folder)
        )
        if first:
            request.model_id = self.model_id
        else:
            request.parent_model = self.model_name
        operation = self.client.upload_model(request=request)
        response = operation.result(timeout=self.upload_timeout_s)
        log.info(
            "uploaded %s to Vertex AI as version %s", record.version, response.model_version_id
        )
        return str(response.model_version_id)

    def _move_alias(self, version_id: str) -> None:
        holder = self._get(f"{self.model_name}@{self.alias}")
        if holder is not None and str(holder.version_id) == version_id:
            return
        if holder is not None:
            self.client.merge_version_aliases(
                name=f"{self.model_name}@{holder.version_id}", version_aliases=[f"-{self.alias}"]
            )
        self.client.merge_version_aliases(
            name=f"{self.model_name}@{version_id}", version_aliases=[self.alias]
        )

    def _get(self, name: str) -> Any:
        try:
            return self.client.get_model(name=name)
        except api_exceptions.NotFound:
            return None
