"""The built book, checked the way a reader meets it: in a real (headless) browser.

Run after the book is built: ``make browser-test`` (or ``pytest tests_browser``; add
``--search-term WORD`` to search for another word). It serves _build/html on a loopback port,
opens every page in Debian's Chromium and fails, naming the page, on

- a console error caused by the book itself (a local script error, a missing local file);
- an image that did not load (natural width 0);
- an internal link to a missing page, or a #anchor that is not on its target page;
- a lab page without its Colab link, a page without a title (an h1);
- a figure in the page content that nothing describes. The rule: an image needs a <figcaption>,
  or an alt text that is not empty, not a file name and not a Python object's repr
  ("<Figure size ...>"). Sphinx writes a file name when a source gives no alt text, so that
  counts as none. Lab plots get their alt text from their titles and axis labels
  (effllm.plotting.describe, copied by book/_ext/figure_alt.py): a plot without a title fails;
- a page that scrolls sideways on a phone (390 px wide), and prose set as math ("$2 an hour to
  $5M" read as TeX);
- any violation of the WCAG 2.0/2.1 level A and AA rules of axe-core (the accessibility engine of
  browsers' developer tools, pinned in tests_browser/package.json), in the theme's light mode and
  in its dark mode (contrast changes with the colours), naming page, rule and element; in dark
  mode also a figure with see-through pixels over a dark background, whose dark ink vanishes.

It also checks that the site search finds a word, that the "next" button walks through every
page in _toc.yml order, and saves screenshots of the landing page, a chapter and a lab at desktop
and phone widths, and of a chapter and a lab in dark mode, in _build/screenshots/. External
resources (MathJax from a CDN) may fail to load on a machine without network: that is not an
error, and the run ends by listing what it skipped.
"""

from __future__ import annotations

import re
from urllib.parse import unquote, urldefrag, urlsplit

import book_site
import pytest
from book_site import docname_of, is_external, source_of

if not (book_site.HTML / "searchindex.js").exists():
    pytest.skip(
        f"no built book in {book_site.HTML}: run `make book` first", allow_module_level=True
    )

PAGES = book_site.built_pages()
LABS = [p for p in PAGES if book_site.is_lab(p)]
TOC = book_site.toc_order()


# ---------------------------------------------------------------- every page


def test_the_build_has_every_page_of_the_toc():
    missing = [doc for doc in TOC if doc not in PAGES]
    if missing:
        pytest.fail(f"in _toc.yml but not in the built book: {missing}")


@pytest.mark.parametrize("doc", PAGES)
def test_no_console_errors(doc, visits, base_url, offline):
    page = visits[doc]
    errors = []
    for entry in page.console:
        if entry["level"] != "SEVERE":
            continue
        source = source_of(entry["message"])
        if entry["source"] == "network" and is_external(source, base_url):
            offline.resources[source].add(doc)  # a CDN that an offline machine cannot reach
        else:
            errors.append(entry["message"].replace(base_url, "/"))
    if errors:
        pytest.fail(f"{doc}: console errors:\n  " + "\n  ".join(dict.fromkeys(errors)))


@pytest.mark.parametrize("doc", PAGES)
def test_images_load(doc, visits, base_url, offline):
    broken = []
    for image in visits[doc].images:
        if image["width"] > 0:
            continue
        if is_external(image["src"], base_url):
            offline.resources[image["src"]].add(doc)
        else:
            broken.append(image["raw"])
    if broken:
        pytest.fail(f"{doc}: images that did not load: {broken}")


_FILE_NAME = re.compile(r"\.(png|jpe?g|gif|svg|webp)$", re.I)


def _described(image: dict) -> bool:
    alt = (image["alt"] or "").strip()
    says_something = alt and alt != image["raw"] and not _FILE_NAME.search(alt)
    return bool(image["caption"]) or bool(says_something and not alt.startswith("<"))


@pytest.mark.parametrize("doc", PAGES)
def test_figures_say_what_they_show(doc, visits):
    bare = [i["raw"] for i in visits[doc].images if i["in_content"] and not _described(i)]
    if bare:
        pytest.fail(
            f"{doc}: images without a caption or alt text that says what they show: {bare}. "
            "Give a plot a title (effllm.plotting.describe builds its alt text from it), or give "
            "the image :alt: / a caption."
        )


