#!/usr/bin/env python3
"""A loopback TCP proxy that adds a fixed one-way delay, to simulate distance.

    delayproxy.py --delay 0.025 [--log FILE] LISTEN_PORT:TARGET_PORT [...]

Listens on 127.0.0.1:LISTEN_PORT and relays every connection to
127.0.0.1:TARGET_PORT. Each chunk read from one side is written to the other
side DELAY seconds after it was read, in both directions: 25 ms each way is a
50 ms round trip.

Delay-line semantics, not stop-and-wait: reading never waits for earlier
chunks to be delivered, any number of chunks can be "on the wire" at once, and
order is kept per direction (one FIFO and one timer per direction). So the
proxy adds latency but does not limit throughput (there is no window: data in
flight sits in the proxy's memory). End of stream (a half close) travels with
the same delay. TCP_NODELAY is set on both legs (asyncio's default for TCP), so
Nagle's algorithm does not add delays of its own.

The TCP handshake with the proxy is local and instant, so to charge every
connection its real-world connect round trip the first chunk of a
connection (whichever side speaks first) is held one extra round trip.

Round trips are counted per connection: a "turn" is a chunk from the client
that arrives while nothing is in flight in either direction and after the
client has heard from the server since its previous chunk (or the very first
chunk): the client spoke into an empty pipe, i.e. it had waited for an answer.
A pipelining client that keeps requests in flight while responses stream back
adds no turns. With --log, one JSON line per connection is appended when the
client side closes: listen port, turns, bytes each way, open and close times.

Prints "ready" on stdout once every listener is up; runs until killed.
"""

import argparse
import asyncio
import collections
import json
import socket
import sys
import time

READ_SIZE = 256 * 1024


class Direction:
    """One direction of a connection: a FIFO of (due, bytes or None=EOF)."""

    def __init__(self, loop, delay, conn):
        self.loop = loop
        self.delay = delay
        self.conn = conn
        self.queue = collections.deque()
        self.timer = None
        self.out = None  # the transport we write to
        self.closed = False
        self.on_deliver = None

    def push(self, data):
        extra = 0.0
        if not self.conn.started:
            self.conn.started = True
            extra = 2 * self.delay  # the connect round trip the local handshake did not cost
        self.queue.append((self.loop.time() + self.delay + extra, data))
        if self.timer is None:
            self.timer = self.loop.call_at(self.queue[0][0], self._flush)

    def _flush(self):
        self.timer = None
        now = self.loop.time()
        while self.queue and self.queue[0][0] <= now:
            _, data = self.queue.popleft()
            if self.out is None or self.closed:
                continue
            if data is None:
                try:
                    if self.out.can_write_eof():
                        self.out.write_eof()
                    else:
                        self.out.close()
                except OSError:
                    pass
                self.conn.eof_delivered(self)
            elif data is CLOSE:
                self.out.close()
                self.closed = True
            else:
                self.out.write(data)
                if self.on_deliver:
                    self.on_deliver()
        if self.queue:
            self.timer = self.loop.call_at(self.queue[0][0], self._flush)


CLOSE = object()


class Side(asyncio.Protocol):
    """One leg's protocol: what it reads goes into `forward`."""

    def __init__(self, forward, on_lost=None):
        self.forward = forward
        self.on_lost = on_lost
        self.transport = None

    def connection_made(self, transport):
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass

    def data_received(self, data):
        self.forward.push(data)
        self.forward.conn.bytes(self.forward, len(data))

    def eof_received(self):
        self.forward.push(None)
        if self.forward is self.forward.conn.up:
            self.forward.conn.log()  # the client is done: its round trips are known
        return True  # keep the other direction open (half close)

    def connection_lost(self, exc):
        self.forward.push(CLOSE)
        if self.on_lost:
            self.on_lost()


class Conn:
    """Per connection bookkeeping: round trips and bytes."""

    def __init__(self, loop, delay, listen_port, logf):
        self.loop = loop
        self.started = False
        self.listen_port = listen_port
        self.logf = logf
        self.up = Direction(loop, delay, self)     # client -> server
        self.down = Direction(loop, delay, self)   # server -> client
        self.down.on_deliver = self._heard
        self.heard = True  # the first chunk counts
        self.turns = 0
        self.nbytes = {"up": 0, "down": 0}
        self.t0 = loop.time()
        self.logged = False

    def eof_delivered(self, direction):
        direction.eof = True
        if getattr(self.up, "eof", False) and getattr(self.down, "eof", False):
            # both sides have said they are done: nothing more can flow
            for d in (self.up, self.down):
                if d.out is not None:
                    d.out.close()
            self.log()

    def _heard(self):
        self.heard = True

    def bytes(self, direction, n):
        if direction is self.up:
            # called after push(): the chunk itself is in the queue
            if len(self.up.queue) == 1 and not self.down.queue and self.heard:
                self.turns += 1
            self.heard = False
            self.nbytes["up"] += n
        else:
            self.nbytes["down"] += n

    def log(self):
        if self.logged or self.logf is None:
            return
        self.logged = True
        self.logf.write(json.dumps({"listen": self.listen_port, "turns": self.turns,
                                    "up": self.nbytes["up"], "down": self.nbytes["down"],
                                    "seconds": round(self.loop.time() - self.t0, 4),
                                    "closed": time.time()}) + "\n")
        self.logf.flush()


class Client(Side):
    """The accepted side: opens the upstream connection."""

    def __init__(self, loop, delay, listen_port, target_port, logf):
        self.loop = loop
        self.conn = Conn(loop, delay, listen_port, logf)
        self.up, self.down = self.conn.up, self.conn.down
        super().__init__(self.up, on_lost=self.conn.log)
        self.target_port = target_port

    def connection_made(self, transport):
        super().connection_made(transport)
        self.down.out = transport
        transport.pause_reading()
        self.loop.create_task(self._connect())

    async def _connect(self):
        try:
            _, server = await self.loop.create_connection(
                lambda: Side(self.down), "127.0.0.1", self.target_port)
        except OSError as e:
            print("delayproxy: connect to %d: %s" % (self.target_port, e), file=sys.stderr)
            self.transport.close()
            return
        self.up.out = server.transport
        self.transport.resume_reading()


async def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--delay", type=float, required=True, help="one-way delay in seconds")
    ap.add_argument("--log", help="append one JSON line per connection to this file")
    ap.add_argument("mapping", nargs="+", help="LISTEN_PORT:TARGET_PORT")
    a = ap.parse_args()
    loop = asyncio.get_running_loop()
    logf = open(a.log, "a") if a.log else None
    servers = []
    for m in a.mapping:
        lport, tport = (int(x) for x in m.split(":"))
        servers.append(await loop.create_server(
            lambda lport=lport, tport=tport: Client(loop, a.delay, lport, tport, logf), "127.0.0.1", lport,
            reuse_address=True, backlog=128))
    print("ready", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
