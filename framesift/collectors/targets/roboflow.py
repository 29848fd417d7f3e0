"""The Roboflow upload API as a target (`roboflow:<dataset>`), delivered through the outbox (SPEC §8).

Per datapoint: `POST {base}/dataset/{dataset}/upload` (multipart: the image named `<id>.jpg`, `batch`, one `tag`
per tag), then, when predictions are persisted, `POST {base}/dataset/{dataset}/annotate/{image_id}` with
`name=<id>.json&prediction=true`. Idempotent: the image is named by the datapoint id, Roboflow's `duplicate`
answer counts as success, and the image id is stored in the outbox entry before annotating, so a retry after a
lost reply creates nothing twice. The API key travels as the `api_key` query parameter and never appears in a log,
an error, a record or a metric: request errors are reported by their kind, never by their URL.
"""

from __future__ import annotations

import json
import os
from typing import Any

from framesift.collectors.datapoint import Datapoint
from framesift.collectors.targets.outbox import Entry, Outbox, OutboxSender, PermanentError, RetryableError
from framesift.redaction import redact_logger

DEFAULT_API_URL = "https://api.roboflow.com"


class RoboflowTarget:
    """Registers datapoints into an outbox; a sender thread uploads them to Roboflow."""

    def __init__(self, dataset: str, api_key: str, outbox: Outbox, *, base_url: str | None = None,
                 timeout: float = 30.0, start: bool = True):
        import requests

        if not api_key:
            raise ValueError("the roboflow target needs an API key (--api-key, ROBOFLOW_API_KEY or "
                             "target_dataset_api_key)")
        self.name = dataset
        self.outbox = outbox
        self._api_key = api_key
        self._base = (base_url or os.environ.get("ROBOFLOW_API_URL") or DEFAULT_API_URL).rstrip("/")
        self._timeout = timeout
        self._http = requests.Session()
        redact_logger("urllib3.connectionpool")  # it logs request URLs, key included, at DEBUG level
        self.sender = OutboxSender(outbox, self.deliver)
        if start:
            self.sender.start()

    def batch_count(self, batch: str) -> int:
        return 0  # the remote batch's size is not known here; the limiter counts what this fleet sent

    def register(self, datapoint: Datapoint) -> dict[str, Any]:
        self.outbox.add(datapoint)
        return {"id": datapoint.id, "batch": datapoint.batch, "queued": True}

    def stats(self) -> dict[str, Any]:
        return self.sender.stats()

    def close(self, timeout: float = 10.0) -> None:
        """Stop sending; what is not delivered stays in the outbox for the next run."""
        self.sender.stop(timeout)
        self._http.close()

    # -- delivery, on the sender's thread ---------------------------------------------------------------------------
    def deliver(self, entry: Entry, outbox: Outbox) -> None:
        image_id = entry.meta.get("remote_image_id")
        if image_id is None:
            files = {"file": (f"{entry.id}.jpg", entry.jpeg(), "image/jpeg")}
            data = [("name", f"{entry.id}.jpg"), ("batch", entry.meta["batch"])]
            data += [("tag", tag) for tag in entry.meta["tags"]]
            answer = self._post(f"/dataset/{self.name}/upload", files=files, data=data)
            image_id = answer.get("id")
            if not image_id:
                raise PermanentError(f"upload answered without an image id: {str(answer)[:200]}")
            entry.meta["remote_image_id"] = image_id
            outbox.update(entry)  # a retry after this point annotates, it does not upload again
        if entry.meta.get("prediction") is not None:
            self._post(f"/dataset/{self.name}/annotate/{image_id}", params={"name": f"{entry.id}.json",
                                                                           "prediction": "true"},
                       data=json.dumps(entry.meta["prediction"]), headers={"Content-Type": "text/plain"})

    def _post(self, path: str, params: dict[str, str] | None = None, **kwargs: Any) -> dict[str, Any]:
        import requests

        try:
            response = self._http.post(self._base + path, params={"api_key": self._api_key, **(params or {})},
                                       timeout=self._timeout, **kwargs)
        except requests.RequestException as error:  # its message holds the URL, and so the key: never shown
            raise RetryableError(f"{type(error).__name__} talking to {self._base}") from None
        status = response.status_code
        if status in (408, 429) or status >= 500:
            raise RetryableError(f"HTTP {status} from {path.split('/')[-1]}", _retry_after(response))
        if status >= 400:
            raise PermanentError(f"HTTP {status} from {path.split('/')[-1]}: {_scrub(response.text, self._api_key)}")
        try:
            return response.json()
        except ValueError:
            return {}


def _retry_after(response: Any) -> float | None:
    try:
        return max(0.0, float(response.headers.get("Retry-After", "")))
    except ValueError:
        return None


def _scrub(text: str, secret: str) -> str:
    return text[:300].replace(secret, "***")