@pytest.mark.parametrize("doc", PAGES)
def test_internal_links_and_anchors_resolve(doc, visits, base_url, offline):
    dead = []
    for link in visits[doc].links:
        href = link["href"]
        if not href.startswith(("http://", "https://")):
            continue  # mailto:, javascript:
        if is_external(href, base_url):
            offline.links[urlsplit(href).netloc].add(href)
            continue
        target, anchor = urldefrag(href)
        shown = f"{link['text']!r} -> {href.replace(base_url, '/')}"
        if (known := visits.get(docname_of(target, base_url))) is not None:
            ids = known.ids
        else:
            status, text = book_site.fetch(target)
            if status != 200:
                dead.append(f"{shown} (HTTP {status})")
                continue
            ids = book_site.ids_in(text)
        if anchor and unquote(anchor) not in ids:
            # An anchor is there if the served page has it, or the page's scripts add it. The
            # desktop pass once read a lab's DOM without two of its section ids that the served
            # HTML has (a rerun found them), so the served HTML is asked before a link is dead.
            status, text = book_site.fetch(target)
            if status != 200 or unquote(anchor) not in book_site.ids_in(text):
                dead.append(f"{shown} (no #{unquote(anchor)} on that page)")
    if dead:
        pytest.fail(f"{doc}: links that do not resolve:\n  " + "\n  ".join(dict.fromkeys(dead)))


@pytest.mark.parametrize("doc", PAGES)
def test_page_has_a_title(doc, visits):
    page = visits[doc]
    if not any(page.h1):
        pytest.fail(f"{doc}: no title (h1) on the page")
    if not page.title.strip():
        pytest.fail(f"{doc}: empty <title>")


@pytest.mark.parametrize("doc", LABS)
def test_lab_page_links_to_colab(doc, visits):
    want = book_site.colab_url(doc)
    if not any(link["href"] == want for link in visits[doc].links):
        pytest.fail(f"{doc}: no Colab launch link {want}")


@pytest.mark.parametrize("doc", PAGES)
def test_page_fits_a_phone_screen(doc, phone_visits):
    overflow = phone_visits[doc].overflow
    if overflow > 1:
        pytest.fail(
            f"{doc}: at {book_site.PHONE['width']} px the page is {overflow} px too wide and "
            "scrolls sideways (a table, code or figure that does not wrap or scroll in its box)"
        )


_MATH = re.compile(r'<span class="math notranslate nohighlight">(.*?)</span>', re.S)
_TEX_WORDS = re.compile(r"\\(?:text|mathrm|mathit|mathbf|operatorname)\{[^}]*\}|\\[A-Za-z]+")
_PROSE = re.compile(r"[A-Za-z]{2,}\s+[A-Za-z]{2,}")


@pytest.mark.parametrize("doc", PAGES)
def test_no_prose_set_as_math(doc):
    html = (book_site.HTML / f"{doc}.html").read_text()
    prose = [m for m in _MATH.findall(html) if _PROSE.search(_TEX_WORDS.sub(" ", m))]
    if prose:
        pytest.fail(
            f"{doc}: text between two $ signs was typeset as math: {prose}. "
            "Write a price's $ as \\$."
        )


@pytest.mark.parametrize("mode", book_site.MODES)
@pytest.mark.parametrize("doc", PAGES)
def test_wcag_2_a_and_aa(doc, mode, driver, base_url):
    book_site.in_mode(driver, base_url, doc, mode)
    problems = []
    if violations := book_site.axe_violations(driver):
        problems.append(book_site.describe_violations(doc, mode, violations))
    if mode == "dark":
        lost = [i["src"] for i in book_site.see_through_images(driver) if i["behind"] < 0.4]
        if lost:
            problems.append(
                f"{doc} (dark mode): figures with see-through pixels over a dark background, "
                f"their dark lines and labels unreadable: {lost}"
            )
    if problems:
        pytest.fail("\n".join(problems))


# A grey that fails WCAG AA's 4.5:1 on white, and a small PNG that is see-through but for a black
# square (made in the page, so the test needs no file).
_PLANT = r"""
const article = document.querySelector("article");
const canvas = Object.assign(document.createElement("canvas"), {width: 40, height: 40});
canvas.getContext("2d").fillRect(10, 10, 10, 10);
article.insertAdjacentHTML("afterbegin",
  `<p id="planted-grey" style="color: #bbb; background: #fff">grey on white</p>
   <img id="planted-no-alt" src="${canvas.toDataURL()}" style="background-color: transparent">
   <img id="planted-figure" src="${canvas.toDataURL()}" alt="a black square">`);
return Promise.all(Array.from(article.querySelectorAll("img[id^=planted]")).map(i => i.decode()));
"""


