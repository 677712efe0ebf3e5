#!/usr/bin/python3
"""mongopeer: a scriptable MongoDB peer for mongosup's integration tests.

Run with /usr/bin/python3 (Debian's python3-mockupdb).  It starts N MockupDB
servers on port 0 (or on the ports given) that act as a standalone mongod, a
replica set, or a set of mongos routers, and serve an in-memory data store
good enough for libmongoc's normal API.

Control protocol (line-based JSON):
  * first stdout line:  READY {"ports":[...],"mode":"rs","setName":"rs0",...}
  * then one request line on stdin -> one reply line on stdout,
    {"ok":true,...} or {"ok":false,"error":"..."}.
  * EOF on stdin -> the process exits at once (os._exit).

Requests ("member" is a 0-based index, "command" a command name; a missing or
null "command" means every command except hello/isMaster, "*" means every
command, hello included; "times" null or missing means until "clear"):
  {"cmd":"ping"}
  {"cmd":"fail","command":"insert","times":2,"code":91,"labels":[...],
   "errmsg":"...","member":null,"write_concern_error":false}
                    ("every":N on any fault: only every Nth matching request,
                     the others pass untouched: a flaky server)
  {"cmd":"delay","ms":300,"command":"find","times":null,"member":null}
  {"cmd":"hangup","mode":"before"|"mid","command":null,"times":1,"member":null}
  {"cmd":"blackhole","command":null,"times":null,"member":null}
  {"cmd":"clear"}                                remove every fault
  {"cmd":"drop_connections","member":null}       close open client sockets
  {"cmd":"stepdown"}                             primary moves to next member
  {"cmd":"primary","member":2}
  {"cmd":"no_primary"}
  {"cmd":"member_down","member":1} / {"cmd":"member_up","member":1}
  {"cmd":"stats"}   -> {"cmd":{name:count},"conn":{"current","max","total"},
                        "handshakes":{"current","max","total"} (first
                        hello/isMaster of a connection, while answered),
                        "members":[{"port","up","state","cmd","conn"}],...}
  {"cmd":"reset_stats"}
  {"cmd":"data","db":"test","coll":"c","docs":true}
                    -> {"count":N,"docs":[...]} (relaxed extended JSON;
                       "docs":false returns only the count)
  {"cmd":"drop_data"}

The servers are MockupDB instances, but each connection is served by our own
loop (PeerServer._server_loop) that does not hold MockupDB's per-server lock
while a request is handled, counts connections, and answers every command
(unknown commands get CommandNotFound, code 59), so a client never hangs
unless a fault says so.  A delay fault sleeps in the connection's own thread,
which stalls only that connection, as a slow server would.
"""

import argparse
import copy
import datetime
import functools
import json
import os
import re
import select
import socket
import sys
import threading
import time
import traceback
from collections import OrderedDict

import mockupdb
from mockupdb import (MockupDB, OpMsg, OpMsgReply, OpReply, CommandBase,
                      OpQuery, mock_server_receive_request)
import bson
from bson import json_util
from bson.int64 import Int64
from bson.objectid import ObjectId

# MockupDB 1.8 has exhaustAllowed = 16; the wire protocol says 1 << 16.
mockupdb.OP_MSG_FLAGS['exhaustAllowed'] = 1 << 16
mockupdb._ALL_OP_MSG_FLAGS = 1 | 2 | (1 << 16)

MORE_TO_COME = 2
HANDSHAKE = ('hello', 'ismaster')
WRITE_COMMANDS = ('insert', 'update', 'delete', 'findandmodify', 'create',
                  'drop', 'dropdatabase', 'createindexes', 'dropindexes')
RETRYABLE_CODES = (6, 7, 89, 91, 189, 262, 9001, 10107, 11600, 11602, 13435,
                   13436)
CODE_NAMES = {
    2: 'BadValue', 6: 'HostUnreachable', 7: 'HostNotFound',
    11: 'UserNotFound', 13: 'Unauthorized', 26: 'NamespaceNotFound',
    43: 'CursorNotFound', 50: 'MaxTimeMSExpired', 59: 'CommandNotFound',
    89: 'NetworkTimeout', 91: 'ShutdownInProgress',
    189: 'PrimarySteppedDown', 262: 'ExceededTimeLimit',
    9001: 'SocketException', 10107: 'NotWritablePrimary',
    11000: 'DuplicateKey', 11600: 'InterruptedAtShutdown',
    11602: 'InterruptedDueToReplStateChange',
    13435: 'NotPrimaryNoSecondaryOk', 13436: 'NotPrimaryOrSecondary',
}

LOCK = threading.RLock()     # guards everything below; never held while
                             # sleeping or doing socket I/O
PEER = None


def log(msg):
    sys.stderr.write('mongopeer[%d]: %s\n' % (os.getpid(), msg))
    sys.stderr.flush()


def now_utc():
    return datetime.datetime.now(datetime.timezone.utc)


# --------------------------------------------------------------------------
# Query language (a useful subset)

_MISSING = object()


def get_path(doc, path):
    cur = doc
    for part in path.split('.'):
        if isinstance(cur, dict):
            if part not in cur:
                return _MISSING
            cur = cur[part]
        elif isinstance(cur, list) and part.isdigit():
            i = int(part)
            if i >= len(cur):
                return _MISSING
            cur = cur[i]
        elif isinstance(cur, list):
            vals = [get_path(x, part) for x in cur if isinstance(x, dict)]
            vals = [v for v in vals if v is not _MISSING]
            if not vals:
                return _MISSING
            cur = vals
        else:
            return _MISSING
    return cur


