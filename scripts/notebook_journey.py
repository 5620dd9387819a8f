"""A notebook user's journey in headless Chromium (for `make demo` and the notebook benchmark):
log in to the hub, pick a queue and 1 CPU in the form, click Start, wait until JupyterLab has
loaded, then stop the server from the hub's home page (which cancels the Slurm job).

    python scripts/notebook_journey.py URL USER --queue compute --out DIR   (password on stdin)

Prints one JSON line: seconds from the click on Start to JupyterLab loaded, and the screenshots.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--window-size=1280,860")


def journey(url: str, user: str, password: str, queue: str, out: Path) -> dict:
    options = webdriver.ChromeOptions()
    for flag in FLAGS:
        options.add_argument(flag)
    options.binary_location = "/usr/bin/chromium"
    browser = webdriver.Chrome(service=Service(executable_path="/usr/bin/chromedriver"), options=options)
    out.mkdir(parents=True, exist_ok=True)
    shots = {}
    try:
        def wait(selector: str, timeout: float = 120):
            return WebDriverWait(browser, timeout).until(
                expected_conditions.presence_of_element_located((By.CSS_SELECTOR, selector)))

        browser.get(f"{url}/hub/login")
        browser.find_element(By.ID, "username_input").send_keys(user)
        browser.find_element(By.ID, "password_input").send_keys(password)
        browser.find_element(By.ID, "login_submit").click()
        wait("#spawn_form")
        browser.find_element(By.CSS_SELECTOR, f"input[name=queue][value={queue}]").click()
        cpus = browser.find_element(By.ID, "hpctool-cpus")
        cpus.clear()
        cpus.send_keys("1")
        shots["form"] = str(out / "form.png")
        browser.save_screenshot(shots["form"])
        clicked = time.monotonic()
        browser.find_element(By.CSS_SELECTOR, "#spawn_form button[type=submit]").click()
        wait("#jp-main-dock-panel")
        seconds = time.monotonic() - clicked
        time.sleep(1.5)  # JupyterLab paints its launcher
        shots["jupyterlab"] = str(out / "jupyterlab.png")
        browser.save_screenshot(shots["jupyterlab"])
        browser.get(f"{url}/hub/home")
        wait("#stop").click()
        WebDriverWait(browser, 60).until(lambda b: not b.find_element(By.ID, "stop").is_displayed())
        return {"seconds": round(seconds, 2), "screenshots": shots}
    finally:
        browser.quit()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("url")
    parser.add_argument("user")
    parser.add_argument("--queue", default="compute")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    password = sys.stdin.readline().rstrip("\n")  # never on the command line
    print(json.dumps(journey(args.url, args.user, password, args.queue, args.out)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
