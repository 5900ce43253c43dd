"""The explore page in a real browser: headless Chromium driven by Selenium.

Needs Chromium and its driver (Debian: ``apt-get install chromium chromium-driver``; `.ci/run`
installs them). Without them these tests are skipped, unless ``SKPHOTOZ_BROWSER_TESTS=require``
is set (as `.ci/run` does), in which case they fail.
"""

import io
import os
import shutil

import numpy as np
import pytest

pytest.importorskip("flask")
webdriver = pytest.importorskip("selenium.webdriver")

from selenium.common.exceptions import TimeoutException  # noqa: E402
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

from skphotoz.explore import Explorer, Server  # noqa: E402
from tests.helpers import explore_data  # noqa: E402

N = 150


def _browser_paths():
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if chromium and driver:
        return chromium, driver
    message = "headless browser tests need Debian's chromium and chromium-driver packages"
    if os.environ.get("SKPHOTOZ_BROWSER_TESTS") == "require":
        pytest.fail(message + " (SKPHOTOZ_BROWSER_TESTS=require)")
    pytest.skip(message)


@pytest.fixture(scope="module")
def explorer(tmp_path_factory):
    archive, _, embeddings, model = explore_data(tmp_path_factory.mktemp("browser"), N, seed=5)
    return Explorer(
        archive, embeddings=embeddings, model=model, deredden=True, cache_dir=None,
        progress=False,
    )  # fmt: skip


@pytest.fixture(scope="module")
def server(explorer):
    with Server(explorer) as running:
        yield running


@pytest.fixture(scope="module")
def browser():
    chromium, driver_path = _browser_paths()
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in (
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--no-first-run", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--disable-quic", "--window-size=1400,1000",
    ):  # fmt: skip
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def wait_for(driver, condition, what, timeout=30):
    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.05).until(lambda d: condition(d))
    except TimeoutException:
        error = driver.find_element(By.ID, "error").text
        raise AssertionError(f"timed out waiting for {what}; the page's error: {error!r}") from None


def open_page(driver, server):
    """Load the page afresh and wait until its script has finished starting.

    The old window is marked first, so that a poll which still reaches the previous page (whose
    state is already ready) does not count, and a poll that reaches the new page before its
    script ran (no ``window.skphotozExplore`` yet) waits instead of raising.
    """
    driver.execute_script("window.skphotozOldPage = true")
    driver.get(server.url)
    wait_for(
        driver,
        lambda d: d.execute_script(
            "return !window.skphotozOldPage && document.readyState === 'complete'"
            " && window.skphotozExplore !== undefined && window.skphotozExplore.state.ready"
        ),
        "the page",
    )


def click_at(driver, x, y):
    """A real mouse click at page coordinates (x, y)."""
    from selenium.webdriver.common.actions.action_builder import ActionBuilder

    actions = ActionBuilder(driver)
    actions.pointer_action.move_to_location(int(round(x)), int(round(y)))
    actions.pointer_action.click()
    actions.perform()


def selected(driver):
    return driver.execute_script("return window.skphotozExplore.state.selected")


def neighbour_rows(driver):
    return gallery_rows(driver, "neighbours")


def gallery_rows(driver, gallery):
    cards = driver.find_elements(By.CSS_SELECTOR, f"#{gallery} .card")
    return [int(card.get_attribute("data-row")) for card in cards]


def expected_neighbours(explorer, row):
    _, indices = explorer.search_.kneighbors(explorer.embeddings_[row : row + 1], n_neighbors=9)
    return [int(i) for i in indices[0] if i != row][:8]


def test_clicking_a_galaxy_on_the_map_shows_its_neighbours_and_pdf(browser, server, explorer):
    open_page(browser, server)
    # A galaxy far from the others, so that the click cannot land on another point.
    row = int(np.argmax(np.linalg.norm(explorer.map_ - explorer.map_.mean(axis=0), axis=1)))
    x, y = browser.execute_script(f"return window.skphotozExplore.pagePosition({row})")
    click_at(browser, x, y)
    wait_for(browser, lambda d: selected(d) == row, f"row {row} to be selected")
    wait_for(browser, lambda d: len(neighbour_rows(d)) == 8, "the neighbours")
    assert neighbour_rows(browser) == expected_neighbours(explorer, row)
    title = browser.find_element(By.ID, "galaxy-title").text
    assert title.startswith(f"Galaxy row {row} (ObjID ")
    assert browser.find_element(By.ID, "pdf-box").is_displayed()
    assert len(browser.find_elements(By.CSS_SELECTOR, "#pdf polyline")) == 1
    assert "predicted z" in browser.find_element(By.ID, "catalogue").text
    assert not browser.find_element(By.ID, "error").is_displayed()


