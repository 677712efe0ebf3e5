#!/usr/bin/python3
"""countproxy: a counting TCP proxy in front of the test peer, the referee of mongosup's budget tests.

Run with /usr/bin/python3 (asyncio, and the bson module of python3-pymongo
that the peer needs anyway).  Started by tests/peer/peer.c
(test_peer_start_proxy) with the peer's own command line plus
--upstream PORT; it listens on 127.0.0.1 (port 0 or --ports) and forwards
every connection to 127.0.0.1:PORT.

It records every connection: its accept and close times, the client's
appname (the first hello's client.application.name), its first commands,
and when the first reply went back (the end of the connection's
handshake).  A connection whose upstream refuses is "refused", never
counted open (a server that is down).

A connection is an application connection when it ever sends a command
other than hello/isMaster; a connection that only says hello is a monitor
(or died in its handshake).  An application connection that was set up
under one of mongosup's handshake slots sends `ping` (or, from a pool being
destroyed, `endSessions`) first after its hello: any other first command is
counted as a bypass (a client that reached the application unconnected).

Control protocol, as the peer's (line-based JSON):
  * first stdout line:  READY {"ports":[p],"mode":"standalone","proxy":true}
  * one request line on stdin -> one reply line on stdout
  * EOF on stdin -> exit at once.
Requests:
  {"cmd":"ping"}
  {"cmd":"delay_first_reply","ms":100}   the first reply of each new connection waits ms
  {"cmd":"reset_stats"}                  forget closed connections; times count from now;
                                         high-water and handshake maxima restart from now
  {"cmd":"stats"} -> {"ok":true,
     "conn":{"current","max","total","refused"},
     "handshakes":{"app_max","all_max","app","monitor"}   (most in progress at once)
     "bypass":{"count","first"},                          (first: "hello,find" of one)
     "workers":{"count","open_min","open_max","first_app_max_ms","first_app_missing"}}
       (per appname: sockets open now; the latest first application connection,
        in ms since the reset; workers open now without one)
  {"cmd":"log"} -> {"ok":true,"conns":[{"app","accept","reply","close","cmds"}...]} (ms)
"""

import argparse
import asyncio
import json
import os
import struct
import sys
import threading
import time

import bson

HELLO = ('hello', 'ismaster')
SLOT_FIRST = ('ping', 'endsessions')
OP_QUERY, OP_MSG = 2004, 2013


def command_of(op, body):
    """(command name, document) of a request, or (None, None)."""
    try:
        if op == OP_MSG:
            off = 4  # flagBits
            while off < len(body):
                kind = body[off]
                off += 1
                size = struct.unpack_from('<i', body, off)[0]
                if kind == 0:
                    doc = bson.decode(bytes(body[off:off + size]))
                    return next(iter(doc)).lower(), doc
                off += size  # kind 1: a document sequence
        elif op == OP_QUERY:
            off = 4
            off = body.index(b'\0', off) + 1 + 8  # collection, skip, return
            size = struct.unpack_from('<i', body, off)[0]
            doc = bson.decode(bytes(body[off:off + size]))
            return next(iter(doc)).lower(), doc
    except Exception:
        pass
    return None, None


class Conn:
    def __init__(self, now):
        self.accept = now
        self.reply = None   # first reply sent back: the handshake is over
        self.close = None
        self.app = ''
        self.cmds = []

    def is_app(self):
        return any(c not in HELLO for c in self.cmds)

    def first_after_hello(self):
        for c in self.cmds:
            if c not in HELLO:
                return c
        return None


