#!/usr/bin/env python3
"""Drive the broker's HTTP API against a live broker (tests/integration/api.sh).

Every endpoint, authorised and not: wrong scope, another user's request,
expired, revoked and unknown-owner tokens, self-approval and
self-certification, a non-admin's drift, conflicts, the body cap and the
rate limit.  Every response is checked against
docs/openapi.yaml: its status must be documented for the operation and its
body must validate against the documented schema.

Prints one line per check, "PASS what" or "FAIL what: why"; api.sh turns
them into TAP.  Environment: API (base URL), SBXREQ, SBXCTL, SOCK, STATE,
SPEC, POLICY, BROKER_PID.
"""
import csv
import http.client
import io
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.parse

import jsonschema
import yaml

API = os.environ["API"]
SBXREQ = os.environ["SBXREQ"]
SBXCTL = os.environ["SBXCTL"]
SOCK = os.environ["SOCK"]
STATE = os.environ["STATE"]
POLICY = os.environ["POLICY"]
BROKER_PID = int(os.environ["BROKER_PID"])
SPEC = yaml.safe_load(open(os.environ["SPEC"]))
HOST = urllib.parse.urlparse(API)

failed = 0


def check(what, ok, why=""):
    global failed
    if ok:
        print("PASS " + what, flush=True)
    else:
        failed += 1
        print("FAIL %s: %s" % (what, why), flush=True)
    return ok


# ---- the spec ---------------------------------------------------------------

def template_of(path):
    """The spec's path template for a concrete path."""
    for tpl in SPEC["paths"]:
        rx = "^" + re.sub(r"\{[a-z]+\}", "[^/]+", tpl) + "$"
        if re.match(rx, path):
            return tpl
    return None


def resolve(obj):
    while isinstance(obj, dict) and "$ref" in obj:
        node = SPEC
        for part in obj["$ref"][2:].split("/"):
            node = node[part]
        obj = node
    return obj


SEEN = set()


def all_refs(node):
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "$ref":
                yield v
            else:
                yield from all_refs(v)
    elif isinstance(node, list):
        for v in node:
            yield from all_refs(v)


def validate(method, path, status, body, ctype=None):
    """None when the response is as documented, else why not.  ctype: the
    media type answered, when a path documents several."""
    tpl = template_of(path.split("?")[0])
    SEEN.add((method.lower(), tpl))
    if tpl is None:
        return None if status == 404 else "no such path in the spec: " + path
    op = SPEC["paths"][tpl].get(method.lower())
    if op is None:
        return None if status == 405 else "%s %s is not in the spec" % (method, tpl)
    resp = op["responses"].get(str(status))
    if resp is None:
        return "status %d is not documented for %s %s" % (status, method, tpl)
    resp = resolve(resp)
    content = resp["content"]
    if ctype and len(content) > 1:
        if ctype not in content:
            return "%s %s %d: %s is not documented" % (method, tpl, status, ctype)
        schema = content[ctype]["schema"]
    else:
        schema = (content.get("application/json") or content["application/x-ndjson"])["schema"]
    root = {"components": SPEC["components"]}
    root.update(schema)
    try:
        jsonschema.validate(body, root, cls=jsonschema.Draft202012Validator,
                            format_checker=jsonschema.FormatChecker())
    except jsonschema.ValidationError as e:
        return "%s %s %d: %s" % (method, tpl, status, e.message)
    return None


# ---- HTTP ---------------------------------------------------------------------

