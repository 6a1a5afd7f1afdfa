"""A web page must not drive the loopback server: Host allow-list (DNS rebinding), Origin check
(cross-origin browser requests), and the token from the environment or a file."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from server_helpers import Server, plane_scene, submit, wait_finished

EVIL = "http://evil.example"


def _browser_form_post(http: httpx.Client, url: str, origin: str) -> httpx.Response:
    """The multipart POST a browser sends for a cross-site <form enctype=multipart/form-data>."""
    headers = {
        "Origin": origin,
        "Referer": origin + "/attack.html",
        "Sec-Fetch-Site": "cross-site",
        "Sec-Fetch-Mode": "navigate",
        "User-Agent": "Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/128.0",
    }
    return http.post(url + "/v1/jobs", files=plane_scene(64, 40, 3).files(), data={"backend": "warp"}, headers=headers)


def test_foreign_host_and_cross_origin_requests_are_refused(server, http):
    job = submit(http, server.url, plane_scene(64, 40, 3)).json()["id"]
    assert wait_finished(http, server.url, job)["state"] == "done"
    rebound = {"Host": f"rebind.evil.example:{server.port}"}  # what DNS rebinding makes a browser send
    for method, path in (
        ("GET", "/v1/jobs"),
        ("GET", f"/v1/jobs/{job}/result"),
        ("POST", f"/v1/jobs/{job}/cancel"),
        ("GET", "/openapi.json"),
    ):
        r = http.request(method, server.url + path, headers=rebound)
        assert r.status_code == 403 and "Host" in r.json()["error"], (path, r.text)
    for bad in ("127.0.0.1@evil.example", "", "localhost:x"):
        assert http.get(server.url + "/v1/health", headers={"Host": bad}).status_code == 403, bad
    before = len(http.get(server.url + "/v1/jobs").json()["jobs"])
    r = _browser_form_post(http, server.url, EVIL)
    assert r.status_code == 403 and "cross-origin" in r.json()["error"], r.text
    assert http.get(server.url + "/v1/jobs", headers={"Origin": "null"}).status_code == 403
    assert len(http.get(server.url + "/v1/jobs").json()["jobs"]) == before, "no job was created"
    # Loopback names and the server's own origin (its /docs page) are served.
    for host in (f"localhost:{server.port}", f"127.0.0.1:{server.port}", "localhost"):
        assert http.get(server.url + "/v1/health", headers={"Host": host}).status_code == 200, host
    assert _browser_form_post(http, server.url, f"http://localhost:{server.port}").status_code == 201


def test_allowed_origin_and_host_are_configurable(tmp_path):
    srv = Server(tmp_path / "jobs", ["--allow-origin", "https://studio.example", "--allow-host", "render-box"]).start()
    try:
        with httpx.Client(timeout=30) as http:
            assert _browser_form_post(http, srv.url, "https://studio.example").status_code == 201
            assert _browser_form_post(http, srv.url, EVIL).status_code == 403
            assert http.get(srv.url + "/v1/health", headers={"Host": "render-box:1"}).status_code == 200
    finally:
        srv.stop()


@pytest.mark.parametrize("how", ["env", "file"])
def test_token_from_the_environment_or_a_file_stays_out_of_the_process_list(tmp_path, how):
    token = "per-install-token-0123456789"
    if how == "env":
        srv = Server(tmp_path / "jobs", env={"PARASCALE_TOKEN": token})
    else:
        (tmp_path / "token").write_text(token + "\n")
        srv = Server(tmp_path / "jobs", ["--token-file", str(tmp_path / "token")], env={"PARASCALE_TOKEN": ""})
    srv.start()
    try:
        cmdline = Path(f"/proc/{srv.proc.pid}/cmdline").read_bytes()
        assert token.encode() not in cmdline
        with httpx.Client(timeout=30) as http:
            assert http.get(srv.url + "/v1/health").status_code == 401
            assert (
                http.get(srv.url + "/v1/health", headers={"Authorization": "Bearer wrong-token-xx"}).status_code == 401
            )
            ok = http.get(srv.url + "/v1/health", headers={"Authorization": f"Bearer {token}"})
            assert ok.status_code == 200 and ok.json()["status"] == "ok"
    finally:
        srv.stop()


def test_unreadable_token_file_is_a_clear_error(tmp_path):
    srv = Server(tmp_path / "jobs", ["--token-file", str(tmp_path / "missing")])
    t0 = time.monotonic()
    with pytest.raises(RuntimeError, match=r"--token-file: cannot read .*missing"):
        srv.start()
    assert srv.proc.returncode == 2 and time.monotonic() - t0 < 30
