#!/usr/bin/python3
"""The dashboard in headless Chromium (tests/integration/dashboard.sh runs
this).  Prints PASS/FAIL lines; screenshots go to $SHOTS."""
import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

API = os.environ["API"]
SHOTS = os.environ["SHOTS"]
USER = os.environ["WEBUSER"]
PASSWORD = os.environ["PASSWORD"]
failed = 0


def check(name, ok, detail=""):
    global failed
    print(("PASS " if ok else "FAIL ") + name, flush=True)
    if not ok:
        failed += 1
        if detail:
            print("  " + str(detail)[:600].replace("\n", " | "), flush=True)


def sbx_request(*args):
    r = subprocess.run([os.environ["SBXREQ"], "--socket", os.environ["SOCK"], *args],
                       capture_output=True, text=True, timeout=30)
    return r.returncode, r.stdout + r.stderr


def wait_for(d, what, secs, pred):
    try:
        return WebDriverWait(d, secs, poll_frequency=0.1).until(lambda _: pred())
    except Exception:
        return None


def chart_today(d):
    """Today's row of the chart's table (its text alternative): {column: text}."""
    return d.execute_script("""
        const t = document.getElementById('chart-table');
        const row = document.getElementById('chart-day-' + arguments[0]);
        if (!t || !row) return null;
        const heads = [...t.querySelectorAll('thead th')].map((x) => x.textContent);
        const o = {};
        [...row.children].forEach((x, i) => { o[heads[i]] = x.textContent; });
        return o;""", time.strftime("%Y-%m-%d", time.gmtime()))


def main():
    o = webdriver.ChromeOptions()
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,800"):
        o.add_argument(a)
    o.binary_location = "/usr/bin/chromium"
    o.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    d = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=o)
    try:
        run(d)
    finally:
        try:
            errors = [e for e in d.get_log("browser") if e.get("level") == "SEVERE"
                      and "favicon" not in e.get("message", "")
                      and "401" not in e.get("message", "")]
            check("the page logs no errors (CSP, script)", not errors, errors)
        except Exception as e:
            print("  no browser log: %s" % e)
        d.quit()


