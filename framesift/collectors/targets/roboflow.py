"""The Roboflow upload API as a target (`roboflow:<dataset>`), delivered through the outbox (SPEC §8).

Per datapoint: `POST {base}/dataset/{dataset}/upload?batch=<batch>&tag=<tag>...` (multipart: the image as `file`,
its `name` `<id>.jpg`; the batch and tags are query parameters, as Roboflow documents them), then, when predictions
are persisted, `POST {base}/dataset/{dataset}/annotate/{image_id}?name=<id>.json&prediction=true` with the
prediction JSON. A datapoint selected under a configuration from a store is tagged with its version
(`framesift-config-<version>`). A detection-like prediction with no detections is not sent: Roboflow reads an empty
annotation as "this image holds no objects", a label rather than a pre-annotation (the image is registered alone,
as Roboflow Inference does). Idempotent: the image is named by the datapoint id, Roboflow's `duplicate` answer counts as
success, the image id is stored in the outbox entry before annotating, and Roboflow's 409 "already annotated"
(the reply to an earlier annotate was lost) counts as success too, so a retry creates nothing twice. The API key
travels as the `api_key` query parameter and never appears in a log, an error, a record or a metric: request errors
are reported by their kind, never by their URL.
"""

from __future__ import annotations

import json
import os
from typing import Any

from framesift.collectors.targets.outbox import Entry, Outbox
from framesift.collectors.targets.remote import RemoteTarget
from framesift.collectors.targets.schemes import Opening, register_target
from framesift.defaults import OUTBOX_MAX_BYTES
from framesift.errors import PermanentError, TargetError
from framesift.http_answers import check, send
from framesift.paths import check_dataset_name
from framesift.predictions import has_annotation
from framesift.redaction import redact_logger

DEFAULT_API_URL = "https://api.roboflow.com"


@register_target("roboflow", form="roboflow:<dataset>", configuration_key=True)
def open_roboflow(dataset: str, opening: Opening) -> RoboflowTarget:
    """`--target roboflow:<dataset>`: the key from `--api-key`, else `ROBOFLOW_API_KEY` (a configuration's
    `target_dataset_api_key` wins); the server `ROBOFLOW_API_URL`, else Roboflow's."""
    return RoboflowTarget(dataset, opening.api_key or os.environ.get("ROBOFLOW_API_KEY", ""), opening.outbox,
                          outbox_max_bytes=opening.outbox_max_bytes)


class RoboflowTarget(RemoteTarget):
    """Registers datapoints into an outbox; a sender thread uploads them to Roboflow once started (`start()`)."""

    def __init__(self, dataset: str, api_key: str, outbox: Outbox | str | os.PathLike[str], *,
                 base_url: str | None = None, outbox_max_bytes: int = OUTBOX_MAX_BYTES, timeout: float = 30.0):
        check_dataset_name(dataset, "roboflow:<dataset>")
        if not api_key:
            raise TargetError("the roboflow target needs an API key (--api-key, ROBOFLOW_API_KEY or "
                             "target_dataset_api_key)")
        super().__init__(dataset, outbox, outbox_max_bytes)
        self._api_key = api_key
        self._base = (base_url or os.environ.get("ROBOFLOW_API_URL") or DEFAULT_API_URL).rstrip("/")
        self._timeout = timeout
        redact_logger("urllib3.connectionpool")  # it logs request URLs, key included, at DEBUG level

    # -- delivery, on the sender's thread ---------------------------------------------------------------------------
    def deliver(self, entry: Entry, outbox: Outbox) -> None:
        image_id = entry.meta.get("remote_image_id")
        if image_id is None:
            query = [("batch", entry.meta["batch"]), *(("tag", tag) for tag in _tags(entry.meta))]
            answer = self._check(self._post(f"/dataset/{self.name}/upload", query, data={"name": f"{entry.id}.jpg"},
                                            files={"file": (f"{entry.id}.jpg", entry.jpeg(), "image/jpeg")}),
                                 "upload")
            image_id = answer.get("id")
            if not image_id:
                raise PermanentError(f"upload answered without an image id: {str(answer)[:200]}")
            entry.meta["remote_image_id"] = image_id
            outbox.update(entry)  # a retry after this point annotates, it does not upload again
        if has_annotation(entry.meta.get("prediction")):
            response = self._post(f"/dataset/{self.name}/annotate/{image_id}",
                                  [("name", f"{entry.id}.json"), ("prediction", "true")],
                                  data=json.dumps(entry.meta["prediction"]), headers={"Content-Type": "text/plain"})
            if response.status_code == 409 and "already annotated" in response.text:  # our earlier attempt
                return
            answer = self._check(response, "annotate")
            if not answer.get("success"):
                raise PermanentError(f"annotate answered without success: {str(answer)[:200]}")

    def _post(self, path: str, query: list[tuple[str, str]], **kwargs: Any) -> Any:
        return send(self.http, "POST", self._base + path, server=self._base,
                    params=[("api_key", self._api_key), *query], timeout=self._timeout, **kwargs)

    def _check(self, response: Any, what: str) -> dict[str, Any]:
        return check(response, what, secrets=[self._api_key])


def _tags(meta: dict[str, Any]) -> list[str]:
    """The datapoint's tags, and the configuration version that selected it (`framesift-config-<version>`: the
    upload API takes no other metadata)."""
    version = (meta.get("extra") or {}).get("config_version")
    return [*meta["tags"], *([] if version is None else [f"framesift-config-{version}"])]
