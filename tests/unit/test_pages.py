"""creditstream/pages.py: the HTML renderer escapes every text exactly once."""

from __future__ import annotations

import re

from creditstream.pages import Html, definition_list, el, error_page, join, page


def main_of(html: str) -> str:
    return re.search(r"<main>(.*)</main>", html, re.S).group(1)


def test_an_error_page_is_markup_not_escaped_markup():
    response = error_page(404, "未找到 Not found", "没有这个代码的组织 No organisation has that code")
    assert response.status == 404
    assert main_of(response.text) == ('<h1>未找到 Not found</h1>'
                                      '<p class="error">没有这个代码的组织 No organisation has that code</p>')


def test_an_error_pages_text_is_escaped_once():
    response = error_page(403, "<b>&", 'a "quote" <script>')
    assert main_of(response.text) == '<h1>&lt;b&gt;&amp;</h1><p class="error">a &quot;quote&quot; &lt;script&gt;</p>'
    assert "&amp;lt;" not in response.text and "&lt;h1" not in response.text


def test_built_markup_stays_markup():
    assert isinstance(join([el("b", "x"), "<"]), Html) and join([el("b", "x"), "<"]) == "<b>x</b>&lt;"
    assert main_of(page("t", join([el("h1", "a"), el("p", "b")]))) == "<h1>a</h1><p>b</p>"
    assert definition_list({"k<": "v&"}) == "<dl><dt>k&lt;</dt><dd>v&amp;</dd></dl>"