def run(d):
    d.get(API + "/")
    form = wait_for(d, "sign-in form", 10,
                    lambda: d.find_element(By.ID, "signin").is_displayed())
    check("a visitor without a session sees the sign-in form", bool(form))
    d.save_screenshot(os.path.join(SHOTS, "dashboard-1-signin.png"))
    # With the keyboard only: type, Tab, type, Enter.
    user = d.find_element(By.ID, "signin-user")
    user.send_keys(USER, Keys.TAB, PASSWORD, Keys.ENTER)
    ok = wait_for(d, "signed in", 20, lambda: d.find_element(By.ID, "app").is_displayed())
    check("signing in with the unix password (PAM, sbx-web) opens the dashboard", bool(ok),
          d.find_element(By.ID, "signin-error").text)
    if not ok:
        return
    check("the page names the person signed in", USER in d.find_element(By.ID, "person").text)

    # The chart counts from the journal: the grants made before the page
    # was opened are there (GRANTS_TODAY, among them dave's sandbox-admin).
    before = os.environ["GRANTS_TODAY"]
    row = wait_for(d, "chart", 15, lambda: (chart_today(d) or {}).get("Grants") == before)
    today = chart_today(d) or {}
    check("the chart's table shows today's %s grant(s) made before the page opened, "
          "sandbox-admin among them" % before,
          bool(row) and int(today.get("sandbox-admin", "0")) >= 1, today)
    svg = d.find_elements(By.CSS_SELECTOR, "#chart svg")
    check("the chart is an SVG image described by the table",
          bool(svg) and svg[0].get_attribute("role") == "img" and
          svg[0].get_attribute("aria-describedby") == "chart-table" and
          "Grants per day" in (svg[0].get_attribute("aria-label") or ""),
          svg and svg[0].get_attribute("outerHTML")[:300])
    alerts = wait_for(d, "alerts", 10, lambda: "request-denied" in
                      d.find_element(By.ID, "alerts").text)
    check("an auditor sees the alert raised before the page opened",
          bool(alerts), d.find_element(By.ID, "admin").text)
    d.find_element(By.CSS_SELECTOR, "#chart-data summary").click()
    time.sleep(0.3)
    d.save_screenshot(os.path.join(SHOTS, "dashboard-1b-chart.png"))
    time.sleep(0.5)  # the event stream is open

    rc, out = sbx_request("--as", "erin", "sandbox-admin", "--for", "1m",
                          "--reason", "dashboard browser test")
    m = re.search(r"request (\d+):", out)
    check("sbx-request files erin's request", rc == 0 and m, out)
    if not m:
        return
    rid = m.group(1)
    t0 = time.time()
    row = wait_for(d, "pending row", 10, lambda: d.find_elements(By.ID, "approve-" + rid))
    check("the request appears under 'Waiting for me' without a reload", bool(row))
    if row:
        print("  appeared after %.0f ms" % ((time.time() - t0) * 1000))
    pending = d.find_element(By.ID, "pending").text
    check("its row shows who asks, for what and why",
          "erin" in pending and "sandbox-admin" in pending and "dashboard browser test" in pending,
          pending)
    feed = d.find_element(By.ID, "feed-list").text
    check("the live feed shows request.created", "request.created" in feed, feed)
    d.save_screenshot(os.path.join(SHOTS, "dashboard-2-pending.png"))
    if not row:
        return
    d.find_element(By.ID, "approve-" + rid).click()
    grant = wait_for(d, "grant row", 10, lambda: d.find_elements(By.ID, "countdown-" + rid))
    check("after Approve the grant is listed with a countdown", bool(grant))
    if not grant:
        return
    text = d.find_element(By.ID, "grant-" + rid).text
    check("the grant's row shows erin, the role and the time left",
          "erin" in text and "sandbox-admin" in text and re.search(r"\d+s", text), text)
    first = d.find_element(By.ID, "countdown-" + rid).text
    time.sleep(2.2)
    second = d.find_element(By.ID, "countdown-" + rid).text
    check("the countdown counts down", first != second, (first, second))
    check("the request left 'Waiting for me'", not d.find_elements(By.ID, "approve-" + rid))
    more = str(int(before) + 1)
    counted = wait_for(d, "chart +1", 10, lambda: (chart_today(d) or {}).get("Grants") == more)
    check("the chart counts the new grant from the stream (%s today)" % more, bool(counted),
          chart_today(d))
    d.save_screenshot(os.path.join(SHOTS, "dashboard-3-grant.png"))
    d.set_window_size(390, 844)
    time.sleep(0.3)
    d.save_screenshot(os.path.join(SHOTS, "dashboard-4-phone.png"))
    width = d.execute_script("return [document.documentElement.scrollWidth, "
                             "document.documentElement.clientWidth]")
    check("at a phone's width nothing scrolls sideways", width[0] <= width[1], width)
    d.set_window_size(1280, 800)

    # A forged cross-site POST with this browser's session: the cookie is
    # SameSite=Strict, and without the CSRF token the broker refuses.
    cookie = next((c for c in d.get_cookies() if c["name"] == "sbx_session"), None)
    check("the session cookie is HttpOnly and SameSite=Strict",
          cookie and cookie.get("httpOnly") and cookie.get("sameSite") == "Strict", cookie)
    req = urllib.request.Request(API + "/v1/requests/%s/revoke" % rid, data=b"{}", method="POST",
                                 headers={"Cookie": "sbx_session=" + (cookie or {}).get("value", ""),
                                          "Origin": "http://attacker.example",
                                          "Content-Type": "application/json"})
    try:
        urllib.request.urlopen(req, timeout=5)
        code = 200
    except urllib.error.HTTPError as e:
        code = e.code
    check("a forged cross-site POST with the cookie is refused (403)", code == 403, code)

    # Request access: the roles one is eligible for; sandbox-readonly is
    # granted at once, so it shows in "My requests" and among the grants.
    sel = d.find_element(By.ID, "ask-role")
    roles = [o.get_attribute("value") for o in sel.find_elements(By.TAG_NAME, "option")]
    check("Request access offers the roles one is eligible for",
          "sandbox-readonly" in roles and "prod-data" not in roles, roles)
    if "sandbox-readonly" in roles:
        for o in sel.find_elements(By.TAG_NAME, "option"):
            if o.get_attribute("value") == "sandbox-readonly":
                o.click()
        d.find_element(By.ID, "ask-duration").send_keys("10m")
        d.find_element(By.ID, "ask-reason").send_keys("reading logs from the dashboard")
        d.find_element(By.ID, "ask-submit").click()
        mine = wait_for(d, "my request", 10, lambda: "sandbox-readonly" in
                        d.find_element(By.ID, "mine").text and "active" in
                        d.find_element(By.ID, "mine").text)
        check("the form files it and 'My requests' shows it active", bool(mine),
              d.find_element(By.ID, "ask-result").text)
        d.save_screenshot(os.path.join(SHOTS, "dashboard-6-asked.png"))

    gone = wait_for(d, "grant gone", 90, lambda: not d.find_elements(By.ID, "grant-" + rid))
    check("at its expiry the grant disappears", bool(gone))
    feed = d.find_element(By.ID, "feed-list").text
    check("and the feed shows grant.expired", "grant.expired" in feed, feed[:300])
    d.save_screenshot(os.path.join(SHOTS, "dashboard-5-expired.png"))


main()
sys.exit(1 if failed else 0)
