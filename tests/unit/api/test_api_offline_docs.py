"""/docs works without internet: every asset the page loads comes from this server."""
from __future__ import annotations

import re


def test_docs_page_loads_only_local_assets_and_each_is_served(api):
    page = api.get("/docs")
    assert page.status_code == 200
    html = page.text
    urls = re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)["']""", html)
    urls += re.findall(r"""url:\s*["']([^"']+)["']""", html)
    assert any(u.endswith("swagger-ui-bundle.js") for u in urls), html
    assert any(u.endswith(".css") for u in urls), html
    remote = [u for u in urls if re.match(r"(?i)^(https?:)?//", u)]
    assert remote == [], f"/docs loads assets from elsewhere: {remote}"
    for url in urls:
        r = api.get(url)
        assert r.status_code == 200, (url, r.status_code)
        assert r.content, url
    js = api.get(next(u for u in urls if u.endswith("swagger-ui-bundle.js")))
    assert "SwaggerUIBundle" in js.text
    assert api.get("/openapi.json").json()["info"]["title"]


def test_docs_oauth2_redirect_page_is_served(api):
    assert api.get("/docs/oauth2-redirect").status_code == 200


def test_docs_disabled_hides_page_and_assets(settings, ch):
    from fastapi.testclient import TestClient

    from agentstream.api.app import create_app

    app = create_app(settings.model_copy(update={"docs_enabled": False}), client=ch)
    with TestClient(app) as c:
        assert c.get("/docs").status_code == 404
        assert c.get("/docs/assets/swagger-ui-bundle.js").status_code == 404
