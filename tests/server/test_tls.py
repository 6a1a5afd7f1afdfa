"""HTTPS for off-loopback use: ``--tls-cert``/``--tls-key`` serve TLS with a certificate made here
by the ``openssl`` CLI, checked by ``requests`` with that certificate as its only CA; a plain-HTTP
or unverified client gets nothing; a half or broken pair is a clear start-up error."""

from __future__ import annotations

import shutil
import ssl
import subprocess
import sys

import pytest
import requests
from server_helpers import ROOT, Server

TOKEN = "tls-test-token-0123456789"

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl CLI")


@pytest.fixture(scope="module")
def cert(tmp_path_factory):
    d = tmp_path_factory.mktemp("tls")
    cmd = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1"]
    cmd += ["-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"]
    subprocess.run([*cmd, "-keyout", str(d / "key.pem"), "-out", str(d / "cert.pem")], check=True, capture_output=True)
    return d / "cert.pem", d / "key.pem"


def test_https_with_a_self_signed_certificate(tmp_path, cert):
    crt, key = cert
    srv = Server(tmp_path / "jobs", ["--tls-cert", str(crt), "--tls-key", str(key)], env={"PARASCALE_TOKEN": TOKEN})
    srv.scheme, srv.verify = "https", ssl.create_default_context(cafile=str(crt))
    srv.start(headers={"Authorization": f"Bearer {TOKEN}"})
    try:
        auth = {"Authorization": f"Bearer {TOKEN}"}
        with requests.Session() as s:
            r = s.get(srv.url + "/v1/health", headers=auth, verify=str(crt), timeout=10)
            assert r.status_code == 200 and r.json()["status"] == "ok", r.text
            assert s.get(srv.url + "/v1/health", verify=str(crt), timeout=10).status_code == 401, "token still needed"
            with pytest.raises(requests.exceptions.SSLError):
                s.get(srv.url + "/v1/health", headers=auth, timeout=10)  # the system CAs do not know it
            with pytest.raises(requests.exceptions.ConnectionError):
                s.get(f"http://127.0.0.1:{srv.port}/v1/health", headers=auth, timeout=10)  # no plain HTTP
    finally:
        srv.stop()


@pytest.mark.parametrize("case", ["cert-only", "swapped", "missing"])
def test_a_half_or_broken_tls_pair_is_a_clear_error(tmp_path, cert, case):
    crt, key = cert
    args = {
        "cert-only": ["--tls-cert", str(crt)],
        "swapped": ["--tls-cert", str(key), "--tls-key", str(crt)],
        "missing": ["--tls-cert", str(tmp_path / "none.pem"), "--tls-key", str(key)],
    }[case]
    cmd = [sys.executable, "-m", "bridge_server", "--port", "1", "--jobs-dir", str(tmp_path / "j"), *args]
    p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert p.returncode == 2, p.stderr
    assert "--tls-cert" in p.stderr and "Traceback" not in p.stderr, p.stderr
