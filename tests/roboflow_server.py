"""A local HTTP server implementing the two documented Roboflow endpoints framesift uses, for the tests.

- `POST /dataset/{dataset}/upload?api_key=K&batch=B&tag=T...` (multipart: file, name) → `{"success": true,
  "id": ...}`, or `{"duplicate": true, "id": ...}` for a name it already holds (as Roboflow answers a duplicate);
- `POST /dataset/{dataset}/annotate/{image_id}?api_key=K&name=N&prediction=true` → `{"success": true}`; an image
  holds one annotation, and annotating it again answers 409 "Image already annotated." (unless `overwrite=true`),
  as Roboflow does;
- `GET /{workspace}/{project}/active_learning?api_key=K` → `{"config": {...}}` (404 when none was set), and `POST`
  of `{"config": {...}}` to the same path sets it (stored as given: the API does not validate it).

It records every request and can misbehave on purpose: `mode` "ok", "flaky" (every other request answers 503),
"drop" (processes every request, and closes the connection without answering every other one), "html" (a captive
portal's page, HTTP 200 text/html, in place of every answer), or a fixed HTTP status (401, 413, or 429 and 503 with
`retry_after`).
"""

from __future__ import annotations

import email
import email.policy
import json
import threading
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


@dataclass
class Upload:
    dataset: str
    name: str
    batch: str
    tags: list[str]
    image: bytes


@dataclass
class FakeRoboflow:
    port: int
    api_key: str = "secret-key-123"
    mode: str | int = "ok"
    retry_after: str = "0"  # the Retry-After of "flaky" 503s and of a fixed 429 or 503
    uploads: dict[str, Upload] = field(default_factory=dict)  # image id -> upload
    annotations: dict[str, tuple[str, dict]] = field(default_factory=dict)  # image id -> (name, body)
    annotate_requests: int = 0
    requests: list[str] = field(default_factory=list)
    configs: dict[str, dict] = field(default_factory=dict)  # "workspace/project" -> its active-learning config
    _server: ThreadingHTTPServer | None = None
    _count: int = 0
    _processed: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_POST(self):  # noqa: N802 - the http.server API
                fake.handle(self)

            def do_GET(self):  # noqa: N802 - the http.server API
                fake.handle(self)

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def names(self) -> list[str]:
        return sorted(u.name for u in self.uploads.values())

    def handle(self, request: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(request.path)
        query = parse_qs(parts.query)
        body = request.rfile.read(int(request.headers.get("Content-Length", 0)))
        with self._lock:
            self.requests.append(request.path)
            self._count += 1
            flaky_fail = self.mode == "flaky" and self._count % 2 == 0
        if self.mode == "html":  # a captive portal (or a proxy) answering in the API's place
            page = b"<html><body>Please sign in to the guest Wi-Fi</body></html>"
            request.send_response(200)
            request.send_header("Content-Type", "text/html; charset=utf-8")
            request.send_header("Content-Length", str(len(page)))
            request.end_headers()
            request.wfile.write(page)
            return None
        if isinstance(self.mode, int):
            headers = {"Retry-After": self.retry_after} if self.mode in (429, 503) else {}
            return self._answer(request, self.mode, {"error": {"message": "refused on purpose"}}, headers)
        if flaky_fail:
            return self._answer(request, 503, {"error": "try later"}, {"Retry-After": self.retry_after})
        if query.get("api_key") != [self.api_key]:
            return self._answer(request, 401, {"error": "bad api key"})
        segments = parts.path.strip("/").split("/")
        if len(segments) == 3 and segments[2] == "active_learning":
            return self._configuration(request, "/".join(segments[:2]), body)
        if len(segments) == 3 and segments[0] == "dataset" and segments[2] == "upload":
            answer = self._upload(segments[1], query, request.headers["Content-Type"], body)
        elif len(segments) == 4 and segments[0] == "dataset" and segments[2] == "annotate":
            with self._lock:
                self.annotate_requests += 1
                if segments[3] not in self.uploads:
                    return self._answer(request, 404, {"error": {"message": "no such image"}})
                if segments[3] in self.annotations and query.get("overwrite") != ["true"]:
                    return self._answer(request, 409, {"error": {"message": "Image already annotated."}})
                self.annotations[segments[3]] = (query["name"][0], json.loads(body))
            answer = {"success": True}
        else:
            return self._answer(request, 404, {"error": "no such endpoint"})
        with self._lock:
            self._processed += 1
            lost = self.mode == "drop" and self._processed % 2 == 1
        if lost:  # processed, but the reply is lost
            request.close_connection = True
            request.connection.close()
            return
        self._answer(request, 200, answer)

    def _configuration(self, request: BaseHTTPRequestHandler, project: str, body: bytes) -> None:
        with self._lock:
            if request.command == "POST":
                self.configs[project] = json.loads(body)["config"]
            elif project not in self.configs:
                return self._answer(request, 404, {"error": {"message": "no active learning configuration"}})
            return self._answer(request, 200, {"config": self.configs[project]})

    def _upload(self, dataset: str, query: dict[str, list[str]], content_type: str, body: bytes) -> dict:
        message = email.message_from_bytes(f"Content-Type: {content_type}\r\n\r\n".encode() + body,
                                           policy=email.policy.default)
        fields: dict[str, list] = {}
        for part in message.iter_parts():
            fields.setdefault(part.get_param("name", header="content-disposition"), []).append(
                part.get_payload(decode=True))
        name = fields["name"][0].decode()
        with self._lock:
            for image_id, upload in self.uploads.items():
                if upload.name == name:
                    return {"duplicate": True, "id": image_id}
            image_id = uuid.uuid4().hex[:12]
            self.uploads[image_id] = Upload(dataset, name, query["batch"][0], query.get("tag", []),
                                            fields["file"][0])
        return {"success": True, "id": image_id}

    @staticmethod
    def _answer(request: BaseHTTPRequestHandler, status: int, body: dict, headers: dict | None = None) -> None:
        payload = json.dumps(body).encode()
        request.send_response(status)
        for key, value in {"Content-Type": "application/json", **(headers or {})}.items():
            request.send_header(key, value)
        request.send_header("Content-Length", str(len(payload)))
        request.end_headers()
        request.wfile.write(payload)