class Proxy:
    def __init__(self, upstream):
        self.upstream = upstream
        self.delay_ms = 0
        self.conns = []
        self.current = 0
        self.high = 0
        self.total = 0
        self.refused = 0
        self.t0 = time.monotonic()

    def now(self):
        return time.monotonic()

    async def serve(self, reader, writer):
        conn = Conn(self.now())
        try:
            up_reader, up_writer = await asyncio.open_connection('127.0.0.1', self.upstream)
        except OSError:
            self.refused += 1
            writer.close()
            return
        self.conns.append(conn)
        self.total += 1
        self.current += 1
        self.high = max(self.high, self.current)
        try:
            await asyncio.gather(self.pump_requests(reader, up_writer, conn),
                                 self.pump_replies(up_reader, writer, conn))
        finally:
            conn.close = self.now()
            self.current -= 1
            for w in (writer, up_writer):
                try:
                    w.close()
                except Exception:
                    pass

    async def pump_requests(self, reader, up_writer, conn):
        try:
            while True:
                header = await reader.readexactly(16)
                length, _, _, op = struct.unpack('<iiii', header)
                body = await reader.readexactly(length - 16)
                if len(conn.cmds) < 4:
                    name, doc = command_of(op, body)
                    if name is not None:
                        conn.cmds.append(name)
                        if name in HELLO and not conn.app:
                            conn.app = str(doc.get('client', {}).get('application', {}).get('name', ''))
                up_writer.write(header + body)
                await up_writer.drain()
        except (asyncio.IncompleteReadError, OSError, ValueError):
            pass
        finally:
            up_writer.close()

    async def pump_replies(self, up_reader, writer, conn):
        try:
            while True:
                header = await up_reader.readexactly(16)
                length = struct.unpack_from('<i', header)[0]
                body = await up_reader.readexactly(length - 16)
                if conn.reply is None and self.delay_ms:
                    await asyncio.sleep(self.delay_ms / 1000.0)
                writer.write(header + body)
                await writer.drain()
                if conn.reply is None:
                    conn.reply = self.now()
        except (asyncio.IncompleteReadError, OSError, ValueError):
            pass
        finally:
            writer.close()

    # ---- figures ----

    def most_at_once(self, conns, now):
        """Most handshakes in progress at once: accept .. first reply (or close)."""
        events = []
        for c in conns:
            end = c.reply if c.reply is not None else (c.close if c.close is not None else now)
            events.append((c.accept, 1))
            events.append((end, -1))
        events.sort(key=lambda e: (e[0], e[1]))  # an end before a start at the same instant
        cur = best = 0
        for _, d in events:
            cur += d
            best = max(best, cur)
        return best

    def stats(self):
        now = self.now()
        apps = [c for c in self.conns if c.is_app()]
        bypass = [c for c in apps if c.first_after_hello() not in SLOT_FIRST]
        open_per = {}
        first_app = {}
        for c in self.conns:
            if c.close is None and c.app:
                open_per[c.app] = open_per.get(c.app, 0) + 1
            if c.is_app() and c.app:
                first_app[c.app] = min(first_app.get(c.app, c.accept), c.accept)
        latest = max((t - self.t0 for a, t in first_app.items() if a in open_per), default=0)
        missing = len([a for a in open_per if a not in first_app])
        return {
            'ok': True,
            'conn': {'current': self.current, 'max': self.high, 'total': self.total, 'refused': self.refused},
            'handshakes': {'app_max': self.most_at_once(apps, now), 'all_max': self.most_at_once(self.conns, now),
                           'app': len(apps), 'monitor': len(self.conns) - len(apps)},
            'bypass': {'count': len(bypass), 'first': ','.join(bypass[0].cmds) if bypass else ''},
            'workers': {'count': len(open_per), 'open_min': min(open_per.values(), default=0),
                        'open_max': max(open_per.values(), default=0),
                        'first_app_max_ms': int(latest * 1000), 'first_app_missing': missing},
        }

    def log(self):
        ms = lambda t: None if t is None else round((t - self.t0) * 1000, 1)
        return {'ok': True, 'conns': [{'app': c.app, 'accept': ms(c.accept), 'reply': ms(c.reply),
                                       'close': ms(c.close), 'cmds': c.cmds} for c in self.conns]}

    def control(self, req):
        cmd = req.get('cmd')
        if cmd == 'ping':
            return {'ok': True}
        if cmd == 'delay_first_reply':
            self.delay_ms = int(req.get('ms', 0))
            return {'ok': True}
        if cmd == 'reset_stats':
            # Open connections stay (they are still open); their past is forgotten.
            self.conns = [c for c in self.conns if c.close is None]
            self.t0 = self.now()
            for c in self.conns:
                if c.reply is None:
                    c.accept = self.t0
            self.high = self.current
            self.total = 0
            self.refused = 0
            return {'ok': True}
        if cmd == 'stats':
            return self.stats()
        if cmd == 'log':
            return self.log()
        return {'ok': False, 'error': 'unknown cmd %r' % cmd}


def stdin_loop(loop, proxy):
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        try:
            req = json.loads(line)
            reply = asyncio.run_coroutine_threadsafe(answer(proxy, req), loop).result()
        except Exception as e:  # a bad request gets a reason, never a dead proxy
            reply = {'ok': False, 'error': str(e)}
        sys.stdout.write(json.dumps(reply) + '\n')
        sys.stdout.flush()
    os._exit(0)


async def answer(proxy, req):
    return proxy.control(req)


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--upstream', type=int, required=True)
    ap.add_argument('--ports', default='0')
    ap.add_argument('--mode', default='standalone')
    ap.add_argument('--members', type=int, default=1)
    args = ap.parse_args()
    proxy = Proxy(args.upstream)
    server = await asyncio.start_server(proxy.serve, '127.0.0.1', int(args.ports.split(',')[0]),
                                        reuse_address=True, backlog=1024)
    port = server.sockets[0].getsockname()[1]
    sys.stdout.write('READY ' + json.dumps({'ports': [port], 'mode': 'standalone', 'proxy': True}) + '\n')
    sys.stdout.flush()
    loop = asyncio.get_running_loop()
    threading.Thread(target=stdin_loop, args=(loop, proxy), daemon=True).start()
    async with server:
        await server.serve_forever()


if __name__ == '__main__':
    asyncio.run(main())
