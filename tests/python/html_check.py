"""Opens an HTML report of `audience compare` in headless Chromium (Debian's, driven by
Playwright) and checks what a reader would see:

- no console errors, no page errors, and no request other than the file itself (the page's
  Content-Security-Policy should make any other request impossible; this counts them anyway);
- on the gains and ROC charts, every rule's point is drawn where the JSON report of the same run
  says (its share of E and of the conversions; its false and true positive rates), within one
  pixel, measured from the rendered axis ticks rather than from the SVG's own coordinates;
- a screenshot of the whole page, kept as a test artefact.

usage: html_check.py REPORT.html REPORT.json SCREENSHOT.png
Prints one JSON object with what it measured; exits non-zero on the first failed check.
"""

import json
import os
import sys

from playwright.sync_api import sync_playwright

CHROMIUM = os.environ.get("AUDIENCE_CHROMIUM", "/usr/bin/chromium")
# Without these, Chromium phones home at start-up (updates, sync, field trials).
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
]

# Every tick and rule point of a chart, in CSS pixels of the rendered page.
GEOMETRY = """(id) => {
  const svg = document.getElementById(id);
  if (!svg) return null;
  const centre = (el) => { const r = el.getBoundingClientRect();
                           return [r.left + r.width / 2, r.top + r.height / 2]; };
  const ticks = [...svg.querySelectorAll('line.tick')].map(t => ({
      axis: t.dataset.axis, value: parseFloat(t.dataset.value), at: centre(t) }));
  const points = [...svg.querySelectorAll('circle[data-rule]')].map(c => ({
      rule: c.dataset.rule, x: parseFloat(c.dataset.x), y: parseFloat(c.dataset.y),
      at: centre(c) }));
  return { ticks, points };
}"""


def fail(message):
    print(json.dumps({"ok": False, "error": message}))
    sys.exit(1)


def axis_map(ticks, axis, coordinate):
    """The linear map value -> pixel of one axis, from its first and last rendered ticks."""
    marks = sorted((t["value"], t["at"][coordinate]) for t in ticks if t["axis"] == axis)
    if len(marks) < 2:
        fail(f"fewer than two {axis} ticks")
    (v0, p0), (v1, p1) = marks[0], marks[-1]
    scale = (p1 - p0) / (v1 - v0)
    # Every tick in between must sit on the same line, or the axis is not linear.
    for v, p in marks:
        if abs(p0 + (v - v0) * scale - p) > 0.5:
            fail(f"{axis} tick {v} drawn at {p}, off the line through the end ticks")
    return lambda v: p0 + (v - v0) * scale


def check_chart(page, chart, expected):
    geometry = page.evaluate(GEOMETRY, chart)
    if geometry is None:
        fail(f"no chart #{chart}")
    to_x = axis_map(geometry["ticks"], "x", 0)
    to_y = axis_map(geometry["ticks"], "y", 1)
    drawn = {p["rule"]: p for p in geometry["points"]}
    if set(drawn) != set(expected):
        fail(f"#{chart} draws rules {sorted(drawn)}, the report has {sorted(expected)}")
    worst = 0.0
    for rule, (x, y) in expected.items():
        p = drawn[rule]
        if p["x"] != x or p["y"] != y:
            fail(f"#{chart} {rule}: data-x/y {p['x']},{p['y']} but the JSON says {x},{y}")
        dx = abs(p["at"][0] - to_x(x))
        dy = abs(p["at"][1] - to_y(y))
        worst = max(worst, dx, dy)
        if dx > 1.0 or dy > 1.0:
            fail(f"#{chart} {rule}: drawn {dx:.2f} px, {dy:.2f} px from where its numbers put it")
    return worst


def main():
    html, report_json, screenshot = sys.argv[1:4]
    report = json.load(open(report_json))
    gains = {}
    roc = {}
    for rule in report["rules"]:
        if rule.get("rule_tpr") is not None:
            gains[rule["name"]] = (rule["share"], rule["rule_tpr"])
            if rule.get("rule_fpr") is not None:
                roc[rule["name"]] = (rule["rule_fpr"], rule["rule_tpr"])

    url = "file://" + os.path.abspath(html)
    requests, problems = [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        page.on("request", lambda r: requests.append(r.url))
        page.on("console", lambda m: m.type in ("error", "warning") and problems.append(f"console {m.type}: {m.text}"))
        page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
        page.goto(url, wait_until="load")
        page.wait_for_timeout(200)
        worst = max(check_chart(page, "gains", gains), check_chart(page, "roc", roc))
        # What a reader sees first: the title, then any warning, before the charts.
        headline = page.locator("h1").inner_text()
        page.screenshot(path=screenshot, full_page=True)
        # The page must also print (to PDF, as a reader's "Save as PDF" does).
        pdf = page.pdf(format="A4")
        browser.close()

    others = [u for u in requests if u != url]
    if others:
        fail(f"the page made requests: {others}")
    if problems:
        fail("; ".join(problems))
    print(json.dumps({
        "ok": True,
        "headline": headline,
        "rules_checked": len(gains),
        "worst_pixel_error": round(worst, 3),
        "pdf_bytes": len(pdf),
        "requests": len(requests),
    }))


if __name__ == "__main__":
    main()
