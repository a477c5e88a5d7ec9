"""The README stays true: every option and every route is documented."""

from __future__ import annotations

from pathlib import Path

from tei_bento.settings import Settings

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def test_every_option_is_documented():
    for name in Settings.model_fields:
        assert f"`--{name.replace('_', '-')}`" in README, name
        assert f"`{name.upper()}`" in README, name


def test_every_route_has_a_curl_example():
    from tei_bento.api.app import create_app

    app = create_app(Settings())
    paths = {route.path for route in app.routes if getattr(route, "methods", None)}
    for path in paths - {"/docs/oauth2-redirect", "/redoc", "/api-doc/openapi.json", "/openapi.json", "/docs", "/embeddings"}:
        assert f"127.0.0.1:3000{path}" in README, path


def test_the_two_setup_commands_are_there():
    assert "make serve" in README and "make test" in README
    ci = (Path(__file__).resolve().parents[1] / ".ci" / "run").read_text()
    assert "make test" in ci


def test_every_bentoml_api_method_has_a_curl_example():
    from _bentoml_sdk.method import APIMethod

    from tei_bento.bento_api import TEIBentoAPI

    routes = [m.route for m in vars(TEIBentoAPI).values() if isinstance(m, APIMethod)]
    assert len(routes) == 7
    for route in routes:
        assert f"127.0.0.1:3000{route}" in README, route
