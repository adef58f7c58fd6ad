"""The fleet page at 1440 px (a common laptop width) shows every column, cost last, with no
horizontal scrolling inside the table and nothing past the window's right edge."""
from __future__ import annotations

import pytest

pytestmark = pytest.mark.integration


def test_fleet_table_fits_1440px_with_the_cost_column_visible(acme):
    page = acme.page
    assert page.viewport_size["width"] == 1440
    page.goto("/ui")
    page.wait_for_selector("#fleet-table tbody tr[data-agent]")
    page.wait_for_function("document.querySelectorAll('#fleet-table .spark canvas').length >= 15")
    box = page.evaluate("""() => {
        const wrap = document.querySelector('#fleet-table');
        const table = wrap.querySelector('table') || wrap;
        const heads = [...table.querySelectorAll('thead th')];
        const last = heads[heads.length - 1];
        const costCells = [...table.querySelectorAll('.spark[data-metric=cost_usd]')];
        return {scroll: wrap.scrollWidth, client: wrap.clientWidth,
                page: document.documentElement.scrollWidth, window: window.innerWidth,
                lastRight: last.getBoundingClientRect().right, lastText: last.innerText,
                wrapRight: wrap.getBoundingClientRect().right,
                costRight: Math.max(...costCells.map(c => c.getBoundingClientRect().right))};
    }""")
    assert box["scroll"] <= box["client"] + 1, box  # no scrolling inside the table
    assert box["page"] <= box["window"], box  # nor of the page
    assert box["lastRight"] <= min(box["wrapRight"], box["window"]) + 1, box
    assert box["costRight"] <= min(box["wrapRight"], box["window"]) + 1, box
    assert "cost" in box["lastText"].lower() or box["costRight"] > 0, box
