"""JupyterLab starts offline from the project's environment and offers the project's kernel.

Starts ``.venv/bin/jupyter-lab`` (the one beside the running Python) on 127.0.0.1 and a free port,
with a token and throw-away Jupyter config/data/runtime folders, talks to its REST API, starts and
stops a ``vssl-companion`` kernel, and always kills the server. Bounded: about three minutes at most.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
KERNEL = "vssl-companion"  # installed into .venv by scripts/bootstrap.sh
START_TIMEOUT_S = 60.0
# A fresh CI machine imports torch (through vssl_helpers) from a cold page cache while the server is
# busy: 20 s was too short there once. The bound only guards against a hang.
KERNEL_TIMEOUT_S = 120.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Lab:
    def __init__(self, base: str, token: str, proc: subprocess.Popen[bytes], log: Path) -> None:
        self.base, self.token, self.proc, self.log = base, token, proc, log

    def request(self, method: str, path: str, body: object | None = None, timeout: float = 5.0) -> tuple[int, bytes]:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method)
        req.add_header("Authorization", f"token {self.token}")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def json(self, method: str, path: str, body: object | None = None) -> object:
        status, payload = self.request(method, path, body)
        assert 200 <= status < 300, f"{method} {self.base}{path}: HTTP {status}: {payload[:300]!r}\n{self.tail()}"
        return json.loads(payload) if payload else None

    def tail(self) -> str:
        return "server log (last lines):\n" + "\n".join(self.log.read_text(errors="replace").splitlines()[-25:])


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    exe = Path(sys.executable).parent / "jupyter-lab"
    if not exe.is_file():
        pytest.fail(f"{exe} not found: JupyterLab is in requirements.txt, run scripts/bootstrap.sh")
    tmp = tmp_path_factory.mktemp("jupyter")
    env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(tmp / "config"),
        "JUPYTER_DATA_DIR": str(tmp / "data"),  # only the venv's kernels (sys.prefix/share/jupyter) count
        "JUPYTER_RUNTIME_DIR": str(tmp / "runtime"),
        "JUPYTERLAB_SETTINGS_DIR": str(tmp / "lab-settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(tmp / "lab-workspaces"),
        "IPYTHONDIR": str(tmp / "ipython"),
        "JUPYTER_PLATFORM_DIRS": "0",
        # offline: anything that tries the network fails at once instead of waiting
        "HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9", "NO_PROXY": "127.0.0.1,localhost",
    }
    port, token = _free_port(), secrets.token_hex(16)
    log = tmp / "lab.log"
    cmd = [
        str(exe), "--no-browser", f"--port={port}", "--ServerApp.port_retries=0", "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.token={token}", f"--ServerApp.root_dir={ROOT}",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        "--LabApp.news_url=None",  # no announcements feed from the internet
    ]
    if os.geteuid() == 0:  # CI containers and these machines run as root
        cmd.append("--allow-root")
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    server = Lab(f"http://127.0.0.1:{port}", token, proc, log)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"jupyter lab exited with code {proc.returncode} while starting: {' '.join(cmd)}\n{server.tail()}")
            try:
                if server.request("GET", "/api/status", timeout=2)[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"jupyter lab did not answer /api/status within {START_TIMEOUT_S:.0f} s\n{server.tail()}")
            time.sleep(0.5)
        yield server
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)  # its own session: the server and any kernels it started
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)


def test_lab_serves_offline_with_token(lab: Lab) -> None:
    status = lab.json("GET", "/api/status")
    assert isinstance(status, dict) and "started" in status, status
    code, _ = lab.request("GET", "/lab")
    assert code == 200, f"GET {lab.base}/lab: HTTP {code}\n{lab.tail()}"
    anonymous = urllib.request.Request(lab.base + "/api/kernelspecs")
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(anonymous, timeout=5)
    assert info.value.code == 403, f"{lab.base}/api/kernelspecs answered without the token: {info.value.code}"


def test_project_kernel_is_offered(lab: Lab) -> None:
    specs = lab.json("GET", "/api/kernelspecs")
    assert isinstance(specs, dict)
    names = sorted(specs["kernelspecs"])
    assert KERNEL in names, f"kernelspec {KERNEL!r} missing from {lab.base}/api/kernelspecs: {names} (scripts/bootstrap.sh installs it)"
    argv = specs["kernelspecs"][KERNEL]["spec"]["argv"]
    assert Path(argv[0]).parent == Path(sys.executable).parent, f"{KERNEL} runs {argv[0]}, not the project's venv"


def _execute_over_websocket(lab: Lab, kernel_id: str, code: str, timeout: float) -> str:
    """Run ``code`` in the kernel through the server's websocket (as JupyterLab does); return its
    stdout. Fails with the kernel's error when the code raises."""
    import asyncio
    import uuid

    from tornado.httpclient import HTTPRequest
    from tornado.websocket import websocket_connect

    async def run() -> str:
        url = lab.base.replace("http://", "ws://") + f"/api/kernels/{kernel_id}/channels?token={lab.token}"
        conn = await websocket_connect(HTTPRequest(url, connect_timeout=timeout), ping_interval=None)
        msg_id = uuid.uuid4().hex
        conn.write_message(json.dumps({
            "header": {"msg_id": msg_id, "msg_type": "execute_request", "username": "test",
                       "session": uuid.uuid4().hex, "version": "5.3", "date": ""},
            "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
            "content": {"code": code, "silent": False, "store_history": False, "user_expressions": {},
                        "allow_stdin": False, "stop_on_error": True},
        }))
        out: list[str] = []
        reply = None
        idle = False
        try:
            # The reply comes on the shell channel and "idle" on iopub: two sockets, so either may
            # reach the websocket first. Wait for both (waiting for idle *after* the reply once
            # hung until the timeout when idle came first).
            while reply is None or not idle:
                raw = await conn.read_message()
                assert raw is not None, "kernel websocket closed"
                msg = json.loads(raw)
                if msg.get("parent_header", {}).get("msg_id") != msg_id:
                    continue
                kind = msg["header"]["msg_type"]
                if kind == "stream":
                    out.append(msg["content"]["text"])
                elif kind == "error":
                    out.append(f"{msg['content']['ename']}: {msg['content']['evalue']}")
                elif kind == "execute_reply":
                    reply = msg["content"]
                elif kind == "status" and msg["content"]["execution_state"] == "idle":
                    idle = True
        finally:
            conn.close()
        assert reply["status"] == "ok", f"kernel {kernel_id}: {code!r} failed: {''.join(out)}"
        return "".join(out)

    try:
        return asyncio.run(asyncio.wait_for(run(), timeout))
    except TimeoutError:
        pytest.fail(f"kernel {kernel_id}: no reply to {code!r} within {timeout:.0f} s\n{lab.tail()}")


def test_project_kernel_starts_runs_and_stops(lab: Lab) -> None:
    kernel = lab.json("POST", "/api/kernels", {"name": KERNEL})
    assert isinstance(kernel, dict) and kernel["name"] == KERNEL, kernel
    kid = kernel["id"]
    try:
        printed = _execute_over_websocket(
            lab, kid, "import sys, vssl_helpers; print(sys.executable)", timeout=KERNEL_TIMEOUT_S
        )
        assert Path(printed.strip()).parent == Path(sys.executable).parent, (
            f"kernel {KERNEL} runs {printed.strip()!r}, not the project's venv python"
        )
    finally:
        code, payload = lab.request("DELETE", f"/api/kernels/{kid}", timeout=10)
    assert code == 204, f"DELETE {lab.base}/api/kernels/{kid}: HTTP {code} {payload[:200]!r}"
    remaining = lab.json("GET", "/api/kernels")
    assert isinstance(remaining, list) and all(k["id"] != kid for k in remaining), remaining