class Client:
    def __init__(self, token):
        self.token = token
        self.conn = http.client.HTTPConnection(HOST.hostname, HOST.port, timeout=60)
        self.last = time.time()

    def call(self, method, path, body=None, raw=None, headers=None):
        h = {}
        if self.token is not None:
            h["Authorization"] = "Bearer " + self.token
        data = raw
        if body is not None:
            data = json.dumps(body).encode()
        if data is not None:
            h["Content-Type"] = "application/json"
        h.update(headers or {})
        # The broker closes kept-alive connections idle for 10 s: start
        # afresh before that, so that any other closed connection is a
        # failure here, never retried away.
        if time.time() - self.last > 8:
            self.conn.close()
        self.conn.request(method, path, body=data, headers=h)
        r = self.conn.getresponse()
        text = r.read()
        self.last = time.time()
        ctype = r.getheader("Content-Type", "")
        why = None
        if ctype == "application/x-ndjson":
            # a stream: every line a record the spec describes
            try:
                obj = [json.loads(line) for line in text.decode().splitlines()]
            except ValueError as e:
                obj, why = None, "a line is not JSON: %s" % e
            for rec in obj or []:
                why = why or validate(method, path, r.status, rec, ctype)
        elif ctype.startswith("text/csv"):
            # RFC 4180, parsed back into rows (dicts by the header)
            try:
                obj = list(csv.DictReader(io.StringIO(text.decode("ascii"), newline="")))
            except (ValueError, csv.Error) as e:
                obj, why = None, "not CSV: %s" % e
            why = why or validate(method, path, r.status, text.decode("ascii", "replace"),
                                  "text/csv")
        else:
            try:
                obj = json.loads(text)
            except ValueError:
                obj = None
            if not ctype.startswith("application/json") or obj is None:
                why = "not JSON (%s): %r" % (ctype, text[:200])
            else:
                why = validate(method, path, r.status, obj, "application/json")
        if why:
            check("%s %s answers as docs/openapi.yaml says" % (method, path), False, why)
        return r.status, obj, r


def expect(what, got, status, code=None):
    st, obj, _ = got
    ok = st == status and (code is None or (obj or {}).get("code") == code)
    check(what, ok, "got %s %s" % (st, json.dumps(obj)[:300]))
    return obj


# ---- the CLIs and the journal -------------------------------------------------

def sbx(tool, *args):
    p = subprocess.run([tool, "--socket", SOCK] + list(args), capture_output=True, text=True,
                       timeout=30)
    return p.returncode, p.stdout.strip(), p.stderr.strip()


def make_token(who, name, expires="30d", scope=None):
    args = (["--as", who] if who else []) + ["token", "create", "--name", name,
                                             "--expires", expires]
    if scope:
        args += ["--scope", scope]
    rc, out, err = sbx(SBXREQ, *args)
    if not check("token %s for %s is made" % (name, who or "root"), rc == 0 and
                 out.startswith("sbxt_"), "rc %d: %s %s" % (rc, out, err)):
        sys.exit(1)
    return out


def journal():
    recs = []
    d = os.path.join(STATE, "journal")
    for f in sorted(os.listdir(d)):
        if f.endswith(".jsonl"):
            for line in open(os.path.join(d, f)):
                try:
                    recs.append(json.loads(line))
                except ValueError:
                    pass
    return recs


def journal_text():
    d = os.path.join(STATE, "journal")
    return "".join(open(os.path.join(d, f)).read() for f in os.listdir(d))


def wait_for(secs, fn):
    end = time.time() + secs
    while time.time() < end:
        if fn():
            return True
        time.sleep(0.05)
    return fn()


# ---- the scenario -----------------------------------------------------------------