def _type_rank(v):
    if v is None or v is _MISSING:
        return 1
    if isinstance(v, bool):
        return 8
    if isinstance(v, (int, float)):
        return 2
    if isinstance(v, str):
        return 3
    if isinstance(v, dict):
        return 4
    if isinstance(v, list):
        return 5
    if isinstance(v, bytes):
        return 6
    if isinstance(v, ObjectId):
        return 7
    if isinstance(v, datetime.datetime):
        return 9
    return 10


def compare(a, b):
    ra, rb = _type_rank(a), _type_rank(b)
    if ra != rb:
        return -1 if ra < rb else 1
    if ra == 1:
        return 0
    try:
        if a < b:
            return -1
        if a > b:
            return 1
        return 0
    except TypeError:
        sa, sb = repr(a), repr(b)
        return (sa > sb) - (sa < sb)


def _eq(val, arg):
    if val is _MISSING:
        return arg is None
    if isinstance(val, list) and not isinstance(arg, list):
        return any(_eq(v, arg) for v in val)
    if isinstance(val, bool) != isinstance(arg, bool):
        return False
    try:
        return val == arg
    except Exception:
        return False


def _cmp_op(val, arg, pred):
    if val is _MISSING:
        return False
    if isinstance(val, list) and not isinstance(arg, list):
        return any(_cmp_op(v, arg, pred) for v in val)
    if _type_rank(val) != _type_rank(arg):
        return False
    return pred(compare(val, arg))


def match_ops(val, ops):
    for op, arg in ops.items():
        if op == '$eq':
            ok = _eq(val, arg)
        elif op == '$ne':
            ok = not _eq(val, arg)
        elif op == '$gt':
            ok = _cmp_op(val, arg, lambda c: c > 0)
        elif op == '$gte':
            ok = _cmp_op(val, arg, lambda c: c >= 0)
        elif op == '$lt':
            ok = _cmp_op(val, arg, lambda c: c < 0)
        elif op == '$lte':
            ok = _cmp_op(val, arg, lambda c: c <= 0)
        elif op == '$in':
            ok = any(_eq(val, a) for a in arg)
        elif op == '$nin':
            ok = not any(_eq(val, a) for a in arg)
        elif op == '$exists':
            ok = (val is not _MISSING) == bool(arg)
        elif op == '$size':
            ok = isinstance(val, list) and len(val) == arg
        elif op == '$not':
            ok = not match_ops(val, arg) if isinstance(arg, dict) else True
        elif op == '$regex':
            flags = re.I if 'i' in ops.get('$options', '') else 0
            pat = arg.pattern if hasattr(arg, 'pattern') else arg
            ok = isinstance(val, str) and re.search(pat, val, flags) is not None
        elif op == '$options':
            ok = True
        else:
            raise PeerCommandError(2, 'unknown operator: %s' % op)
        if not ok:
            return False
    return True


def is_op_doc(v):
    return isinstance(v, dict) and v and all(
        isinstance(k, str) and k.startswith('$') for k in v)


def matches(doc, filt):
    for k, v in (filt or {}).items():
        if k == '$and':
            ok = all(matches(doc, f) for f in v)
        elif k == '$or':
            ok = any(matches(doc, f) for f in v)
        elif k == '$nor':
            ok = not any(matches(doc, f) for f in v)
        elif k in ('$comment',):
            ok = True
        elif k.startswith('$'):
            raise PeerCommandError(2, 'unknown top level operator: %s' % k)
        else:
            val = get_path(doc, k)
            if is_op_doc(v):
                ok = match_ops(val, v)
            else:
                ok = _eq(val, v)
        if not ok:
            return False
    return True


def sort_docs(docs, spec):
    if not spec:
        return list(docs)
    out = list(docs)
    for key, direction in reversed(list(spec.items())):
        def cmpf(a, b, key=key):
            return compare(get_path(a, key), get_path(b, key))
        out.sort(key=functools.cmp_to_key(cmpf),
                 reverse=(direction is not None and direction < 0))
    return out


def project(doc, proj):
    if not proj:
        return doc
    incl = {k: v for k, v in proj.items() if k != '_id'}
    id_on = proj.get('_id', 1)
    if incl and all(bool(v) for v in incl.values()):
        out = OrderedDict()
        if id_on and '_id' in doc:
            out['_id'] = doc['_id']
        for k in incl:
            if k in doc:
                out[k] = doc[k]
        return out
    out = OrderedDict((k, v) for k, v in doc.items() if k not in incl)
    if not id_on:
        out.pop('_id', None)
    return out


def set_path(doc, path, value):
    parts = path.split('.')
    cur = doc
    for p in parts[:-1]:
        if p not in cur or not isinstance(cur[p], dict):
            cur[p] = OrderedDict()
        cur = cur[p]
    cur[parts[-1]] = value


def unset_path(doc, path):
    parts = path.split('.')
    cur = doc
    for p in parts[:-1]:
        if not isinstance(cur, dict) or p not in cur:
            return
        cur = cur[p]
    if isinstance(cur, dict):
        cur.pop(parts[-1], None)


