#!/usr/bin/python3
"""Open an HTML review report in a real headless Chromium, take a screenshot
and print what the page shows as one JSON object (tests/integration/
review_report.sh asserts on it).

    review_html.py REPORT.html SHOT.png

Exit 0 with the JSON on stdout, 77 when Chromium, chromedriver or selenium
is missing (the caller prints SKIP), 1 on any other failure."""
import base64
import json
import os
import sys

try:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
except ImportError as e:
    print(f"selenium is missing ({e}): apt-get install python3-selenium", file=sys.stderr)
    sys.exit(77)

CHROMIUM = "/usr/bin/chromium"
DRIVER = "/usr/bin/chromedriver"


def main():
    report, shot = sys.argv[1], sys.argv[2]
    for p in (CHROMIUM, DRIVER):
        if not os.access(p, os.X_OK):
            print(f"{p} is missing: apt-get install chromium chromium-driver", file=sys.stderr)
            sys.exit(77)
    o = webdriver.ChromeOptions()
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,1000"):
        o.add_argument(a)
    o.binary_location = CHROMIUM
    d = webdriver.Chrome(service=Service(DRIVER), options=o)
    try:
        d.get("file://" + os.path.abspath(report))
        facts = {
            "title": d.title,
            "text": d.find_element(By.TAG_NAME, "body").text,
            "summary": {e.get_attribute("id"): e.text
                        for e in d.find_elements(By.CSS_SELECTOR, "#summary dd")},
            "flagged_rows": [[td.text for td in tr.find_elements(By.TAG_NAME, "td")]
                             for tr in d.find_elements(By.CSS_SELECTOR, "#flagged tbody tr")],
            "all_rows": len(d.find_elements(By.CSS_SELECTOR, "#all tbody tr")),
            "chart_bars": len(d.find_elements(By.CSS_SELECTOR, "#chart rect title")),
            "chart_width": d.find_element(By.ID, "chart").size["width"],
            # Anything fetched besides the page itself (scripts, fonts, images).
            "resources": d.execute_script(
                "return performance.getEntriesByType('resource').map(e => e.name)"),
            "scripts": len(d.find_elements(By.TAG_NAME, "script")),
            "bold_elements": len(d.find_elements(By.TAG_NAME, "b")),
        }
        d.save_screenshot(shot)
        # Printable: Chromium's own print to PDF, A4 landscape.
        from selenium.webdriver.common.print_page_options import PrintOptions
        po = PrintOptions()
        po.orientation = "landscape"
        pdf = base64.b64decode(d.print_page(po))
        facts["pdf_magic"] = pdf[:5].decode("latin-1")
        facts["pdf_pages"] = pdf.count(b"/Type /Page") - pdf.count(b"/Type /Pages")
    finally:
        d.quit()
    json.dump(facts, sys.stdout)


if __name__ == "__main__":
    main()
