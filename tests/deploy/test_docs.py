"""docs/configuration.md lists every option under each of its names; docs/deploy.md names
the files and commands that exist."""

from __future__ import annotations

import pytest

from tei_bento.settings import Settings
from tests.server import REPO

CONFIGURATION = (REPO / "docs" / "configuration.md").read_text()
DEPLOY = (REPO / "docs" / "deploy.md").read_text()


@pytest.mark.parametrize("name", list(Settings.model_fields))
def test_every_option_is_in_the_configuration_table(name):
    flag, env = "--" + name.replace("_", "-"), name.upper()
    row = next(line for line in CONFIGURATION.splitlines() if line.startswith(f"| `{flag}` |"))
    assert f"`{env}`" in row and f"`{name}`" in row


def test_deploy_guide_points_at_real_files():
    for path in ("bentofile.yaml", "bentofile.cuda.yaml", "bentofile.cuda.Dockerfile.j2",
                 "truss/config.yaml", "configs/README.md", "tei_bento/bento.py"):  # fmt: skip
        assert path in DEPLOY and (REPO / path).is_file(), path
    for command in ("bentoml serve", "bentoml build", "bentoml containerize", "truss push",
                    "tei-bento truss", "curl", "OpenAI("):  # fmt: skip
        assert command in DEPLOY, command
