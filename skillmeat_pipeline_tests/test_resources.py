"""The GitHub token reaches the resources through `dg.EnvVar("GITHUB_TOKEN")`, and is optional."""

from pathlib import Path

import dagster as dg
import pytest
import yaml

from skillmeat_pipeline.defs.automation.sensors import head_queries
from skillmeat_pipeline.defs.resources import SourcesFileResource, resource_defs
from skillmeat_pipeline.lib.core.secrets import REDACTED, Secret

TOKEN = "ghp_resourcetoken0123456789"


class TokenResource(dg.ConfigurableResource):
    token: str | None = None


def test_dagster_fails_an_env_var_that_is_unset_even_on_an_optional_field(monkeypatch):
    # Why `optional_env_var` exists: Dagster 1.13 has no default for an EnvVar (#16232).
    monkeypatch.delenv("SKILLMEAT_TEST_UNSET", raising=False)
    resource = TokenResource(token=dg.EnvVar("SKILLMEAT_TEST_UNSET"))
    with (
        pytest.raises(dg.DagsterInvalidConfigError, match="SKILLMEAT_TEST_UNSET"),
        dg.build_resources({"r": resource}),
    ):
        pass


@pytest.fixture
def sources_file(tmp_path: Path) -> SourcesFileResource:
    path = tmp_path / "sources.yaml"
    sources = [{"github": "owner/repo"}, {"key": "local/x", "url": "http://127.0.0.1:9/x.git"}]
    path.write_text(yaml.safe_dump({"sources": sources}))
    return SourcesFileResource(path=str(path))


def test_without_github_token_everything_runs_unauthenticated(monkeypatch, sources_file):
    monkeypatch.delenv("GITHUB_TOKEN", raising=False)
    resources = resource_defs()
    assert resources["fetchers"].github_token is None
    assert resources["head_polling"].github_token is None
    with dg.build_resources(resources) as built:
        assert built.fetchers.token() is None
        assert built.fetchers.fetchers.token is None
        assert built.head_polling.token() is None
        queries = head_queries(sources_file, built.head_polling)
    assert {key: q.token for key, q in queries.items()} == {"owner/repo": None, "local/x": None}


def test_github_token_reaches_fetchers_and_head_polling_through_env_var(monkeypatch, sources_file):
    monkeypatch.setenv("GITHUB_TOKEN", "a-value-replaced-before-the-run")
    resources = resource_defs()
    for name in ("fetchers", "head_polling"):
        field = resources[name].github_token
        # the definitions hold the variable's name, never its value
        assert isinstance(field, dg.EnvVar) and field.env_var_name == "GITHUB_TOKEN"
    # resolved when the resource is initialized: the value at run time counts
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    with dg.build_resources(resources) as built:
        token = built.fetchers.token()
        assert token == Secret(TOKEN) and str(token) == REDACTED
        assert built.fetchers.fetchers.token == Secret(TOKEN)
        assert built.head_polling.token() == Secret(TOKEN)
        queries = head_queries(sources_file, built.head_polling)
    # the token goes to GitHub sources only
    assert {key: q.token for key, q in queries.items()} == {
        "owner/repo": Secret(TOKEN),
        "local/x": None,
    }
    assert TOKEN not in repr(queries)
