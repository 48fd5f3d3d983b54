"""A small in-memory server that speaks the part of the Hugging Face Hub HTTP API that
``huggingface_hub`` and ``transformers`` use to create a repo, push files and download them.

No Hub server exists on PyPI that supports uploads offline (see ../shared/design/ecosystem.md
§2), so the tests bring this one. Every file is declared "regular" (not LFS), which makes the
client send contents inline in the commit; no git, LFS or xet storage is involved.

    hub = FakeHub().start()          # http://127.0.0.1:<free port>
    ...                              # point HF_ENDPOINT (or the patched constants) at hub.url
    hub.stop()
"""

from __future__ import annotations

import base64
import hashlib
import json
import socket
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response


def git_blob_sha(content: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


@dataclass
class Repo:
    files: dict[str, bytes] = field(default_factory=dict)
    sha: str = "0" * 40
    modified: datetime = field(default_factory=lambda: datetime.now(timezone.utc))

    def commit(self, message: str) -> str:
        digest = hashlib.sha1(message.encode() + self.sha.encode())
        for path in sorted(self.files):
            digest.update(path.encode() + git_blob_sha(self.files[path]).encode())
        self.sha, self.modified = digest.hexdigest(), datetime.now(timezone.utc)
        return self.sha


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers={"X-Error-Code": code,
                                                                         "X-Error-Message": message})


def build_app(repos: dict[str, Repo]) -> FastAPI:
    app = FastAPI()

    def repo_or_404(repo_id: str) -> Repo | JSONResponse:
        return repos.get(repo_id) or _error(404, "RepoNotFound", f"Repository {repo_id} not found")

    def revision_ok(repo: Repo, revision: str) -> bool:
        return revision in ("main", repo.sha)

    @app.post("/api/repos/create")
    async def create_repo(request: Request):
        body = await request.json()
        repo_id = f"{body['organization']}/{body['name']}" if body.get("organization") else body["name"]
        if repo_id in repos:
            return JSONResponse({"error": "You already created this model repo", "url": f"/{repo_id}"}, 409)
        repos[repo_id] = Repo()
        return {"url": f"{request.base_url}{repo_id}", "name": repo_id}

    @app.post("/api/validate-yaml")
    async def validate_yaml():
        return {"errors": [], "warnings": []}

    @app.post("/api/{kind}/{org}/{name}/preupload/{revision}")
    async def preupload(kind: str, org: str, name: str, revision: str, request: Request):
        repo = repo_or_404(f"{org}/{name}")
        if isinstance(repo, JSONResponse):
            return repo
        files = (await request.json()).get("files", [])
        return {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False,
                           "oid": git_blob_sha(repo.files[f["path"]]) if f["path"] in repo.files else None}
                          for f in files]}

    @app.post("/api/{kind}/{org}/{name}/commit/{revision}")
    async def commit(kind: str, org: str, name: str, revision: str, request: Request):
        repo = repo_or_404(f"{org}/{name}")
        if isinstance(repo, JSONResponse):
            return repo
        message = "commit"
        for line in (await request.body()).decode().splitlines():
            if not line.strip():
                continue
            entry = json.loads(line)
            value = entry.get("value", {})
            if entry["key"] == "header":
                message = value.get("summary", message)
            elif entry["key"] == "file":
                repo.files[value["path"]] = base64.b64decode(value["content"])
            elif entry["key"] == "deletedFile":
                repo.files.pop(value["path"], None)
            elif entry["key"] == "deletedFolder":
                prefix = value["path"].rstrip("/") + "/"
                for path in [p for p in repo.files if p.startswith(prefix)]:
                    del repo.files[path]
        sha = repo.commit(message)
        return {"commitUrl": f"{request.base_url}{org}/{name}/commit/{sha}", "commitOid": sha,
                "pullRequestUrl": None}

    @app.get("/api/{kind}/{org}/{name}")
    @app.get("/api/{kind}/{org}/{name}/revision/{revision}")
    async def info(kind: str, org: str, name: str, revision: str = "main"):
        repo = repo_or_404(f"{org}/{name}")
        if isinstance(repo, JSONResponse):
            return repo
        if not revision_ok(repo, revision):
            return _error(404, "RevisionNotFound", f"Revision {revision} not found")
        return {"id": f"{org}/{name}", "modelId": f"{org}/{name}", "sha": repo.sha, "private": False,
                "lastModified": repo.modified.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
                "siblings": [{"rfilename": path} for path in sorted(repo.files)], "tags": [], "downloads": 0}

    @app.get("/api/{kind}/{org}/{name}/tree/{revision}")
    @app.get("/api/{kind}/{org}/{name}/tree/{revision}/{path:path}")
    async def tree(kind: str, org: str, name: str, revision: str, path: str = ""):
        repo = repo_or_404(f"{org}/{name}")
        if isinstance(repo, JSONResponse):
            return repo
        prefix = path.rstrip("/") + "/" if path else ""
        return [{"type": "file", "path": p, "size": len(data), "oid": git_blob_sha(data)}
                for p, data in sorted(repo.files.items()) if p.startswith(prefix)]

    @app.api_route("/{org}/{name}/resolve/{revision}/{path:path}", methods=["GET", "HEAD"])
    async def resolve(org: str, name: str, revision: str, path: str, request: Request):
        repo = repo_or_404(f"{org}/{name}")
        if isinstance(repo, JSONResponse):
            return repo
        if not revision_ok(repo, revision):
            return _error(404, "RevisionNotFound", f"Revision {revision} not found")
        if path not in repo.files:
            return _error(404, "EntryNotFound", f"{path} does not exist in {org}/{name}")
        data = repo.files[path]
        headers = {"X-Repo-Commit": repo.sha, "ETag": f'"{git_blob_sha(data)}"', "Content-Length": str(len(data))}
        return Response(b"" if request.method == "HEAD" else data, headers=headers,
                        media_type="application/octet-stream")

    return app


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class FakeHub:
    """The server on a daemon thread, on 127.0.0.1 and a free port."""

    def __init__(self, port: int | None = None) -> None:
        self.repos: dict[str, Repo] = {}
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(build_app(self.repos), host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self, timeout: float = 10.0) -> FakeHub:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError(f"fake Hub did not start on {self.url}")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=5)


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="Run the fake Hub in the foreground.")
    parser.add_argument("--port", type=int, default=18080)
    hub = FakeHub(parser.parse_args().port)
    print(f"fake Hub on {hub.url}", flush=True)
    hub.server.run()
