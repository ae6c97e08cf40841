#!/usr/bin/env python3
"""Lists in pages against a live broker (tests/integration/api_paging.sh).

Fills the broker through its socket (root, or an admin, acting for
people with AS_USER), then walks GET /v1/grants, /v1/pending and
/v1/requests page by page and compares with what must be there; runs
sbxctl grants / pending and sbx-request list, which walk the socket's
pages.  Every API response is validated against docs/openapi.yaml by
api_driver.py's Client.  Prints "PASS what" / "FAIL what: why".
Environment: as api_driver.py, and USERS.
"""
import json
import os
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.dont_write_bytecode = True  # the source tree may be read-only (distcheck)
import api_driver as ad  # noqa: E402  (reads the same environment)

USERS = int(os.environ["USERS"])

# The socket protocol (common/sbx_proto.h)
OP_REQUEST, OP_DROP, OP_REVOKE = 0x0010, 0x0014, 0x0023
F_STATUS, F_MESSAGE, F_AS_USER = 0x0001, 0x0002, 0x0003
F_ID, F_ROLE, F_REQUEST = 0x0201, 0x0202, 0x0208


def field(tag, value):
    if isinstance(value, int):
        value = struct.pack(">I", value)
    elif isinstance(value, str):
        value = value.encode()
    return struct.pack(">HH", tag, len(value)) + value


class Sock:
    """One connection kept open; one request, one reply."""

    def __init__(self):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.settimeout(30)
        self.s.connect(ad.SOCK)

    def recv_exact(self, n):
        b = b""
        while len(b) < n:
            part = self.s.recv(n - len(b))
            if not part:
                raise EOFError("the broker closed the connection")
            b += part
        return b

    def call(self, op, *fields):
        body = b"".join(field(t, v) for t, v in fields)
        self.s.sendall(struct.pack(">IHH", 8 + len(body), 1, op) + body)
        length, _, _ = struct.unpack(">IHH", self.recv_exact(8))
        rest = self.recv_exact(length - 8)
        out, i = {}, 0
        while i < len(rest):
            tag, n = struct.unpack(">HH", rest[i:i + 4])
            out.setdefault(tag, rest[i + 4:i + 4 + n])
            i += 4 + n
        status = struct.unpack(">I", out[F_STATUS])[0]
        req_id = None
        if F_REQUEST in out:
            rec, j = out[F_REQUEST], 0
            while j < len(rec):
                tag, n = struct.unpack(">HH", rec[j:j + 4])
                if tag == F_ID:
                    req_id = struct.unpack(">I", rec[j + 4:j + 8])[0]
                j += 4 + n
        return status, out.get(F_MESSAGE, b"").decode(), req_id


def ask(sk, user, role):
    st, msg, rid = sk.call(OP_REQUEST, (F_AS_USER, user), (F_ROLE, role))
    if st != 0 or rid is None:
        raise RuntimeError("%s asking for %s: status %d %s" % (user, role, st, msg))
    return rid


def end(sk, op, user, rid):
    st, msg, _ = sk.call(op, (F_AS_USER, user), (F_ID, rid))
    if st != 0:
        raise RuntimeError("ending %d: status %d %s" % (rid, st, msg))


def user(i):
    return "u%04d" % i


class Paced(ad.Client):
    """A client that waits out the token's rate limit (429) untimed."""

    def call(self, method, path, body=None, raw=None, headers=None):
        while True:
            st, obj, r = super().call(method, path, body, raw, headers)
            if st != 429:
                return st, obj, r
            time.sleep(float(r.getheader("Retry-After", "1")))


def walk(client, path, limit=None, between=None):
    """Every page of a list: (ids in order, pages, sizes, ok)."""
    ids, pages, cursor, ok = [], 0, None, True
    sizes = []
    while True:
        q = []
        if limit is not None:
            q.append("limit=%d" % limit)
        if cursor is not None:
            q.append("cursor=" + cursor)
        sep = "&" if "?" in path else "?"
        st, obj, _ = client.call("GET", path + (sep + "&".join(q) if q else ""))
        if st != 200:
            ad.check("GET %s page %d answers 200" % (path, pages + 1), False,
                     "got %d %s" % (st, json.dumps(obj)[:300]))
            return ids, pages, sizes, False
        pages += 1
        sizes.append(len(obj["requests"]))
        ids += [r["id"] for r in obj["requests"]]
        users = {r["user"] for r in obj["requests"]}
        cursor = obj.get("next_cursor")
        if between:
            between(pages, users)
        if cursor is None:
            return ids, pages, sizes, ok
        if pages > 10000:
            ad.check("GET %s ends" % path, False, "more than 10000 pages")
            return ids, pages, sizes, False