def apply_update(doc, upd, inserting=False):
    """Apply an update document to doc in place; returns True if changed."""
    before = copy.deepcopy(doc)
    if isinstance(upd, list):
        raise PeerCommandError(2, 'pipeline updates are not supported')
    if not is_op_doc(upd):
        _id = doc.get('_id')
        doc.clear()
        if _id is not None:
            doc['_id'] = _id
        for k, v in upd.items():
            if k != '_id':
                doc[k] = copy.deepcopy(v)
        return doc != before
    for op, fields in upd.items():
        for path, arg in fields.items():
            if op == '$set':
                set_path(doc, path, copy.deepcopy(arg))
            elif op == '$setOnInsert':
                if inserting:
                    set_path(doc, path, copy.deepcopy(arg))
            elif op == '$unset':
                unset_path(doc, path)
            elif op == '$inc':
                cur = get_path(doc, path)
                set_path(doc, path, (0 if cur is _MISSING else cur) + arg)
            elif op == '$mul':
                cur = get_path(doc, path)
                set_path(doc, path, (0 if cur is _MISSING else cur) * arg)
            elif op in ('$min', '$max'):
                cur = get_path(doc, path)
                if cur is _MISSING or (compare(arg, cur) < 0) == (op == '$min') \
                        and compare(arg, cur) != 0:
                    set_path(doc, path, arg)
            elif op in ('$push', '$addToSet'):
                cur = get_path(doc, path)
                lst = [] if cur is _MISSING else list(cur)
                items = arg['$each'] if isinstance(arg, dict) and \
                    '$each' in arg else [arg]
                for it in items:
                    if op == '$push' or it not in lst:
                        lst.append(copy.deepcopy(it))
                set_path(doc, path, lst)
            elif op == '$pull':
                cur = get_path(doc, path)
                if isinstance(cur, list):
                    set_path(doc, path, [x for x in cur if not _eq(x, arg)])
            elif op == '$currentDate':
                set_path(doc, path, now_utc())
            else:
                raise PeerCommandError(2, 'unknown update operator: %s' % op)
    return doc != before


def upsert_seed(q):
    doc = OrderedDict()
    for k, v in (q or {}).items():
        if k.startswith('$') or is_op_doc(v):
            if k == '$and':
                for sub in v:
                    for kk, vv in upsert_seed(sub).items():
                        set_path(doc, kk, vv)
            elif is_op_doc(v) and '$eq' in v:
                set_path(doc, k, copy.deepcopy(v['$eq']))
            continue
        set_path(doc, k, copy.deepcopy(v))
    return doc


class PeerCommandError(Exception):
    def __init__(self, code, msg, labels=None):
        Exception.__init__(self, msg)
        self.code = code
        self.msg = msg
        self.labels = labels


def error_doc(code, msg, labels=None):
    d = OrderedDict([('ok', 0), ('errmsg', msg), ('code', code),
                     ('codeName', CODE_NAMES.get(code, 'Error%d' % code))])
    if labels:
        d['errorLabels'] = list(labels)
    return d


# --------------------------------------------------------------------------
# Servers


class PeerServer(MockupDB):
    """A MockupDB server whose connections are served by the peer."""

    def __init__(self, member, port):
        MockupDB.__init__(self, port=port or None, request_timeout=int(1e6))
        self.member = member
        self.socks = set()

    def run_retrying(self, timeout=3.0):
        deadline = time.monotonic() + timeout
        while True:
            try:
                return self.run()
            except OSError as e:
                if time.monotonic() > deadline:
                    raise
                log('bind %r: %s; retrying' % (self._address, e))
                time.sleep(0.05)

    def _accept_loop(self):
        lsock = self._listening_sock
        lsock.setblocking(True)
        while not self._stopped:
            try:
                client, addr = lsock.accept()
            except OSError:
                break
            if self._stopped:
                client.close()
                break
            client.setblocking(True)
            try:
                client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
            with LOCK:
                self._prune_closed()
                self.socks.add(client)
                PEER.conn_opened(self.member)
            t = threading.Thread(target=self._server_loop,
                                 args=(client, addr), daemon=True)
            t.start()

    def _server_loop(self, client, client_addr):
        try:
            first = True
            while not self._stopped:
                request = mock_server_receive_request(client, self)
                # The connection handshake: the first hello/isMaster of a
                # connection, counted while it is answered (delays included).
                hs = first and isinstance(request, CommandBase) and \
                    (request.command_name or '').lower() in HANDSHAKE
                first = False
                if hs:
                    with LOCK:
                        PEER.handshake_began()
                try:
                    if not PEER.handle(self.member, client, request):
                        break
                finally:
                    if hs:
                        with LOCK:
                            PEER.handshake_ended()
        except (OSError, ValueError, NotImplementedError, AssertionError,
                bson.errors.BSONError, KeyError, IndexError):
            pass
        except Exception:
            traceback.print_exc()
        finally:
            with LOCK:
                if client in self.socks:
                    self.socks.discard(client)
                    PEER.conn_closed(self.member)
            try:
                client.close()
            except OSError:
                pass

    def _prune_closed(self):
        """Forgets connections the client has already closed (LOCK held).

        A connection's own thread notices the client's FIN only when it is
        scheduled, which under load can be after the client has opened its
        next connection: counting at accept time without this pruning would
        report one connection more than were ever open at once."""
        if not self.socks:
            return
        poller = select.poll()
        by_fd = {}
        for sock in self.socks:
            try:
                fd = sock.fileno()
            except OSError:
                continue
            if fd >= 0:
                by_fd[fd] = sock
                poller.register(fd, select.POLLIN | select.POLLRDHUP)
        for fd, events in poller.poll(0):
            sock = by_fd[fd]
            closed = bool(events & (select.POLLRDHUP | select.POLLHUP | select.POLLERR))
            if not closed and events & select.POLLIN:
                try:
                    closed = sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b''
                except (BlockingIOError, InterruptedError):
                    closed = False
                except OSError:
                    closed = True
            if closed:
                self.socks.discard(sock)
                PEER.conn_closed(self.member)

    def drop_connections(self):
        with LOCK:
            socks = list(self.socks)
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def halt(self):
        """Close the listener and all connections, without joining threads."""
        self._stopped = True
        try:
            self._listening_sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        try:
            self._listening_sock.close()
        except OSError:
            pass
        self.drop_connections()


