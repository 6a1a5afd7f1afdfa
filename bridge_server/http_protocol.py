"""uvicorn's h11 protocol with a deadline for a request's head: a connection that has not sent a whole
request line and headers within :attr:`HeadDeadlineH11.head_timeout` seconds of opening is closed.

uvicorn times idle connections out only after a response (its keep-alive timeout): 1,074 connections
that never send a byte held a server under a 1024-descriptor limit until it refused everyone, and a
request head dripped byte by byte held a connection as long as the client wished. Later requests on
a kept-alive connection fall under the keep-alive timeout as before."""

from __future__ import annotations

from uvicorn.protocols.http.h11_impl import H11Protocol


class HeadDeadlineH11(H11Protocol):
    head_timeout = 10.0  # seconds; set from --header-timeout before the server starts

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._head_deadline = self.loop.call_later(self.head_timeout, self._head_late)

    def _head_late(self) -> None:
        if self.cycle is None and not self.transport.is_closing():  # no request has started on it
            self.transport.close()

    def connection_lost(self, exc) -> None:
        self._head_deadline.cancel()
        super().connection_lost(exc)
