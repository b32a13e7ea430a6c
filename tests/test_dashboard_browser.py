"""The Dashboard in a real browser (Playwright + Debian chromium) at 1280x800 and at 400x800: the four
question panels with their answers, figure titles inside their figures, no sideways scrolling of the
page, a rows table that fits its block; saves its screenshot (``MEDSAM_SCREENSHOTS=assets`` refreshes the README's)."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import chromium, served
from medsam.dashboard import load_results
from medsam.dashboard.answers import QUESTIONS, build_answers
from medsam.ui import RESULTS, build
from medsam.ui.dashboard_tab import SECTIONS

# Each drawn figure's title (and, for the panels, each plot title) against the figure's box:
# the edges by which it sticks out, in px (a cut title sticks out: plotly never wraps titles).
TITLES_OUTSIDE = """() => {
  const out = [];
  for (const plot of document.querySelectorAll('[id^=dash-] .js-plotly-plot')) {
    const box = plot.getBoundingClientRect();
    if (!box.width) continue;
    const id = plot.closest('[id^=dash-]').id;
    const panel = plot.closest('#dash-questions') !== null;
    for (const title of plot.querySelectorAll(panel ? '.gtitle, .annotation-text' : '.gtitle')) {
      const t = title.getBoundingClientRect();
      const over = Math.max(box.left - t.left, t.right - box.right, box.top - t.top, 0);
      if (over > 0.5) out.push(`${id}: "${title.textContent.slice(0, 40)}" sticks out by ${over.toFixed(1)} px`);
    }
  }
  return out;
}"""
DRAWN = """ids => ids.every(id => { const p = document.querySelector(`#${id} .js-plotly-plot`);
  return p && p.getBoundingClientRect().width > 0 && p.querySelector('.gtitle'); })"""


@pytest.fixture(scope="module")
def app_url():
    with served(build()) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    with chromium() as browser:
        yield browser


@pytest.fixture(scope="module")
def expected() -> dict[str, str]:
    """The answers as the app computes them for the full selection."""
    results = load_results(RESULTS)
    if results.benchmark.empty:
        pytest.skip("no benchmark results in results/")
    _, answers = build_answers(results.benchmark, results.published)
    return {key: answer.text for key, answer in answers.items()}


def _dashboard(browser, app_url: str, width: int):
    """A new page of the given width on the Dashboard tab, the four panels drawn; ``page.errors``
    collects the page's script errors (plotly.js throws when it cannot draw a figure)."""
    page = browser.new_page(viewport={"width": width, "height": 800})
    page.errors = []
    page.on("pageerror", lambda error: page.errors.append(str(error)))
    page.goto(app_url)
    page.get_by_role("tab", name="Dashboard").click()
    page.wait_for_function(DRAWN, arg=[f"dash-{key}" for key in QUESTIONS], timeout=60_000)
    page.wait_for_timeout(500)  # plotly relayouts once more after the first draw
    return page


def _panels_answered(page, expected: dict[str, str]) -> None:
    for key, question in QUESTIONS.items():
        text = " ".join(page.locator(f"#dash-answer-{key}").inner_text().split())
        assert text == f"{question} {expected[key]}", key
        assert page.locator(f"#dash-{key} .main-svg").first.is_visible(), key


def _open_sections(page) -> None:
    """Open "More figures" and each inner tab in turn (a narrow page lists some under "More tabs"),
    checking the titles of the figures it draws."""
    page.locator("#dash-more").get_by_text("More figures").click()
    for name in SECTIONS:
        tab = page.locator("#dash-sections [role=tab]", has_text=name)
        if not tab.count():
            page.locator("#dash-sections button[aria-label='More tabs']").click()
            tab = page.locator("#dash-sections .overflow-dropdown button", has_text=name)
        tab.click()
        page.wait_for_function(DRAWN, arg=[f"dash-{figure}" for figure in SECTIONS[name]], timeout=60_000)
        page.wait_for_timeout(300)
        assert page.evaluate(TITLES_OUTSIDE) == [], name


def _select_no_model(page) -> None:
    """Remove every model from the filter, the detailed figures of the first section shown: the
    panels and those figures say that nothing is selected (plotly.js redraws each full figure as an
    empty one, which failed while legends were placed on the whole figure)."""
    page.locator("#dash-sections [role=tab]", has_text="Overview").click()
    page.wait_for_function(DRAWN, arg=["dash-modality", "dash-published"], timeout=60_000)
    page.locator("#dash-filters").get_by_text("Filters").first.click()
    for _ in range(page.locator("#dash-models .token").count()):
        page.locator("#dash-models .token .token-remove").first.click()
    say_nothing = "ids => ids.every(id => document.querySelector(`#${id}`).textContent.includes('Nothing to show'))"
    page.wait_for_function(say_nothing, arg=["dash-summary", *(f"dash-answer-{key}" for key in QUESTIONS),
                                             *(f"dash-{key}" for key in QUESTIONS), "dash-modality", "dash-published"],
                           timeout=60_000)
    assert "0 rows" in page.locator("#dash-summary").inner_text()


def _no_sideways_scroll(page, width: int) -> None:
    scroll = page.evaluate("() => document.documentElement.scrollWidth")
    assert scroll <= width, f"the page scrolls sideways at {width} px: {scroll} px wide"


def test_dashboard_at_1280(browser, app_url: str, expected: dict[str, str], screenshots: Path) -> None:
    page = _dashboard(browser, app_url, 1280)
    _panels_answered(page, expected)
    where, prompt = (page.locator(f"#dash-question-{key}").bounding_box() for key in ("where", "prompt"))
    assert where["y"] == prompt["y"] and where["x"] < prompt["x"], "two panels side by side"
    assert page.locator("#dash-where").bounding_box()["y"] < 800, "the first panels start on the first screen"
    assert page.evaluate(TITLES_OUTSIDE) == []
    _no_sideways_scroll(page, 1280)
    page.screenshot(path=str(screenshots / "dashboard.png"), full_page=True)
    _open_sections(page)
    page.locator("#dash-rows").get_by_text("Rows").click()
    viewport = page.locator("#dash-table .virtual-table-viewport")
    viewport.wait_for()
    assert viewport.evaluate("e => e.scrollWidth <= e.clientWidth"), "the rows table is wider than its block"
    _select_no_model(page)
    assert page.errors == []
    page.close()


def test_dashboard_at_400(browser, app_url: str, expected: dict[str, str]) -> None:
    page = _dashboard(browser, app_url, 400)
    _panels_answered(page, expected)
    where, prompt = (page.locator(f"#dash-question-{key}").bounding_box() for key in ("where", "prompt"))
    assert where["x"] == prompt["x"] and where["y"] < prompt["y"], "one panel per line"
    assert not page.locator("#dash-models").is_visible(), "the filters start collapsed"
    assert page.evaluate(TITLES_OUTSIDE) == []
    _no_sideways_scroll(page, 400)
    _open_sections(page)
    page.locator("#dash-rows").get_by_text("Rows").click()
    page.locator("#dash-table .virtual-table-viewport").wait_for()
    _no_sideways_scroll(page, 400)  # the table scrolls inside its own block
    assert page.errors == []
    page.close()