def test_typing_an_objid_and_clicking_a_neighbour(browser, server, explorer):
    open_page(browser, server)
    objid = int(explorer._display.objid[21])
    browser.find_element(By.CSS_SELECTOR, "#find-kind option[value='objid']").click()
    box = browser.find_element(By.ID, "find-value")
    box.send_keys(str(objid))
    browser.find_element(By.CSS_SELECTOR, "#find button").click()
    wait_for(browser, lambda d: selected(d) == 21, "row 21")
    first = neighbour_rows(browser)[0]
    browser.find_element(By.CSS_SELECTOR, f"#neighbours .card[data-row='{first}']").click()
    wait_for(browser, lambda d: selected(d) == first, f"the neighbour {first}")
    assert neighbour_rows(browser) == expected_neighbours(explorer, first)


def test_a_pasted_list_and_a_bad_row_give_clear_messages(browser, server, explorer):
    open_page(browser, server)
    ids = explorer._display.objid
    text = f"{ids[3]} {ids[8]}, 424242 row:{N + 5}"
    browser.find_element(By.ID, "lookup-text").send_keys(text)
    browser.find_element(By.CSS_SELECTOR, "#lookup button").click()
    wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#lookup-errors li"), "errors")
    assert gallery_rows(browser, "lookup-results") == [3, 8]
    errors = [li.text for li in browser.find_elements(By.CSS_SELECTOR, "#lookup-errors li")]
    assert errors[0] == "objid 424242 is not in galaxies.h5."
    assert errors[1].startswith(f"row {N + 5} is out of range")
    # A row that does not exist: the server's message on the page, no traceback.
    box = browser.find_element(By.ID, "find-value")
    box.send_keys(str(10 * N))
    browser.find_element(By.CSS_SELECTOR, "#find button").click()
    banner = browser.find_element(By.ID, "error")
    wait_for(browser, lambda d: banner.is_displayed(), "the error banner")
    assert banner.text.startswith(f"row {10 * N} is out of range: galaxies.h5 holds {N}")
    assert "Traceback" not in browser.page_source


def test_zoom_and_pan_move_the_map(browser, server):
    open_page(browser, server)
    canvas = browser.find_element(By.ID, "map")
    view = "return Object.assign({}, window.skphotozExplore.state.view)"
    before = browser.execute_script(view)
    browser.execute_script(
        "arguments[0].dispatchEvent(new WheelEvent('wheel', {deltaY: -400, clientX: 200,"
        " clientY: 300, bubbles: true, cancelable: true}))",
        canvas,
    )
    zoomed = browser.execute_script(view)
    assert zoomed["scale"] == pytest.approx(before["scale"] * np.exp(400 * 0.0015), rel=1e-6)
    drag = ActionChains(browser).move_to_element(canvas).click_and_hold()
    drag.move_by_offset(60, 40).release().perform()
    panned = browser.execute_script(view)
    assert panned["scale"] == zoomed["scale"]
    assert panned["ox"] > zoomed["ox"] + 30 and panned["oy"] > zoomed["oy"] + 20
    assert selected(browser) is None  # a drag is not a click


def test_screenshot_shows_the_map_and_the_galleries(browser, server, tmp_path):
    from PIL import Image

    open_page(browser, server)
    wait_for(
        browser,
        lambda d: d.execute_script(
            "return [...document.querySelectorAll('#anomalies img')].every("
            "i => i.complete && i.naturalWidth === 32)"
        ),
        "the anomaly gallery's images",
    )
    assert len(browser.find_elements(By.CSS_SELECTOR, "#anomalies .card")) == 24
    shot = Image.open(io.BytesIO(browser.find_element(By.ID, "map").screenshot_as_png))
    pixels = np.asarray(shot.convert("RGB")).reshape(-1, 3).astype(int)
    # Points coloured by redshift: many saturated (viridis) pixels, not a blank canvas.
    coloured = (pixels.max(axis=1) - pixels.min(axis=1)) > 60
    assert coloured.sum() > 200
    gallery = Image.open(io.BytesIO(browser.find_element(By.ID, "anomalies").screenshot_as_png))
    dark = (np.asarray(gallery.convert("L")) < 60).mean()
    assert dark > 0.2  # the stamps' dark sky fills the gallery
    browser.save_screenshot(str(tmp_path / "page.png"))
    assert (tmp_path / "page.png").stat().st_size > 20_000
