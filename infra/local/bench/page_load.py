"""How fast the chat page is ready, in Chromium, against a running stack (make dev):

    ~/.cache/chat-backend/web-tests-*/venv/bin/python infra/local/bench/page_load.py [URL] [-n N]

Each of N cold loads (a new browser context: no cache, no session) measures the page's load
event, then, from the click on a user, when the first history page is on screen and when the
socket is live (caught up). Prints the median and the maximum of each."""

import argparse
import shutil
import statistics

from playwright.sync_api import sync_playwright

MARKS = """() => {
  window.__t0 = performance.now();
  window.__marks = {};
  const mark = (name, done) => { if (done && !(name in window.__marks)) window.__marks[name] = performance.now() - window.__t0; };
  new MutationObserver(() => {
    mark("history", document.querySelectorAll("#messages li").length > 0);
    mark("live", document.getElementById("connection").dataset.state === "live");
  }).observe(document.body, { subtree: true, childList: true, attributes: true });
}"""


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", nargs="?", default="http://127.0.0.1:8000")
    parser.add_argument("-n", type=int, default=15)
    parser.add_argument("--user", type=int, default=1)
    args = parser.parse_args()
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        runs = []
        for _ in range(args.n + 1):
            context = browser.new_context()
            page = context.new_page()
            page.goto(args.url.rstrip("/") + "/")
            user = page.locator(f'#users button[data-user-id="{args.user}"]')
            user.wait_for()
            load = page.evaluate("performance.getEntriesByType('navigation')[0].loadEventEnd")
            page.evaluate(MARKS)
            user.click()
            page.wait_for_function("'live' in window.__marks", timeout=30_000)
            marks = page.evaluate("window.__marks")
            shown = page.locator("#messages li").count()
            runs.append({"load": load, **marks})
            context.close()
        browser.close()
    runs = runs[1:]  # the first warms the browser and the functions
    print(f"{args.url}: {args.n} cold loads, {shown} messages on the first page")
    for name, label in (("load", "load event"), ("history", "click -> history shown"), ("live", "click -> live")):
        values = [r[name] for r in runs]
        print(f"  {label:24} p50 {statistics.median(values):6.0f} ms   max {max(values):6.0f} ms")


if __name__ == "__main__":
    main()