def main():
    sk = Sock()
    t0 = time.time()
    burst = {user(i): ask(sk, user(i), "burst") for i in range(1, USERS + 1)}
    extra = [ask(sk, user(1), "extra%d" % k) for k in range(1, 6)]
    pending = [ask(sk, user(i), "asked") for i in range(2, 32)]
    print("filled %d grants and %d pending requests in %.1f s" %
          (len(burst) + len(extra), len(pending), time.time() - t0), flush=True)
    live = sorted(list(burst.values()) + extra, reverse=True)

    # ---- the socket: the CLIs walk every page ----
    rc, out, err = ad.sbx(ad.SBXCTL, "--json", "grants")
    got = [r["id"] for r in json.loads(out)] if rc == 0 else []
    ad.check("sbxctl grants lists all %d live grants, more than one frame holds" % len(live),
             got == live, "rc %d, %d grants: %s" % (rc, len(got), err[:200]))
    rc, out, err = ad.sbx(ad.SBXCTL, "grants")
    ad.check("sbxctl grants prints a line for each of them", rc == 0 and
             sum(1 for ln in out.splitlines() if ln.split()[:1] and
                 ln.split()[0].isdigit()) == len(live), "rc %d: %s" % (rc, err[:200]))
    rc, out, err = ad.sbx(ad.SBXCTL, "--as", user(1), "--json", "grants")
    got = [r["id"] for r in json.loads(out)] if rc == 0 else []
    ad.check("sbxctl grants for a person: only their own", got ==
             sorted(extra + [burst[user(1)]], reverse=True), "rc %d %s: %s" % (rc, got, err))
    rc, out, err = ad.sbx(ad.SBXCTL, "--as", "boss", "--json", "pending")
    got = [r["id"] for r in json.loads(out)] if rc == 0 else []
    ad.check("sbxctl pending lists the requests the approver may decide, oldest first",
             got == pending, "rc %d %s: %s" % (rc, got, err))

    # sbx-request list --all: one person's 500 ended requests and a live one
    churn = user(900)
    ended = []
    for _ in range(500):
        rid = ask(sk, churn, "extra1")
        end(sk, OP_DROP, churn, rid)
        ended.append(rid)
    rc, out, err = ad.sbx(ad.SBXREQ, "--as", churn, "--json", "list", "--all")
    got = [r["id"] for r in json.loads(out)] if rc == 0 else []
    ad.check("sbx-request list --all walks every page (501 requests)",
             got == sorted(ended + [burst[churn]], reverse=True),
             "rc %d, %d requests: %s" % (rc, len(got), err[:200]))
    rc, out, err = ad.sbx(ad.SBXREQ, "--as", churn, "--json", "list")
    got = [r["id"] for r in json.loads(out)] if rc == 0 else []
    ad.check("sbx-request list: only the open ones", got == [burst[churn]],
             "rc %d %s: %s" % (rc, got, err))

    # ---- the API ----
    admin = Paced(ad.make_token(None, "pages-admin", scope="read,approve"))
    own = Paced(ad.make_token(user(1), "pages-own", scope="read,approve"))
    boss = Paced(ad.make_token("boss", "pages-boss", scope="read,approve"))
    churner = Paced(ad.make_token(churn, "pages-churn", scope="read"))

    st, obj, _ = admin.call("GET", "/v1/grants")
    ad.check("no limit: the first page of 100, newest first, with a next_cursor",
             st == 200 and [r["id"] for r in obj["requests"]] == live[:100] and
             isinstance(obj.get("next_cursor"), str), "got %d" % st)

    for limit in (100, 1000, 333):
        ids, pages, sizes, ok = walk(admin, "/v1/grants", limit)
        ad.check("GET /v1/grants?limit=%d: every live grant exactly once, newest first" % limit,
                 ok and ids == live, "%d ids, %d unique" % (len(ids), len(set(ids))))
        ad.check("GET /v1/grants?limit=%d: %d pages of at most %d" %
                 (limit, -(-len(live) // limit), limit),
                 pages == -(-len(live) // limit) and max(sizes) <= limit, "sizes %s" % sizes)
    ids, pages, sizes, ok = walk(admin, "/v1/grants?all=true", 1000)
    ad.check("GET /v1/grants?all=true&limit=1000: the live and the 500 ended grants",
             ok and ids == sorted(live + ended, reverse=True) and sizes[0] == 1000,
             "%d ids, sizes %s" % (len(ids), sizes))

    # Pages stay consistent while grants come and go between them.
    seen_first = set()
    changed = {}

    def churn_between(page, users):
        if page != 1:
            return
        # one already seen, one not yet seen ends; a new one starts
        changed["gone_seen"] = live[10]
        changed["gone_later"] = live[500]
        for rid in (live[10], live[500]):
            st, msg, _ = sk.call(OP_REVOKE, (F_ID, rid))
            if st != 0:
                raise RuntimeError("revoke %d: %d %s" % (rid, st, msg))
        changed["new"] = ask(sk, user(2), "extra2")

    ids, pages, sizes, ok = walk(admin, "/v1/grants", 100, churn_between)
    steady = [i for i in live if i not in (changed["gone_seen"], changed["gone_later"])]
    ad.check("grants that stay live while pages are read appear exactly once",
             ok and len(ids) == len(set(ids)) and set(steady) <= set(ids),
             "%d ids, %d unique, missing %s" % (len(ids), len(set(ids)),
                                                sorted(set(steady) - set(ids))[:5]))
    ad.check("one ended before its page came is not on it; one seen stays seen once",
             changed["gone_later"] not in ids and ids.count(changed["gone_seen"]) == 1,
             "ids hold %s" % [i for i in ids if i in changed.values()])
    live = sorted(steady + [changed["new"]], reverse=True)
    ids, pages, sizes, ok = walk(admin, "/v1/grants", 1000)
    ad.check("a walk from the start sees the new grant and not the ended ones",
             ok and ids == live, "%d ids" % len(ids))

    # A person's pages: their own grants only, on every page.
    mine = sorted(extra + [burst[user(1)]], reverse=True)
    users_seen = set()
    ids, pages, sizes, ok = walk(own, "/v1/grants", 2, lambda p, u: users_seen.update(u))
    ad.check("a person's grants in pages of 2: their 6, in 3 pages, no one else's",
             ok and ids == mine and pages == 3 and users_seen == {user(1)},
             "ids %s pages %d users %s" % (ids, pages, sorted(users_seen)))
    ad.expect("a person may not page through another's grants",
              own.call("GET", "/v1/grants?user=%s&limit=10" % user(2)), 403, "refused")
    ids, pages, sizes, ok = walk(boss, "/v1/pending", 7)
    ad.check("GET /v1/pending?limit=7: the approver's 30, oldest first, in 5 pages",
             ok and ids == pending and pages == 5, "ids %s pages %d" % (ids, pages))
    ids, pages, sizes, ok = walk(own, "/v1/pending", 7)
    ad.check("GET /v1/pending for a non-approver: an empty first and last page",
             ok and ids == [] and pages == 1, "ids %s pages %d" % (ids, pages))
    ids, pages, sizes, ok = walk(churner, "/v1/requests?all=true", 100)
    ad.check("GET /v1/requests?all=true&limit=100: the person's 501 in 6 pages",
             ok and ids == sorted(ended + [burst[churn]], reverse=True) and pages == 6,
             "%d ids, %d pages" % (len(ids), pages))
    ids, pages, sizes, ok = walk(churner, "/v1/requests")
    ad.check("GET /v1/requests without a limit: the open one, no next_cursor",
             ok and ids == [burst[churn]] and pages == 1, "ids %s" % ids)

    # A bad limit or cursor: 400 bad_request, on every list.
    for path in ("/v1/grants", "/v1/pending", "/v1/requests"):
        for q in ("limit=0", "limit=1001", "limit=-1", "limit=ten", "limit=", "limit=1e3",
                  "cursor=abc", "cursor=0", "cursor=", "cursor=-5", "cursor=99999999999",
                  "limit=10&cursor=12x"):
            ad.expect("GET %s?%s: 400 bad_request" % (path, q),
                      boss.call("GET", "%s?%s" % (path, q)), 400, "bad_request")
    ad.expect("limit=1000 is the largest allowed", admin.call("GET", "/v1/grants?limit=1000"),
              200)
    return 1 if ad.failed else 0


if __name__ == "__main__":
    sys.exit(main())
