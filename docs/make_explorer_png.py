"""Regenerate docs/explorer.png, the explorer screenshot in the README and docs.

Usage (needs playwright and Debian's chromium, as the browser tests)::

    .venv/bin/python docs/make_explorer_png.py

The tutorial's model, its what-if tab with Site4 chosen, 1280 pixels wide.
"""

import os
import tempfile
from pathlib import Path

from playwright.sync_api import sync_playwright

from skmixed import MixedLinearRegressor, explore
from skmixed.datasets import load_biomass

OUT = Path(__file__).resolve().parent / "explorer.png"
CHROMIUM = os.environ.get("SKMIXED_CHROMIUM", "/usr/bin/chromium")


def main():
    X, y, site = load_biomass(return_X_y_groups=True)
    model = MixedLinearRegressor(random_slopes=["Temp"]).fit(X, y, groups=site)
    with tempfile.TemporaryDirectory() as folder:
        page_path = explore(model, X, y, site, path=Path(folder) / "explorer.html")
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=CHROMIUM, args=["--no-sandbox"]
            )
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(page_path.as_uri() + "#what-if")
            page.fill('[data-feature="Temp"]', "1.0")
            page.fill('[data-feature="N"]', "0.5")
            page.select_option('[data-factor="Site"]', label="Site4")
            page.evaluate("window.scrollTo(0, 0)")
            page.screenshot(path=str(OUT), full_page=True)
            browser.close()
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