class Member(object):
    def __init__(self, index, port):
        self.index = index
        self.port = port
        self.server = None
        self.up = False
        self.cmd = {}
        self.conn_current = 0
        self.conn_max = 0
        self.conn_total = 0

    @property
    def host(self):
        return '127.0.0.1:%d' % self.port

    def start(self):
        self.server = PeerServer(self.index, self.port)
        self.port = self.server.run_retrying()
        self.up = True

    def stop(self):
        if self.server is not None:
            self.server.halt()
        self.server = None
        self.up = False


class Rule(object):
    def __init__(self, kind, req):
        self.kind = kind
        self.command = req.get('command')
        self.member = req.get('member')
        self.times = req.get('times')
        self.every = req.get('every') or 1
        self.seen = 0
        self.req = req

    def applies(self, member, name):
        if self.member is not None and self.member != member:
            return False
        lname = name.lower()
        if self.command is None:
            if lname in HANDSHAKE:
                return False
        elif self.command != '*':
            c = self.command.lower()
            if c in HANDSHAKE:
                if lname not in HANDSHAKE:
                    return False
            elif c != lname:
                return False
        return True

    def to_json(self):
        d = dict(self.req)
        d['kind'] = self.kind
        d['times'] = self.times
        return d


class Peer(object):
    def __init__(self, mode, members, ports, set_name, max_wire):
        self.mode = mode
        self.set_name = set_name
        self.max_wire = max_wire
        self.members = [Member(i, ports[i] if ports and i < len(ports) else 0)
                        for i in range(members)]
        self.primary = 0 if mode == 'rs' else None
        self.election = 1
        self.set_version = 1
        self.data = {}            # (db, coll) -> list of docs
        self.cursors = {}         # id -> dict
        self.next_cursor = 1000
        self.next_conn_id = 1
        self.txn_replies = OrderedDict()
        self.rules = []
        self.cmd = {}
        self.conn_current = 0
        self.conn_max = 0
        self.conn_total = 0
        self.started = time.time()
        self.hs_current = 0       # connection handshakes being answered
        self.hs_max = 0
        self.hs_total = 0

    # -- connections / stats (LOCK held)
    def conn_opened(self, i):
        m = self.members[i]
        m.conn_current += 1
        m.conn_total += 1
        m.conn_max = max(m.conn_max, m.conn_current)
        self.conn_current += 1
        self.conn_total += 1
        self.conn_max = max(self.conn_max, self.conn_current)

    def handshake_began(self):
        self.hs_current += 1
        self.hs_total += 1
        self.hs_max = max(self.hs_max, self.hs_current)

    def handshake_ended(self):
        self.hs_current -= 1

    def conn_closed(self, i):
        m = self.members[i]
        m.conn_current -= 1
        self.conn_current -= 1

    def count(self, i, name):
        self.cmd[name] = self.cmd.get(name, 0) + 1
        m = self.members[i]
        m.cmd[name] = m.cmd.get(name, 0) + 1

    def state(self, i):
        if self.mode == 'standalone':
            return 'standalone'
        if self.mode == 'mongos':
            return 'mongos'
        return 'primary' if self.primary == i else 'secondary'

    # -- request handling (called from connection threads, LOCK not held)
    def handle(self, i, sock, request):
        """Serve one request; returns False to end the connection."""
        if not isinstance(request, CommandBase):
            if isinstance(request, OpQuery):
                self.send(sock, request, None, legacy_fail='not supported')
                return True
            return False   # legacy write / getMore / killCursors opcodes
        name = request.command_name or ''
        more_to_come = isinstance(request, OpMsg) and \
            bool((request.flags or 0) & MORE_TO_COME)
        delay = 0
        action = None
        with LOCK:
            self.count(i, name)
            for rule in list(self.rules):
                if not rule.applies(i, name):
                    continue
                rule.seen += 1
                if rule.seen % rule.every != 0:
                    continue
                if rule.kind == 'delay':
                    if delay:
                        continue
                    delay = rule.req.get('ms', 0)
                elif action is None:
                    action = rule
                else:
                    continue
                if rule.times is not None:
                    rule.times -= 1
                    if rule.times <= 0:
                        self.rules.remove(rule)
        if delay:
            time.sleep(delay / 1000.0)
        partial = False
        if action is not None:
            if action.kind == 'blackhole':
                return True
            if action.kind == 'hangup':
                if action.req.get('mode', 'before') != 'mid':
                    try:
                        sock.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                    return False
                partial = True
        if action is not None and action.kind == 'fail':
            doc = self.injected_failure(action.req)
        else:
            try:
                with LOCK:
                    doc = self.execute(i, request, name)
            except PeerCommandError as e:
                doc = error_doc(e.code, e.msg, e.labels)
            except Exception as e:
                traceback.print_exc()
                doc = error_doc(1, 'mongopeer internal error: %r' % (e,))
        if more_to_come:
            return True
        return self.send(sock, request, doc, partial=partial)

    def injected_failure(self, req):
        code = int(req.get('code', 1))
        msg = req.get('errmsg', 'mongopeer injected failure')
        labels = req.get('labels')
        if req.get('write_concern_error'):
            d = OrderedDict([('ok', 1), ('n', 0), ('writeConcernError',
                             OrderedDict([('code', code), ('errmsg', msg)]))])
            if labels:
                d['errorLabels'] = list(labels)
            return d
        return error_doc(code, msg, labels)

    def send(self, sock, request, doc, partial=False, legacy_fail=None):
        if legacy_fail is not None:
            reply = OpReply({'$err': legacy_fail, 'code': 59}, flags=2)
        elif isinstance(request, OpMsg):
            reply = OpMsgReply(doc)
        else:
            reply = OpReply(doc)
        data = reply.reply_bytes(request)
        try:
            if partial:
                sock.sendall(data[:max(1, len(data) // 2)])
                sock.shutdown(socket.SHUT_RDWR)
                return False
            sock.sendall(data)
        except OSError:
            return False
        return True

    # -- command execution (LOCK held)
    def execute(self, i, request, name):
        cmd = request.doc
        lname = name.lower()
        db = request.namespace or cmd.get('$db', 'test')
        m = self.members[i]
        if lname in HANDSHAKE:
            return self.hello(i, cmd, lname)
        if self.mode == 'rs' and self.primary != i and lname in WRITE_COMMANDS:
            labels = ['RetryableWriteError'] if 'txnNumber' in cmd else None
            raise PeerCommandError(10107, 'not primary', labels)
        txn_key = None
        if 'txnNumber' in cmd and 'lsid' in cmd and \
                lname in ('insert', 'update', 'delete', 'findandmodify'):
            try:
                txn_key = (repr(cmd['lsid']['id']), int(cmd['txnNumber']))
            except Exception:
                txn_key = None
            if txn_key in self.txn_replies:
                return copy.deepcopy(self.txn_replies[txn_key])
        fn = getattr(self, 'cmd_' + lname, None)
        if fn is None:
            raise PeerCommandError(59, 'no such command: \'%s\'' % name)
        out = fn(db, cmd, m)
        if txn_key is not None:
            self.txn_replies[txn_key] = copy.deepcopy(out)
            while len(self.txn_replies) > 10000:
                self.txn_replies.popitem(last=False)
        return out

    def hello(self, i, cmd, lname):
        m = self.members[i]
        cid = self.next_conn_id
        self.next_conn_id += 1
        d = OrderedDict()
        if cmd.get('helloOk'):
            d['helloOk'] = True
        primary_now = self.mode != 'rs' or self.primary == i
        d['ismaster'] = primary_now
        d['isWritablePrimary'] = primary_now
        if self.mode == 'mongos':
            d['msg'] = 'isdbgrid'
        if self.mode == 'rs':
            d['setName'] = self.set_name
            d['setVersion'] = self.set_version
            d['hosts'] = [x.host for x in self.members]
            d['me'] = m.host
            d['secondary'] = not primary_now
            if primary_now:
                d['electionId'] = ObjectId(b'\x7f\xff\xff\xff' +
                                           self.election.to_bytes(8, 'big'))
            p = self.primary
            if p is not None and self.members[p].up:
                d['primary'] = self.members[p].host
            d['lastWrite'] = OrderedDict([
                ('lastWriteDate', now_utc().replace(microsecond=0))])
        d['maxBsonObjectSize'] = 16 * 1024 * 1024
        d['maxMessageSizeBytes'] = 48000000
        d['maxWriteBatchSize'] = 100000
        d['localTime'] = now_utc()
        d['logicalSessionTimeoutMinutes'] = 30
        d['connectionId'] = cid
        d['minWireVersion'] = 0
        d['maxWireVersion'] = self.max_wire
        d['readOnly'] = False
        d['ok'] = 1.0
        return d

    def coll(self, db, name, create=False):
        key = (db, name)
        if key not in self.data:
            if not create:
                return []
            self.data[key] = []
        return self.data[key]

    def new_cursor(self, db, coll, docs, first_batch_size, single=False):
        if first_batch_size is None:
            first_batch_size = 101
        first = docs[:first_batch_size] if first_batch_size else docs
        rest = docs[len(first):]
        cid = 0
        if rest and not single:
            cid = self.next_cursor
            self.next_cursor += 1
            self.cursors[cid] = {'ns': '%s.%s' % (db, coll), 'docs': rest}
        return OrderedDict([('cursor', OrderedDict([
            ('firstBatch', first), ('id', Int64(cid)),
            ('ns', '%s.%s' % (db, coll))])), ('ok', 1)])

    def cmd_ping(self, db, cmd, m):
        return {'ok': 1}

    def cmd_buildinfo(self, db, cmd, m):
        return OrderedDict([('version', '5.0.0'),
                            ('versionArray', [5, 0, 0, 0]),
                            ('maxBsonObjectSize', 16 * 1024 * 1024),
                            ('ok', 1)])

    def cmd_serverstatus(self, db, cmd, m):
        return OrderedDict([
            ('host', m.host), ('version', '5.0.0'),
            ('process', 'mongos' if self.mode == 'mongos' else 'mongod'),
            ('pid', Int64(os.getpid())),
            ('uptime', time.time() - self.started),
            ('localTime', now_utc()),
            ('connections', OrderedDict([('current', m.conn_current),
                                         ('totalCreated', m.conn_total)])),
            ('ok', 1)])

    def cmd_endsessions(self, db, cmd, m):
        return {'ok': 1}

    def cmd_getlasterror(self, db, cmd, m):
        return OrderedDict([('err', None), ('n', 0), ('ok', 1)])

    def cmd_insert(self, db, cmd, m):
        c = self.coll(db, cmd['insert'], create=True)
        ordered = cmd.get('ordered', True)
        n = 0
        errors = []
        ids = set()
        for d in c:
            try:
                ids.add(repr(d.get('_id')))
            except Exception:
                pass
        for idx, doc in enumerate(cmd.get('documents', [])):
            if '_id' not in doc:
                nd = OrderedDict([('_id', ObjectId())])
                nd.update(doc)
                doc = nd
            key = repr(doc['_id'])
            if key in ids:
                errors.append(OrderedDict([
                    ('index', idx), ('code', 11000),
                    ('errmsg', 'E11000 duplicate key error collection: '
                     '%s.%s index: _id_ dup key: { _id: %s }' % (
                         db, cmd['insert'], key))]))
                if ordered:
                    break
                continue
            ids.add(key)
            c.append(doc)
            n += 1
        out = OrderedDict([('n', n)])
        if errors:
            out['writeErrors'] = errors
        out['ok'] = 1
        return out

    def cmd_update(self, db, cmd, m):
        c = self.coll(db, cmd['update'], create=True)
        n = modified = 0
        upserted = []
        for idx, u in enumerate(cmd.get('updates', [])):
            q, upd = u.get('q', {}), u.get('u', {})
            hit = False
            for doc in c:
                if matches(doc, q):
                    hit = True
                    n += 1
                    if apply_update(doc, upd):
                        modified += 1
                    if not u.get('multi'):
                        break
            if not hit and u.get('upsert'):
                doc = upsert_seed(q) if is_op_doc(upd) else OrderedDict()
                apply_update(doc, upd, inserting=True)
                if '_id' not in doc:
                    _id = get_path(q, '_id') if '_id' in q and \
                        not is_op_doc(q['_id']) else ObjectId()
                    nd = OrderedDict([('_id', _id)])
                    nd.update(doc)
                    doc = nd
                c.append(doc)
                n += 1
                upserted.append(OrderedDict([('index', idx),
                                             ('_id', doc['_id'])]))
        out = OrderedDict([('n', n), ('nModified', modified)])
        if upserted:
            out['upserted'] = upserted
        out['ok'] = 1
        return out

    def cmd_delete(self, db, cmd, m):
        c = self.coll(db, cmd['delete'])
        n = 0
        for d in cmd.get('deletes', []):
            q, limit = d.get('q', {}), d.get('limit', 0)
            keep = []
            removed = 0
            for doc in c:
                if (limit == 0 or removed < limit) and matches(doc, q):
                    removed += 1
                else:
                    keep.append(doc)
            c[:] = keep
            n += removed
        return OrderedDict([('n', n), ('ok', 1)])

    def cmd_findandmodify(self, db, cmd, m):
        c = self.coll(db, cmd['findAndModify'] if 'findAndModify' in cmd
                      else cmd['findandmodify'], create=True)
        q = cmd.get('query', {})
        docs = sort_docs([d for d in c if matches(d, q)], cmd.get('sort'))
        leo = OrderedDict([('n', 0), ('updatedExisting', False)])
        value = None
        if docs:
            doc = docs[0]
            leo['n'] = 1
            if cmd.get('remove'):
                c.remove(doc)
                value = doc
            else:
                old = copy.deepcopy(doc)
                apply_update(doc, cmd.get('update', {}))
                leo['updatedExisting'] = True
                value = doc if cmd.get('new') else old
        elif cmd.get('upsert') and not cmd.get('remove'):
            upd = cmd.get('update', {})
            doc = upsert_seed(q) if is_op_doc(upd) else OrderedDict()
            apply_update(doc, upd, inserting=True)
            if '_id' not in doc:
                nd = OrderedDict([('_id', ObjectId())])
                nd.update(doc)
                doc = nd
            c.append(doc)
            leo['n'] = 1
            leo['upserted'] = doc['_id']
            value = doc if cmd.get('new') else None
        if value is not None:
            value = project(value, cmd.get('fields'))
        return OrderedDict([('lastErrorObject', leo), ('value', value),
                            ('ok', 1)])

    def cmd_find(self, db, cmd, m):
        docs = [d for d in self.coll(db, cmd['find'])
                if matches(d, cmd.get('filter'))]
        docs = sort_docs(docs, cmd.get('sort'))
        skip = cmd.get('skip', 0) or 0
        limit = cmd.get('limit', 0) or 0
        docs = docs[skip:]
        single = bool(cmd.get('singleBatch')) or limit < 0
        if limit:
            docs = docs[:abs(limit)]
        docs = [project(d, cmd.get('projection')) for d in docs]
        return self.new_cursor(db, cmd['find'], docs, cmd.get('batchSize'),
                               single)

    def cmd_getmore(self, db, cmd, m):
        cid = int(cmd['getMore'])
        cur = self.cursors.get(cid)
        if cur is None:
            raise PeerCommandError(43, 'cursor id %d not found' % cid)
        bs = cmd.get('batchSize') or len(cur['docs'])
        batch, cur['docs'] = cur['docs'][:bs], cur['docs'][bs:]
        if not cur['docs']:
            del self.cursors[cid]
            cid = 0
        return OrderedDict([('cursor', OrderedDict([
            ('nextBatch', batch), ('id', Int64(cid)), ('ns', cur['ns'])])),
            ('ok', 1)])

    def cmd_killcursors(self, db, cmd, m):
        killed, missing = [], []
        for cid in cmd.get('cursors', []):
            if self.cursors.pop(int(cid), None) is not None:
                killed.append(Int64(cid))
            else:
                missing.append(Int64(cid))
        return OrderedDict([('cursorsKilled', killed),
                            ('cursorsNotFound', missing),
                            ('cursorsAlive', []), ('cursorsUnknown', []),
                            ('ok', 1)])

    def cmd_count(self, db, cmd, m):
        docs = [d for d in self.coll(db, cmd['count'])
                if matches(d, cmd.get('query'))]
        docs = docs[cmd.get('skip', 0) or 0:]
        if cmd.get('limit'):
            docs = docs[:abs(cmd['limit'])]
        return OrderedDict([('n', len(docs)), ('ok', 1)])

    def cmd_distinct(self, db, cmd, m):
        vals = []
        for d in self.coll(db, cmd['distinct']):
            if matches(d, cmd.get('query')):
                v = get_path(d, cmd['key'])
                for x in (v if isinstance(v, list) else [v]):
                    if x is not _MISSING and x not in vals:
                        vals.append(x)
        return OrderedDict([('values', vals), ('ok', 1)])

    def cmd_aggregate(self, db, cmd, m):
        target = cmd['aggregate']
        docs = [] if not isinstance(target, str) else \
            list(self.coll(db, target))
        for stage in cmd.get('pipeline', []):
            (op, arg), = stage.items()
            if op == '$match':
                docs = [d for d in docs if matches(d, arg)]
            elif op == '$sort':
                docs = sort_docs(docs, arg)
            elif op == '$skip':
                docs = docs[arg:]
            elif op == '$limit':
                docs = docs[:arg]
            elif op == '$project':
                docs = [project(d, arg) for d in docs]
            elif op == '$count':
                docs = [OrderedDict([(arg, len(docs))])] if docs else []
            elif op == '$group':
                docs = self.group(docs, arg)
            else:
                raise PeerCommandError(
                    40324, 'Unrecognized pipeline stage name: %s' % op)
        bs = (cmd.get('cursor') or {}).get('batchSize')
        return self.new_cursor(db, target if isinstance(target, str) else
                               '$cmd.aggregate', docs, bs)

    @staticmethod
    def _expr(doc, e):
        if isinstance(e, str) and e.startswith('$'):
            v = get_path(doc, e[1:])
            return None if v is _MISSING else v
        return e

    def group(self, docs, spec):
        groups = OrderedDict()
        for d in docs:
            key = self._expr(d, spec.get('_id'))
            k = repr(key)
            if k not in groups:
                groups[k] = (key, [])
            groups[k][1].append(d)
        out = []
        for key, members in groups.values():
            g = OrderedDict([('_id', key)])
            for field, acc in spec.items():
                if field == '_id':
                    continue
                (aop, aarg), = acc.items()
                vals = [self._expr(d, aarg) for d in members]
                nums = [v for v in vals if isinstance(v, (int, float))
                        and not isinstance(v, bool)]
                if aop == '$sum':
                    g[field] = sum(nums)
                elif aop == '$avg':
                    g[field] = sum(nums) / len(nums) if nums else None
                elif aop == '$min':
                    g[field] = min(nums) if nums else None
                elif aop == '$max':
                    g[field] = max(nums) if nums else None
                elif aop == '$first':
                    g[field] = vals[0] if vals else None
                elif aop == '$last':
                    g[field] = vals[-1] if vals else None
                elif aop == '$push':
                    g[field] = vals
                else:
                    raise PeerCommandError(
                        15952, 'unknown group operator: %s' % aop)
            out.append(g)
        return out

    def cmd_create(self, db, cmd, m):
        self.coll(db, cmd['create'], create=True)
        return {'ok': 1}

    def cmd_drop(self, db, cmd, m):
        if self.data.pop((db, cmd['drop']), None) is None:
            raise PeerCommandError(26, 'ns not found')
        return OrderedDict([('ns', '%s.%s' % (db, cmd['drop'])),
                            ('ok', 1)])

    def cmd_dropdatabase(self, db, cmd, m):
        for k in [k for k in self.data if k[0] == db]:
            del self.data[k]
        return OrderedDict([('dropped', db), ('ok', 1)])

    def cmd_listcollections(self, db, cmd, m):
        docs = [OrderedDict([('name', k[1]), ('type', 'collection'),
                             ('options', {}),
                             ('info', {'readOnly': False})])
                for k in self.data if k[0] == db]
        docs = [d for d in docs if matches(d, cmd.get('filter'))]
        return self.new_cursor(db, '$cmd.listCollections', docs, None)

    def cmd_listdatabases(self, db, cmd, m):
        dbs = sorted(set(k[0] for k in self.data))
        return OrderedDict([('databases', [
            OrderedDict([('name', d), ('sizeOnDisk', 0), ('empty', False)])
            for d in dbs]), ('totalSize', 0), ('ok', 1)])

    def cmd_listindexes(self, db, cmd, m):
        docs = [OrderedDict([('v', 2), ('key', {'_id': 1}),
                             ('name', '_id_')])]
        return self.new_cursor(db, cmd['listIndexes'], docs, None)

    def cmd_createindexes(self, db, cmd, m):
        self.coll(db, cmd['createIndexes'], create=True)
        return OrderedDict([('numIndexesBefore', 1), ('numIndexesAfter', 1),
                            ('ok', 1)])

    def cmd_dropindexes(self, db, cmd, m):
        return {'ok': 1}

    # -- control protocol (main thread)
    def control(self, req):
        c = req.get('cmd')
        if c == 'ping':
            return {}
        if c in ('fail', 'delay', 'hangup', 'blackhole'):
            rule = Rule(c, req)
            if c == 'hangup' and 'times' not in req:
                rule.times = 1
            if c == 'fail' and 'times' not in req:
                rule.times = 1
            with LOCK:
                self.rules.append(rule)
            return {}
        if c == 'clear':
            with LOCK:
                self.rules = []
            return {}
        if c == 'rules':
            with LOCK:
                return {'rules': [r.to_json() for r in self.rules]}
        if c == 'drop_connections':
            for m in self.pick(req, allow_all=True):
                if m.server is not None:
                    m.server.drop_connections()
            return {}
        if c in ('stepdown', 'primary', 'no_primary'):
            if self.mode != 'rs':
                raise ValueError('%s needs --mode rs' % c)
            with LOCK:
                if c == 'no_primary':
                    self.primary = None
                else:
                    if c == 'primary':
                        new = self.pick(req)[0].index
                    else:
                        new = ((self.primary if self.primary is not None
                                else -1) + 1) % len(self.members)
                    if new != self.primary:
                        self.election += 1
                    self.primary = new
            return {'primary': self.primary}
        if c == 'member_down':
            for m in self.pick(req):
                m.stop()
            return {}
        if c == 'member_up':
            for m in self.pick(req):
                if not m.up:
                    m.start()
            return {}
        if c == 'stats':
            return self.stats()
        if c == 'reset_stats':
            with LOCK:
                self.cmd = {}
                self.conn_total = 0
                self.conn_max = self.conn_current
                self.hs_max = self.hs_current
                self.hs_total = 0
                for m in self.members:
                    m.cmd = {}
                    m.conn_total = 0
                    m.conn_max = m.conn_current
            return {}
        if c == 'data':
            with LOCK:
                docs = copy.deepcopy(
                    self.coll(req.get('db', 'test'), req['coll']))
            if req.get('docs', True) is False:
                return {'count': len(docs)}
            return {'count': len(docs), 'docs': docs}
        if c == 'drop_data':
            with LOCK:
                self.data = {}
                self.cursors = {}
                self.txn_replies = OrderedDict()
            return {}
        raise ValueError('unknown control command %r' % (c,))

    def pick(self, req, allow_all=False):
        i = req.get('member')
        if i is None:
            if allow_all:
                return list(self.members)
            raise ValueError('"member" is required')
        if not isinstance(i, int) or i < 0 or i >= len(self.members):
            raise ValueError('no member %r' % (i,))
        return [self.members[i]]

    def stats(self):
        with LOCK:
            return {
                'cmd': dict(self.cmd),
                'conn': {'current': self.conn_current,
                         'max': self.conn_max, 'total': self.conn_total},
                'handshakes': {'current': self.hs_current,
                               'max': self.hs_max, 'total': self.hs_total},
                'primary': self.primary,
                'members': [{
                    'port': m.port, 'up': m.up, 'state': self.state(m.index),
                    'cmd': dict(m.cmd),
                    'conn': {'current': m.conn_current, 'max': m.conn_max,
                             'total': m.conn_total}}
                    for m in self.members],
                'cursors': len(self.cursors),
                'rules': len(self.rules),
            }


def main():
    global PEER
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--mode', choices=('standalone', 'rs', 'mongos'),
                    default='standalone')
    ap.add_argument('--members', type=int, default=None)
    ap.add_argument('--ports', default='')
    ap.add_argument('--set-name', default='rs0')
    ap.add_argument('--max-wire-version', type=int, default=13)
    args = ap.parse_args()
    ports = [int(p) for p in args.ports.split(',') if p.strip()]
    members = args.members
    if members is None:
        members = len(ports) if ports else (3 if args.mode == 'rs' else 1)
    if args.mode == 'standalone':
        members = 1
    if members < 1:
        ap.error('--members must be >= 1')

    PEER = Peer(args.mode, members, ports, args.set_name,
                args.max_wire_version)
    try:
        for m in PEER.members:
            m.start()
    except Exception as e:
        log('cannot start: %s' % e)
        os._exit(2)

    out = sys.stdout
    ready = {'ports': [m.port for m in PEER.members], 'mode': args.mode,
             'pid': os.getpid()}
    if args.mode == 'rs':
        ready['setName'] = args.set_name
    out.write('READY ' + json.dumps(ready) + '\n')
    out.flush()

    stdin = sys.stdin.buffer
    while True:
        line = stdin.readline()
        if not line:
            os._exit(0)        # test closed our stdin (or died): leave now
        line = line.strip()
        if not line:
            continue
        try:
            req = json.loads(line)
            if not isinstance(req, dict):
                raise ValueError('request must be a JSON object')
            reply = PEER.control(req)
            reply = dict(reply)
            reply['ok'] = True
            text = json_util.dumps(
                reply, json_options=json_util.RELAXED_JSON_OPTIONS)
        except Exception as e:
            text = json.dumps({'ok': False, 'error': '%s: %s' % (
                type(e).__name__, e)})
        out.write(text.replace('\n', ' ') + '\n')
        out.flush()


if __name__ == '__main__':
    main()
