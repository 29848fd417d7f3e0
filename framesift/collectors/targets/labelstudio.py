"""A Label Studio project as a target (`labelstudio:<project>`), delivered through the outbox (SPEC §8).

Per datapoint, on the sender's thread:

1. the image is uploaded to the project without creating a task (`POST /api/projects/{id}/import` with
   `commit_to_project=false`, named `<datapoint id>.jpg`); where the server stored it
   (`GET /api/import/file-upload/{upload id}`) is kept in the outbox entry;
2. one task is created (`POST /api/projects/{id}/import`): the image, the datapoint's id, batch, tags, source,
   frame, capture time and strategy in its data, the prediction (when persisted) as its pre-annotation.

Idempotent: a retry after step 1 first looks for a task whose `data.datapoint_id` is the datapoint's id (a Data
Manager filter) and creates none when it exists. A retry of step 1 after a lost reply can leave an unused file
upload at the server, never a second task. A project deleted while framesift runs (a 404) is looked up (or
created) again, and the image uploaded to it again.

The project is looked up by its title on the first delivery (not at start: a server that is down delays
delivery, never the stream) and created when missing, with a labeling configuration built from the model's
classes. An existing project's configuration names the task field of the image and the controls the
predictions fill (`labelstudio_format.LabelingInterface`).

The API key is either a personal access token (a JWT: exchanged at `/api/token/refresh/` for a short-lived
access token, renewed when the server answers 401) or a legacy token (sent as `Authorization: Token ...`). It
travels in a header only and never appears in a log, an error, a record or a metric.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from framesift.collectors.targets.outbox import Entry, Outbox
from framesift.collectors.targets.remote import RemoteTarget
from framesift.collectors.targets.schemes import Opening, register_target
from framesift.dataset.labelstudio_tasks import LabelingInterface, Labels, labeling_config, task_json
from framesift.defaults import OUTBOX_MAX_BYTES
from framesift.errors import PermanentError, RetryableError, TargetError
from framesift.http_answers import check, send

log = logging.getLogger(__name__)

DEFAULT_URL = "http://localhost:8080"
TITLE_LENGTH = (3, 50)  # what Label Studio accepts for a project title


@register_target("labelstudio", form="labelstudio:<project>")
def open_labelstudio(project: str, opening: Opening) -> LabelStudioTarget:
    """`--target labelstudio:<project>` (a project's title; made, from `opening.labels`, when missing): the server
    `LABEL_STUDIO_URL`, else `http://localhost:8080`; the key from `--api-key`, else `LABEL_STUDIO_API_KEY`."""
    return LabelStudioTarget(project, os.environ.get("LABEL_STUDIO_URL") or DEFAULT_URL,
                             opening.api_key or os.environ.get("LABEL_STUDIO_API_KEY", ""), opening.outbox,
                             labels=opening.labels, outbox_max_bytes=opening.outbox_max_bytes)


@dataclass(frozen=True)
class Project:
    id: int
    interface: LabelingInterface


class LabelStudioTarget(RemoteTarget):
    """Registers datapoints into an outbox; a sender thread turns them into tasks of a Label Studio project once
    started (`start()`)."""

    def __init__(self, project: str, url: str, api_key: str, outbox: Outbox | str | os.PathLike[str], *,
                 labels: Labels | None = None, outbox_max_bytes: int = OUTBOX_MAX_BYTES, timeout: float = 30.0):
        if not api_key:
            raise TargetError("the labelstudio target needs an API key (--api-key or LABEL_STUDIO_API_KEY)")
        if not TITLE_LENGTH[0] <= len(project) <= TITLE_LENGTH[1]:
            raise TargetError(f"a Label Studio project title has {TITLE_LENGTH[0]} to {TITLE_LENGTH[1]} characters, "
                             f"not {len(project)}: {project!r}")
        if urlsplit(url).scheme not in ("http", "https"):
            raise TargetError("LABEL_STUDIO_URL must start with http:// or https://")
        super().__init__(project, outbox, outbox_max_bytes)
        self._labels = labels or Labels()
        self._client = _Client(self.http, url, api_key, timeout)
        self._project: Project | None = None

    # -- delivery, on the sender's thread ---------------------------------------------------------------------------
    def deliver(self, entry: Entry, outbox: Outbox) -> None:
        project = self._project or self._open_project()
        try:
            self._deliver_to(project, entry, outbox)
        except PermanentError as error:
            if not str(error).startswith("HTTP 404"):
                raise
            self._project = None  # deleted (or recreated) while we ran: look it up again, upload again
            raise RetryableError(f"project {self.name!r} (id {project.id}) is gone; looking it up again") from None

    def _deliver_to(self, project: Project, entry: Entry, outbox: Outbox) -> None:
        image = entry.meta.get("labelstudio_image")
        if image is None or entry.meta.get("labelstudio_project") != project.id:
            answer = self._client.request("POST", f"/api/projects/{project.id}/import", "import",
                                          params={"commit_to_project": "false"},
                                          files={"file": (f"{entry.id}.jpg", entry.jpeg(), "image/jpeg")})
            uploads = answer.get("file_upload_ids") or []
            if not uploads:
                raise PermanentError(f"the image upload answered without a file upload id: {str(answer)[:200]}")
            stored = self._client.request("GET", f"/api/import/file-upload/{uploads[0]}", "file-upload")["file"]
            image = self._client.media_url(stored)
            entry.meta.update(labelstudio_image=image, labelstudio_project=project.id)
            outbox.update(entry)  # a retry after this point looks for the task before creating it
        elif self._task_exists(project, entry.id):
            return
        self._client.request("POST", f"/api/projects/{project.id}/import", "import",
                             json=[task_json(entry.meta, image, project.interface)])

    def _open_project(self) -> Project:
        """Find the project by its title, or create it (a concurrent creation by another box is found again)."""
        found = self._find_project()
        if found is None:
            response = self._client.raw("POST", "/api/projects",
                                        json={"title": self.name, "label_config": labeling_config(self._labels)})
            if response.status_code == 400 and "already exists" in response.text:
                found = self._find_project()
            else:
                found = self._client.check(response, "projects")
                log.info("created the Label Studio project %r (id %s)", self.name, found.get("id"))
        if found is None:
            raise PermanentError(f"the Label Studio project {self.name!r} could be neither found nor created")
        try:
            interface = LabelingInterface.parse(found["label_config"])
        except ValueError as error:
            raise PermanentError(f"project {self.name!r}: {error}") from None
        self._project = Project(int(found["id"]), interface)
        return self._project

    def _find_project(self) -> dict[str, Any] | None:
        page = 1
        while True:  # the title filter matches substrings: keep the exact title, the oldest project first
            answer = self._client.request("GET", "/api/projects", "projects", params={
                "title": self.name, "include": "id,title,label_config", "page": page, "page_size": 100})
            exact = [p for p in answer.get("results", []) if p.get("title") == self.name]
            if exact:
                return min(exact, key=lambda p: p["id"])
            if not answer.get("next"):
                return None
            page += 1

    def _task_exists(self, project: Project, datapoint_id: str) -> bool:
        item = {"filter": "filter:tasks:data.datapoint_id", "operator": "equal", "type": "String",
                "value": datapoint_id}
        query = {"filters": {"conjunction": "and", "items": [item]}}
        answer = self._client.request("GET", "/api/tasks", "tasks", params={
            "project": project.id, "query": json.dumps(query), "page_size": 1, "fields": "task_only"})
        return bool(answer.get("tasks"))


class _Client:
    """Label Studio's API with either kind of key; errors become outbox outcomes (`framesift.http_answers`)."""

    def __init__(self, http: Any, url: str, api_key: str, timeout: float):
        import requests

        self._base = url.rstrip("/")
        self._key = api_key
        self._personal = api_key.count(".") == 2 and api_key.startswith("eyJ")  # a personal access token (JWT)
        self._access: str | None = None
        self._timeout = timeout
        # Over plain HTTP (`label-studio start` on the LAN), one connection per request (`requests.request` opens
        # and closes its own): Django's development server writes headers and body in two packets, so on a reused
        # connection every answer waits for the client's delayed ACK (52 ms instead of 11 ms per request, measured
        # here). Over HTTPS the session keeps its connections.
        self._http = http if urlsplit(url).scheme == "https" else requests

    def request(self, method: str, path: str, what: str, **kwargs: Any) -> Any:
        return self.check(self.raw(method, path, **kwargs), what)

    def raw(self, method: str, path: str, **kwargs: Any) -> Any:
        """The response as it came, after renewing an expired access token once."""
        response = self._send(method, path, **kwargs)
        if response.status_code == 401 and self._personal:
            self._access = None
            response = self._send(method, path, **kwargs)
        return response

    def check(self, response: Any, what: str) -> Any:
        return check(response, what, secrets=[self._key, self._access or ""])

    def media_url(self, stored: str) -> str:
        """The URL a task uses for a file the server stored (`upload/1/ab12-x.jpg` → `/data/upload/1/ab12-x.jpg`,
        under the server's path prefix, if any)."""
        if "://" in stored:
            return stored
        return f"{urlsplit(self._base).path.rstrip('/')}/data/{stored.lstrip('/')}"

    def _send(self, method: str, path: str, **kwargs: Any) -> Any:
        headers = {"Authorization": self._authorization()}
        return send(self._http, method, self._base + path, server=self._base, headers=headers,
                    timeout=self._timeout, **kwargs)

    def _authorization(self) -> str:
        if not self._personal:
            return f"Token {self._key}"
        if self._access is None:
            response = send(self._http, "POST", self._base + "/api/token/refresh/", server=self._base,
                            json={"refresh": self._key}, timeout=self._timeout)
            if response.status_code == 401:
                raise PermanentError("Label Studio refused the personal access token (HTTP 401 from token/refresh)")
            self._access = check(response, "token/refresh", secrets=[self._key]).get("access")
            if not self._access:
                raise PermanentError("Label Studio's token/refresh answered without an access token")
        return f"Bearer {self._access}"