def test_the_checks_catch_planted_violations(driver, base_url):
    """The accessibility checks fail on what they are for: a page with an image without alt text
    and grey text on white (axe-core), and, in dark mode, a see-through figure over the dark page.
    A see-through figure that keeps the theme's style gets a white ground in dark mode too."""
    doc = SHOTS["chapter"] or TOC[0]
    for mode in book_site.MODES:
        book_site.in_mode(driver, base_url, doc, mode)
        driver.execute_script(_PLANT)
        violations = book_site.axe_violations(driver)
        rules = {v["rule"]: [n["target"] for n in v["nodes"]] for v in violations}
        assert "#planted-no-alt" in rules.get("image-alt", []), rules
        assert "#planted-grey" in rules.get("color-contrast", []), rules
        message = book_site.describe_violations(doc, mode, violations)
        for named in (doc, "image-alt", "color-contrast", "#planted-no-alt", "#planted-grey"):
            assert named in message, message
        behind = {i["id"]: i["behind"] for i in book_site.see_through_images(driver)}
        # the image that overrides the theme's style shows the page behind it; the other, white
        assert behind["planted-no-alt"] < 0.4 if mode == "dark" else behind["planted-no-alt"] > 0.9
        assert behind["planted-figure"] > 0.9, behind


# ---------------------------------------------------------------- the book as a whole


def test_search_finds_a_word(driver, base_url, pytestconfig):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    term = pytestconfig.getoption("--search-term")
    driver.get(f"{base_url}{TOC[0]}.html")

    def visible(css):
        return next(
            (e for e in driver.find_elements(By.CSS_SELECTOR, css) if e.is_displayed()), None
        )

    def finished(_):  # the summary appears once the search has run: "Search finished, found ..."
        summary = visible("#search-results .search-summary")
        return summary.text if summary is not None and summary.text else None

    visible(".search-button__button").click()  # what a reader clicks (or presses Ctrl+K)
    box = WebDriverWait(driver, 10).until(lambda d: visible("#pst-search-dialog input[name=q]"))
    box.send_keys(term, Keys.ENTER)
    summary = WebDriverWait(driver, 30).until(finished)
    hits = [
        docname_of(a.get_attribute("href"), base_url)
        for a in driver.find_elements(By.CSS_SELECTOR, "#search-results ul.search li a")
    ]
    if not hits:
        pytest.fail(f"searching the book for {term!r} from {TOC[0]} found nothing: {summary!r}")
    if not set(hits) <= set(PAGES):
        pytest.fail(f"search results that are not pages of the book: {hits}")


def test_next_button_walks_the_toc_in_order(driver, base_url):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(f"{base_url}{TOC[0]}.html")
    walked = [TOC[0]]
    while len(walked) <= len(TOC):
        nexts = driver.find_elements(By.CSS_SELECTOR, "a.right-next")
        if not nexts:
            break
        here = driver.current_url
        driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", nexts[0])
        nexts[0].click()
        WebDriverWait(driver, 30).until(lambda d, here=here: d.current_url != here)
        walked.append(docname_of(driver.current_url, base_url) or driver.current_url)
    for i, (got, want) in enumerate(zip(walked, TOC, strict=False)):
        if got != want:
            pytest.fail(f"'next' from {walked[i - 1]} leads to {got}; _toc.yml says {want}")
    if walked != TOC:
        pytest.fail(f"'next' stops at {walked[-1]}; _toc.yml goes on: {TOC[len(walked) :]}")


SHOTS = {
    "landing": TOC[0],
    "chapter": next((d for d in TOC[1:] if not book_site.is_lab(d)), None),
    "lab": next((d for d in TOC if book_site.is_lab(d)), None),
}


@pytest.mark.parametrize("screen", ["desktop", "phone"])
@pytest.mark.parametrize("name", list(SHOTS))
def test_screenshot(name, screen, driver, base_url):
    """Not a check: saves _build/screenshots/NAME-SCREEN.png for people to look at."""
    doc = SHOTS[name]
    if doc is None:
        pytest.skip(f"the book has no {name} page yet")
    size = book_site.PHONE if screen == "phone" else book_site.DESKTOP
    path = book_site.SCREENSHOTS / f"{name}-{screen}.png"
    book_site.set_screen(driver, size)
    try:
        book_site.visit(driver, base_url, doc)
        book_site.full_page_screenshot(driver, path, size)
    finally:
        book_site.set_screen(driver, book_site.DESKTOP)
    assert path.stat().st_size > 10_000, f"{path} is suspiciously small"


@pytest.mark.parametrize("name", ["chapter", "lab"])
def test_dark_mode_screenshot(name, driver, base_url):
    """Not a check: saves _build/screenshots/NAME-dark-desktop.png for people to look at."""
    doc = SHOTS[name]
    if doc is None:
        pytest.skip(f"the book has no {name} page yet")
    path = book_site.SCREENSHOTS / f"{name}-dark-desktop.png"
    book_site.in_mode(driver, base_url, doc, "dark")
    book_site.full_page_screenshot(driver, path, book_site.DESKTOP)
    assert path.stat().st_size > 10_000, f"{path} is suspiciously small"