def main():
    bad = []
    for ref in all_refs(SPEC):
        try:
            resolve({"$ref": ref})
        except (KeyError, TypeError):
            bad.append(ref)
    check("docs/openapi.yaml: OpenAPI 3.1, every $ref resolves, every operation has responses",
          SPEC.get("openapi", "").startswith("3.1") and not bad and
          all("responses" in op for item in SPEC["paths"].values() for op in item.values()
              if isinstance(op, dict) and "responses" in op or isinstance(op, dict)),
          "unresolved: %s" % bad)
    erin_rw = make_token("erin", "ci-deploy", scope="read,request")
    erin_ro = make_token("erin", "nightly", scope="read")
    erin_ap = make_token("erin", "erin-approves", scope="read,approve")
    frank_ap = make_token("frank", "frank-bot", scope="read,approve")
    alice = make_token("alice", "alice-ci", scope="read,request")
    root = make_token(None, "root-read", scope="read")

    # the token text is shown once and never journaled
    text = journal_text()
    check("no token's secret is in the journal",
          all(t.split("_")[2] not in text for t in (erin_rw, erin_ro, frank_ap)))
    created = [r for r in journal() if r["event"] == "token.created"]
    check("token.created keeps a salted hash, owner, scopes and expiry",
          len(created) == 6 and all(re.match("^[0-9a-f]{64}$", r["secret_hash"]) and
                                    re.match("^[0-9a-f]{32}$", r["secret_salt"]) and
                                    r["expires_at"] for r in created),
          json.dumps(created[:1]))

    # refusals at creation
    rc, out, err = sbx(SBXREQ, "--as", "erin", "token", "create", "--name", "long",
                       "--expires", "60d")
    check("a token longer than the profile's api_token_max (45d) is refused",
          rc == 1 and "45d" in err, "rc %d %s" % (rc, err))
    rc, out, err = sbx(SBXREQ, "--as", "erin", "token", "create", "--name", "aud",
                       "--expires", "1d", "--scope", "audit")
    check("the audit scope is refused to someone neither admin nor auditor",
          rc == 1 and "audit" in err, "rc %d %s" % (rc, err))
    rc, out, err = sbx(SBXREQ, "--as", "erin", "token", "create", "--name", "ci-deploy",
                       "--expires", "1d")
    check("a second live token of the same name is refused", rc == 1, err)
    rc, out, err = sbx(SBXREQ, "--as", "erin", "token", "list", "--json")
    names = sorted(t["name"] for t in json.loads(out)) if rc == 0 else []
    check("token list shows the owner's live tokens, not the secrets",
          names == ["ci-deploy", "erin-approves", "nightly"] and "sbxt_" not in out, out)

    anon, rw, ro, eap, fap, al, rt = (Client(None), Client(erin_rw), Client(erin_ro),
                                      Client(erin_ap), Client(frank_ap), Client(alice),
                                      Client(root))

    # who
    expect("no token: 401", anon.call("GET", "/v1/requests"), 401, "unauthorized")
    bad = Client("sbxt_0123456789abcdef_" + "0" * 64)
    expect("an unknown token: 401", bad.call("GET", "/v1/requests"), 401, "unauthorized")
    forged = Client(erin_rw[:-4] + ("0000" if not erin_rw.endswith("0000") else "1111"))
    expect("a known id with a wrong secret: 401", forged.call("GET", "/v1/token"), 401,
           "unauthorized")
    o = expect("GET /v1/token names the token", rw.call("GET", "/v1/token"), 200)
    check("the token acts as its owner", o and o["owner"] == "erin" and
          o["scopes"] == "read,request", json.dumps(o))

    # roles, check, explain
    o = expect("GET /v1/roles", rw.call("GET", "/v1/roles"), 200)
    check("erin may ask for sandbox-admin", any(r["role"] == "sandbox-admin"
                                                for r in (o or {}).get("roles", [])))
    o = expect("GET /v1/check (the owner)", rw.call("GET", "/v1/check"), 200)
    check("check answers about the owner", o and o["user"] == "erin")
    expect("check about someone else: 403 for a non-admin",
           rw.call("GET", "/v1/check?user=alice"), 403, "refused")
    o = expect("check about someone else as an admin's token",
               rt.call("GET", "/v1/check?user=alice"), 200)
    check("alice may log in (standing)", o and o["allowed"] is True, json.dumps(o))
    check("check is a dry run: no access.checked recorded",
          not any(r["event"] == "access.checked" for r in journal()))
    o = expect("GET /v1/policy/explain", rw.call("GET", "/v1/policy/explain"), 200)
    check("explain lists erin's memberships", o and any(m["role"] == "sandbox-admin"
                                                        for m in o["memberships"]))

    # file a request
    expect("a read-only token cannot file: 403 scope",
           ro.call("POST", "/v1/requests", {"role": "sandbox-admin", "duration": "30m",
                                             "reason": "deploy the release"}), 403, "scope")
    o = expect("POST /v1/requests files a request",
               rw.call("POST", "/v1/requests", {"role": "sandbox-admin", "duration": "30m",
                                                "reason": "deploy the release 1.2"}), 200)
    rid = o["request"]["id"]
    check("it is pending, erin's", o["request"]["state"] == "pending" and
          o["request"]["user"] == "erin")
    rec = [r for r in journal() if r["event"] == "request.created" and r["id"] == rid]
    check("request.created says via api and the token's name (after the reply: durable)",
          rec and rec[0].get("via") == "api" and rec[0].get("token") == "ci-deploy" and
          rec[0]["actor"] == "erin", json.dumps(rec))
    expect("missing role: 400", rw.call("POST", "/v1/requests", {"duration": "1h"}), 400,
           "bad_request")
    expect("not JSON: 400", rw.call("POST", "/v1/requests", raw=b"{nope"), 400, "bad_request")
    expect("a bad duration: 400", rw.call("POST", "/v1/requests", {"role": "sandbox-admin",
                                                                    "duration": "soon"}), 400)
    expect("a role erin may not have: 403",
           rw.call("POST", "/v1/requests", {"role": "prod-data", "reason": "x" * 20}), 403,
           "refused")
    expect("a body over 16 KiB: 413",
           rw.call("POST", "/v1/requests", raw=b"{" + b" " * 20000 + b"}"), 413, "too_large")

    # other people's requests do not exist for them
    expect("another user's request: 404", al.call("GET", "/v1/requests/%d" % rid), 404,
           "not_found")
    expect("cancelling another user's request: 404",
           al.call("POST", "/v1/requests/%d/cancel" % rid, {}), 404, "not_found")
    expect("an unknown endpoint: 404", rw.call("GET", "/v1/nothing"), 404, "not_found")

    # decisions
    expect("a request-scoped token cannot approve: 403 scope",
           rw.call("POST", "/v1/requests/%d/approve" % rid, {}), 403, "scope")
    o = expect("approving one's own request: 403",
               eap.call("POST", "/v1/requests/%d/approve" % rid, {}), 403, "refused")
    check("the refusal says why (own request)", o and "own" in o["message"], json.dumps(o))
    o = expect("the approver sees it in /v1/pending", fap.call("GET", "/v1/pending"), 200)
    check("frank's pending list holds it", o and any(r["id"] == rid for r in o["requests"]))

    # long poll: wait for the approval without blocking anything else
    got = {}

    def poll():
        c = Client(erin_rw)
        t0 = time.time()
        got["r"] = c.call("GET", "/v1/requests/%d?wait=60s" % rid)
        got["took"] = time.time() - t0

    th = threading.Thread(target=poll)
    th.start()
    time.sleep(0.5)
    o = expect("others are served while a long poll waits", rw.call("GET", "/v1/token"), 200)
    o = expect("frank approves through the API",
               fap.call("POST", "/v1/requests/%d/approve" % rid, {"comment": "ok"}), 200)
    check("the grant is active", o and o["request"]["state"] == "active")
    th.join(70)
    st, lp, _ = got.get("r", (0, None, None))
    check("the long poll answers with the decision, long before its 60 s",
          st == 200 and lp["request"]["state"] == "active" and got["took"] < 50,
          "%s %s after %.1fs" % (st, json.dumps(lp)[:200], got.get("took", -1)))
    rec = [r for r in journal() if r["event"] == "request.approval" and r.get("id") == rid]
    check("the approval is recorded as frank, via api, token frank-bot",
          rec and rec[0]["actor"] == "frank" and rec[0].get("via") == "api" and
          rec[0].get("token") == "frank-bot", json.dumps(rec))
    expect("approving it again: 409", fap.call("POST", "/v1/requests/%d/approve" % rid, {}),
           409, "conflict")
    expect("cancelling an active grant: 409",
           rw.call("POST", "/v1/requests/%d/cancel" % rid, {}), 409, "conflict")
    o = expect("GET /v1/grants", rw.call("GET", "/v1/grants"), 200)
    check("erin's grant is listed", o and [r["id"] for r in o["requests"]] == [rid],
          json.dumps(o)[:300])
    o = expect("GET /v1/requests", rw.call("GET", "/v1/requests"), 200)
    check("it is among erin's requests", o and any(r["id"] == rid for r in o["requests"]))
    expect("GET /v1/requests?all=true", rw.call("GET", "/v1/requests?all=true"), 200)
    o = expect("a wait on a decided request answers at once",
               rw.call("GET", "/v1/requests/%d?wait=30s" % rid), 200)

    # extend, cancel the extension
    o = expect("POST extend files an extension",
               rw.call("POST", "/v1/requests/%d/extend" % rid,
                       {"duration": "15m", "reason": "the release is still rolling out"}), 200)
    ext = o["request"]["id"] if o else 0
    check("the extension is pending and names the grant", o and
          o["request"]["extends"] == rid and o["request"]["state"] == "pending")
    o = expect("cancel the extension", rw.call("POST", "/v1/requests/%d/cancel" % ext,
                                                {"reason": "not needed"}), 200)
    check("it is cancelled", o and o["request"]["state"] == "cancelled")
    expect("cancel it again: 409", rw.call("POST", "/v1/requests/%d/cancel" % ext, {}), 409,
           "conflict")

    # drop
    o = expect("drop the grant", rw.call("POST", "/v1/requests/%d/drop" % rid,
                                          {"reason": "done"}), 200)
    check("it is revoked by erin", o and o["request"]["state"] == "revoked" and
          o["request"]["ended_by"] == "erin", json.dumps(o)[:300])
    expect("drop it again: 409", rw.call("POST", "/v1/requests/%d/drop" % rid, {}), 409,
           "conflict")

    # deny; revoke through /v1/grants
    o = expect("another request", rw.call("POST", "/v1/requests", {
        "role": "sandbox-admin", "duration": "20m", "reason": "second deploy attempt"}), 200)
    r2 = o["request"]["id"]
    o = expect("frank denies it", fap.call("POST", "/v1/requests/%d/deny" % r2,
                                           {"reason": "not today"}), 200)
    check("it is denied", o and o["request"]["state"] == "denied")
    o = expect("a third request", rw.call("POST", "/v1/requests", {
        "role": "sandbox-admin", "duration": "20m", "reason": "third deploy attempt"}), 200)
    r3 = o["request"]["id"]
    expect("frank approves it", fap.call("POST", "/v1/requests/%d/approve" % r3, {}), 200)
    expect("erin cannot revoke with a request token: 403 scope",
           rw.call("POST", "/v1/grants/%d/revoke" % r3, {}), 403, "scope")
    o = expect("frank revokes the grant", fap.call("POST", "/v1/grants/%d/revoke" % r3,
                                                   {"reason": "incident over"}), 200)
    check("it is revoked", o and o["request"]["state"] == "revoked")
    expect("revoking it again: 409", fap.call("POST", "/v1/grants/%d/revoke" % r3, {}), 409,
           "conflict")
    check("every request, approval, denial and revocation the API made says via api",
          all(r.get("via") == "api" and r.get("token") for r in journal()
              if r.get("id") in (rid, ext, r2, r3) and r["event"].startswith(("request.", "grant."))
              and r["actor"] in ("erin", "frank")))

    # token.used: once an hour, not once a call
    used = [r for r in journal() if r["event"] == "token.used" and r["token"] == "ci-deploy"]
    check("token.used is recorded once for many calls", len(used) == 1, json.dumps(used))

    # rate limit per token
    rl = Client(make_token("erin", "busy", scope="read"))
    statuses = [rl.call("GET", "/v1/token")[0] for _ in range(400)]
    check("a token calling too fast gets 429", 429 in statuses and statuses[0] == 200,
          str(sorted(set(statuses))))
    st, o, resp = rl.call("GET", "/v1/token")
    if st == 429:
        check("429 says when to come back", resp.getheader("Retry-After") is not None)
    expect("another token is not slowed by it", rw.call("GET", "/v1/token"), 200)

    # revoked token
    tid = json.loads(sbx(SBXREQ, "--as", "erin", "token", "list", "--json")[1])
    tid = [t["token_id"] for t in tid if t["name"] == "nightly"][0]
    rc, out, err = sbx(SBXCTL, "token", "revoke", tid, "--reason", "leaked")
    check("an admin revokes erin's token by id", rc == 0, err)
    expect("a revoked token: 401", ro.call("GET", "/v1/token"), 401, "token_revoked")
    check("token.revoked is recorded", any(r["event"] == "token.revoked" and
                                           r["token_id"] == tid for r in journal()))
    rc, out, err = sbx(SBXREQ, "--as", "alice", "token", "revoke", "ci-deploy")
    check("someone else cannot revoke erin's token", rc != 0, out)
    expect("and it still works", rw.call("GET", "/v1/token"), 200)

    # expired token
    short = Client(make_token("erin", "short", expires="2s", scope="read"))
    expect("a fresh token works", short.call("GET", "/v1/token"), 200)
    time.sleep(2.2)
    expect("an expired token: 401", short.call("GET", "/v1/token"), 401, "token_expired")
    check("token.expired is recorded", wait_for(5, lambda: any(
        r["event"] == "token.expired" and r["token"] == "short" for r in journal())))

    # the owner leaves: the policy (the directory's stand-in here) forgets dave
    dave = Client(make_token("dave", "dave-ci", scope="read"))
    expect("dave's token works", dave.call("GET", "/v1/token"), 200)
    pol = open(POLICY).read()
    pol = pol.replace("developers: [alice, carol, dave]", "developers: [alice, carol]")
    pol = pol.replace("  dave:  { manager: bob }\n", "")
    pol = pol.replace("eligible: { groups: [sre], users: [dave] }", "eligible: { groups: [sre] }")
    open(POLICY, "w").write(pol)
    n = len([r for r in journal() if r["event"] == "policy.loaded"])
    os.kill(BROKER_PID, signal.SIGHUP)
    check("the reload is recorded", wait_for(10, lambda: len(
        [r for r in journal() if r["event"] == "policy.loaded"]) > n))
    expect("once the owner is gone, the token stops: 401", dave.call("GET", "/v1/token"), 401,
           "owner_unknown")

    # access reviews: prod-data's profile (hipaa) reviews it every 90 days
    o = expect("GET /v1/reviews", rw.call("GET", "/v1/reviews"), 200)
    rv = {r["role"]: r for r in (o or {}).get("reviews", [])}
    check("prod-data's review is listed, review_every 90 days",
          "prod-data" in rv and rv["prod-data"]["review_every"] == 90 * 86400, json.dumps(o)[:300])
    dec = {"user": "alice", "role": "prod-data", "comment": "still on the clinical study"}
    expect("a token without approve cannot certify: 403 scope",
           rw.call("POST", "/v1/reviews/certify", dec), 403, "scope")
    o = expect("erin is not an approver of prod-data: 403",
               eap.call("POST", "/v1/reviews/certify", dec), 403, "refused")
    check("the refusal names the approvers", o and "approvers" in o["message"], json.dumps(o))
    o = expect("certifying one's own access: 403",
               eap.call("POST", "/v1/reviews/certify", {"user": "erin", "role": "sandbox-admin",
                                                         "comment": "I still need it"}),
               403, "refused")
    check("the refusal says why (own access)", o and "own" in o["message"], json.dumps(o))
    expect("a decision without a comment: 400",
           fap.call("POST", "/v1/reviews/certify", {"user": "alice", "role": "prod-data"}), 400,
           "bad_request")
    expect("user must be text: 400",
           fap.call("POST", "/v1/reviews/certify", dict(dec, user=5)), 400, "bad_request")
    expect("an unknown role: 404",
           fap.call("POST", "/v1/reviews/certify", dict(dec, role="no-such-role")), 404,
           "not_found")
    n = len(journal())
    o = expect("frank certifies alice's prod-data", fap.call("POST", "/v1/reviews/certify", dec),
               200)
    rec = [r for r in journal()[n:] if r["event"] == "review.certified"]
    check("review.certified is on disk when answered: frank's, via api, token frank-bot",
          rec and rec[0]["actor"] == "frank" and rec[0]["user"] == "alice" and
          rec[0].get("via") == "api" and rec[0].get("token") == "frank-bot", json.dumps(rec))
    o = expect("GET /v1/reviews after it", rw.call("GET", "/v1/reviews"), 200)
    rv = {r["role"]: r for r in (o or {}).get("reviews", [])}
    check("prod-data is reviewed: ok, with its last review and the next due",
          rv.get("prod-data", {}).get("state") == "ok" and "last_review" in rv["prod-data"] and
          "next_due" in rv["prod-data"], json.dumps(o)[:300])
    expect("a token without approve cannot revoke in a review: 403 scope",
           rw.call("POST", "/v1/reviews/revoke", dec), 403, "scope")
    n = len(journal())
    o = expect("frank revokes alice's prod-data in a review",
               fap.call("POST", "/v1/reviews/revoke", dict(dec, comment="the study is over")),
               200)
    rec = [r for r in journal()[n:] if r["event"] == "review.revoked"]
    check("review.revoked is on disk when answered",
          rec and rec[0]["actor"] == "frank" and rec[0]["user"] == "alice" and
          rec[0].get("via") == "api", json.dumps(rec))

    # drift: admins only; a scan of this test's files finds mallory in sudo
    ops = Client(make_token(None, "root-ops", scope="read,approve"))
    expect("a non-admin cannot list drift: 403", rw.call("GET", "/v1/drift"), 403, "refused")
    expect("a read-only token cannot start a scan: 403 scope",
           rt.call("POST", "/v1/drift/scan"), 403, "scope")
    expect("a non-admin cannot start a scan: 403", fap.call("POST", "/v1/drift/scan"), 403,
           "refused")
    o = expect("POST /v1/drift/scan as an admin", ops.call("POST", "/v1/drift/scan"), 200)
    n0 = (o or {}).get("scans", 0)
    end, o = time.time() + 30, None
    while time.time() < end:
        st, o, _ = rt.call("GET", "/v1/drift")
        if st == 200 and o["scans"] > n0 and not o.get("scanning"):
            break
        time.sleep(0.25)
    check("GET /v1/drift: the scan asked for finishes", o and o.get("scans", 0) > n0,
          json.dumps(o)[:300])
    check("GET /v1/drift lists the finding: mallory in the group file's sudo",
          o and any(f["kind"] == "group" and f["subject"] == "mallory" and
                    f.get("file", "").endswith("/group") and "scanned_at" in o
                    for f in o.get("findings", [])), json.dumps(o)[:500])

    # the journal, streamed
    rc, out, err = sbx(SBXREQ, "--as", "frank", "token", "create", "--name", "aud",
                       "--expires", "1d", "--scope", "audit")
    check("frank (not an admin, not in auditors) cannot have the audit scope", rc == 1, err)
    aud = Client(make_token(None, "root-audit", scope="read,audit"))
    expect("a token without the audit scope: 403", rw.call("GET", "/v1/audit"), 403, "scope")
    st, lines, resp = aud.call("GET", "/v1/audit")
    disk = journal()
    check("GET /v1/audit streams the whole journal, in order, as on disk",
          st == 200 and resp.getheader("Content-Type") == "application/x-ndjson" and
          [r["seq"] for r in lines] == [r["seq"] for r in disk][:len(lines)] and
          len(lines) >= len(disk) - 2 and lines == disk[:len(lines)],
          "%s %d lines, %d on disk" % (st, len(lines or []), len(disk)))
    st, lines, _ = aud.call("GET", "/v1/audit?id=%d" % rid)
    check("?id= gives that request's records only",
          st == 200 and lines and all(r.get("id") == rid for r in lines) and
          [r["event"] for r in lines] == [r["event"] for r in disk if r.get("id") == rid],
          json.dumps([r["event"] for r in lines or []]))
    st, lines, _ = aud.call("GET", "/v1/audit?event=token.&user=erin&since=1h")
    check("?event=token.&user=erin&since=1h: erin's token records",
          st == 200 and lines and all(r["event"].startswith("token.") and
                                      "erin" in (r.get("user"), r["actor"]) for r in lines),
          json.dumps(lines)[:300])
    expect("a bad since: 400", aud.call("GET", "/v1/audit?since=yesterday-ish"), 400,
           "bad_request")
    # the same records as one JSON array, and as audit export's CSV
    st, lines, _ = aud.call("GET", "/v1/audit?id=%d" % rid)
    st_j, arr, resp = aud.call("GET", "/v1/audit?id=%d&format=json" % rid)
    check("?format=json: the same records as one JSON array",
          st_j == 200 and resp.getheader("Content-Type") == "application/json" and
          arr == lines, "%s %s" % (st_j, json.dumps(arr)[:300]))
    st_c, rows, resp = aud.call("GET", "/v1/audit?id=%d&format=csv" % rid)
    check("?format=csv: RFC 4180 rows parsed back give the same events, seqs and lines",
          st_c == 200 and resp.getheader("Content-Type").startswith("text/csv") and rows and
          [(int(x["seq"]), x["event"], x["hash"]) for x in rows] ==
          [(r["seq"], r["event"], r["hash"]) for r in lines] and
          [json.loads(x["record"]) for x in rows] == lines,
          "%s %s" % (st_c, json.dumps(rows)[:300]))
    st_c, rows, _ = aud.call("GET", "/v1/audit?id=999999&format=json")
    check("?format=json with nothing to give: an empty array", st_c == 200 and rows == [],
          "%s %s" % (st_c, rows))
    expect("a bad format: 400", aud.call("GET", "/v1/audit?format=xml"), 400, "bad_request")

    # the alerts: frank's denial above raised request-denied
    expect("alerts need the audit scope: 403", rw.call("GET", "/v1/alerts"), 403, "scope")
    st, lines, resp = aud.call("GET", "/v1/alerts")
    raised = [r for r in journal() if r["event"] == "alert.raised"]
    check("GET /v1/alerts streams the alert.raised records, the denial's among them",
          st == 200 and resp.getheader("Content-Type") == "application/x-ndjson" and lines and
          lines == raised[:len(lines)] and len(lines) >= len(raised) - 1 and
          any(r["rule"] == "request-denied" and r.get("user") == "erin" for r in lines),
          "%s %s" % (st, json.dumps(lines)[:300]))
    st, lines, _ = aud.call("GET", "/v1/alerts?since=1h&event=request.created&user=nobody")
    check("?since=1h keeps them; other filters do not change the event",
          st == 200 and lines and all(r["event"] == "alert.raised" for r in lines),
          json.dumps(lines)[:300])
    st, lines, _ = aud.call("GET", "/v1/alerts?since=2099-01-01T00:00:00Z")
    check("?since= after them: none", st == 200 and lines == [], json.dumps(lines)[:300])
    expect("alerts: a bad since: 400", aud.call("GET", "/v1/alerts?since=soonish"), 400,
           "bad_request")

    # per-day counts (tests/integration/api_stats.sh tests them): the shape only
    st, obj, _ = aud.call("GET", "/v1/stats?days=2")
    check("GET /v1/stats answers two days", st == 200 and len(obj.get("per_day", [])) == 2,
          json.dumps(obj)[:300])

    # the event stream (tests/integration/events.sh tests it): its head only
    c = http.client.HTTPConnection(HOST.hostname, HOST.port, timeout=10)
    c.request("GET", "/v1/events", headers={"Authorization": "Bearer " + rw.token})
    r = c.getresponse()
    check("GET /v1/events answers a text/event-stream", r.status == 200 and
          r.getheader("Content-Type", "").startswith("text/event-stream"))
    c.close()
    SEEN.add(("get", "/v1/events"))
    ops = {(m, p) for p, item in SPEC["paths"].items() for m in item
           if m in ("get", "post", "put", "delete", "patch")}
    check("every operation of docs/openapi.yaml was called", ops <= SEEN,
          "not called: %s" % sorted(ops - SEEN))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
