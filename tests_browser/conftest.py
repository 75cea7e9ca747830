"""Fixtures of the browser test: the served book, one Chromium session, each page visited once."""

from __future__ import annotations

from collections import defaultdict

import book_site
import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--search-term",
        default="DeepSeek",
        help="a word the book's search must find (default: DeepSeek)",
    )


class Offline:
    """External resources the book uses that failed to load, and links the test cannot follow
    without a network. Neither fails the test; both are printed at the end of the run."""

    def __init__(self) -> None:
        self.resources: dict[str, set[str]] = defaultdict(set)  # url -> pages
        self.links: dict[str, set[str]] = defaultdict(set)  # host -> urls

    def report(self) -> list[str]:
        lines = [
            f"external resource did not load (offline?), not counted as an error: {url} "
            f"(on {len(pages)} page{'s' * (len(pages) > 1)})"
            for url, pages in sorted(self.resources.items())
        ]
        if self.links:
            n = sum(len(urls) for urls in self.links.values())
            lines.append(
                f"external links not followed (no network check): {n} URLs on "
                f"{len(self.links)} hosts: {', '.join(sorted(self.links))}"
            )
        return lines


OFFLINE = pytest.StashKey[Offline]()


def pytest_configure(config: pytest.Config) -> None:
    config.stash[OFFLINE] = Offline()


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    lines = config.stash[OFFLINE].report()
    if lines:
        terminalreporter.write_sep("-", "skipped because they need the network")
        for line in lines:
            terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def offline(pytestconfig: pytest.Config) -> Offline:
    return pytestconfig.stash[OFFLINE]


@pytest.fixture(scope="session")
def base_url():
    with book_site.serve(book_site.HTML) as url:
        yield url


@pytest.fixture(scope="session")
def driver():
    with book_site.chromium() as browser:
        yield browser


@pytest.fixture(scope="session")
def visits(driver, base_url) -> dict[str, book_site.Visit]:
    """Every built page, opened once at desktop width."""
    book_site.set_screen(driver, book_site.DESKTOP)
    return {doc: book_site.visit(driver, base_url, doc) for doc in book_site.built_pages()}


@pytest.fixture(scope="session")
def phone_visits(driver, base_url, visits) -> dict[str, book_site.Visit]:
    """Every built page, opened once more at phone width (after the desktop pass)."""
    book_site.set_screen(driver, book_site.PHONE)
    try:
        return {doc: book_site.visit(driver, base_url, doc) for doc in visits}
    finally:
        book_site.set_screen(driver, book_site.DESKTOP)
