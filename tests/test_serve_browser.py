"""The review page in a real headless Chromium (Debian's chromium and chromium-driver,
driven by Selenium; nothing is downloaded): tag a typed name, tag an uploaded file and
download it, correct a label and find the correction in the corrections file; and the API
pages (/docs, /redoc) drawn with no internet.

With TAGGER_SCREENSHOTS=DIR set, the page is photographed at each step (docs/images)."""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="needs the serve extra")
webdriver = pytest.importorskip("selenium.webdriver", reason="needs selenium (dev extra)")

from conftest import train_toy  # noqa: E402

from tagger_core import Tagger  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (CHROMIUM and DRIVER),
        reason="no system chromium and chromedriver (apt-get install chromium chromium-driver)",
    ),
]


@pytest.fixture
def server(tmp_path: Path):
    """A real server on a free loopback port, in this process."""
    import uvicorn

    from tagger_core.cli.serve import bound_socket
    from tagger_core.serve.app import create_app
    from tagger_core.serve.settings import ServeSettings

    tagger_dir = train_toy(tmp_path)
    corrections = tmp_path / "reviewed.jsonl"
    settings = ServeSettings(
        taggers={"toy": tagger_dir}, corrections=corrections, anonymous_review=True
    )
    sock = bound_socket("127.0.0.1", 0)
    server = uvicorn.Server(uvicorn.Config(create_app(settings), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    yield url, tagger_dir, corrections
    server.should_exit = True
    thread.join(10)


@pytest.fixture
def browser(tmp_path: Path):
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    downloads = tmp_path / "downloads"
    downloads.mkdir()
    options = Options()
    options.binary_location = CHROMIUM  # type: ignore[assignment]
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1100,900",
        "--lang=zh-CN",
        # no host but this machine resolves: anything the pages fetched from the
        # internet (a CDN) would fail, as on an offline machine
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    ):
        options.add_argument(argument)
    options.add_experimental_option(
        "prefs",
        {"download.default_directory": str(downloads), "download.prompt_for_download": False},
    )
    driver = webdriver.Chrome(service=Service(executable_path=DRIVER), options=options)
    driver.downloads = downloads  # type: ignore[attr-defined]
    yield driver
    driver.quit()


def wait_for(condition, seconds: float = 20):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("timed out waiting for the page")


def snap(driver, name: str) -> None:
    folder = os.environ.get("TAGGER_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(Path(folder) / f"serve-{name}.png"))


def test_tag_upload_download_and_correct_in_a_real_browser(server, browser, tmp_path) -> None:
    from selenium.webdriver.common.by import By

    url, tagger_dir, corrections = server
    offline = Tagger.load(tagger_dir)
    names = ["故宫博物院", "迪士尼乐园"]
    expected = offline.predict(names)
    display = {label.id: label.display_name for label in offline.taxonomy.labels}
    find = browser.find_element
    browser.get(url + "/")

    # the page lists the served tagger once the API answers
    wait_for(lambda: find(By.CSS_SELECTOR, "#tagger option[value='toy']"))

    # 1. tag typed names
    find(By.ID, "names").send_keys("\n".join(names))
    find(By.ID, "tag-button").click()
    rows = wait_for(lambda: find(By.ID, "results").find_elements(By.CSS_SELECTOR, "tbody tr"))
    assert [row.find_elements(By.TAG_NAME, "td")[0].text for row in rows] == names
    first_labels = rows[0].find_elements(By.TAG_NAME, "td")[1].text
    for label in expected[0].labels:
        assert display[label] in first_labels
    snap(browser, "tag")

    # 2. upload a file and download it tagged
    upload = tmp_path / "names.csv"
    upload.write_text("text,city\n故宫博物院,北京\n乌镇古镇,嘉兴\n", encoding="utf-8")
    find(By.ID, "tag-file").send_keys(str(upload))
    find(By.ID, "tag-file-button").click()
    done = browser.downloads / "names.tagged.csv"  # type: ignore[attr-defined]
    wait_for(lambda: done.exists() and done.stat().st_size > 0)
    lines = done.read_text(encoding="utf-8").splitlines()
    assert lines[0].startswith("text,city,predicted")
    tagged = offline.predict(["故宫博物院", "乌镇古镇"])
    assert lines[1].startswith("故宫博物院,北京," + "|".join(tagged[0].labels))
    assert lines[2].startswith("乌镇古镇,嘉兴," + "|".join(tagged[1].labels))

    # 3. review the typed names: correct the first one's labels to Villages alone
    find(By.ID, "review-tagged").click()
    wait_for(lambda: find(By.ID, "review").is_displayed())
    assert find(By.ID, "review-text").text == names[0]

    def box(label: str):
        return find(By.CSS_SELECTOR, f"#review-labels input[value='{label}']")

    for label in expected[0].labels:
        box(label).click()  # unticked: no label left, and the taxonomy needs one
    assert not find(By.ID, "save").is_enabled()
    box("Villages").click()
    assert find(By.ID, "save").is_enabled()
    browser.execute_script("arguments[0].scrollIntoView()", find(By.ID, "review-position"))
    snap(browser, "review")
    find(By.ID, "save").click()
    wait_for(lambda: "saved to reviewed.jsonl" in find(By.ID, "message").text)
    assert find(By.ID, "review-text").text == names[1]  # moved on to the next name

    (line,) = corrections.read_text(encoding="utf-8").splitlines()
    written = json.loads(line)
    assert written["text"] == names[0]
    assert written["label"] == ["Villages"]
    assert written["predicted"] == expected[0].labels
    assert written["source"] == "review"


def test_the_api_pages_draw_the_api_with_no_internet(server, browser) -> None:
    from selenium.webdriver.common.by import By

    url = server[0]
    browser.get(url + "/docs")
    paths = wait_for(
        lambda: [
            element.get_attribute("data-path")
            for element in browser.find_elements(By.CSS_SELECTOR, ".opblock-summary-path")
        ]
    )
    assert "/v1/taggers/{name}/predict" in paths
    snap(browser, "docs")
    browser.get(url + "/redoc")
    wait_for(lambda: "/v1/taggers/{name}/predict" in browser.find_element(By.TAG_NAME, "body").text)
