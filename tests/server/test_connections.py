"""Idle connections cannot stop the server (issue 24): under a 256-descriptor limit, 400 connections
that never send a byte are closed after the head deadline (``--header-timeout``) and the server
answers again; a dripped request head is cut at the deadline. Real server process, real sockets."""

from __future__ import annotations

import resource
import socket
import time

import httpx
from server_helpers import Server


def _few_descriptors():
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))


def test_idle_connections_are_closed_and_the_server_answers_again(tmp_path):
    srv = Server(tmp_path / "jobs", ["--header-timeout", "1"], preexec=_few_descriptors).start()
    socks = []
    try:
        for _ in range(400):
            s = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
            socks.append(s)
        t0 = time.monotonic()
        r = httpx.get(srv.url + "/v1/health", timeout=30)
        assert r.status_code == 200, r.text
        waited = time.monotonic() - t0
        socks[0].settimeout(5)
        assert socks[0].recv(16) == b"", "the idle connection was closed by the server"
        print(f"health answered {waited:.1f} s after 400 idle connections")
        assert waited < 15
    finally:
        for s in socks:
            s.close()
        srv.stop()


def test_a_dripped_request_head_is_cut_at_the_deadline(tmp_path):
    srv = Server(tmp_path / "jobs", ["--header-timeout", "1"]).start()
    try:
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
        t0 = time.monotonic()
        closed = False
        for byte in b"GET /v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 100:
            try:
                s.sendall(bytes([byte]))
            except OSError:
                closed = True
                break
            time.sleep(0.05)
            if time.monotonic() - t0 > 3:
                break
        s.settimeout(5)
        try:
            closed = closed or s.recv(16) == b""
        except OSError:
            closed = True
        assert closed and time.monotonic() - t0 < 4, "the dripping connection was not closed"
        s.close()
    finally:
        srv.stop()
