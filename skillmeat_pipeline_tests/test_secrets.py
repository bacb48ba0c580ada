from skillmeat_pipeline.lib.core.secrets import REDACTED, Secret, redact, secrets_from_env


def test_a_secret_never_prints_its_value():
    token = Secret("ghp_abcdefghijklmnop")
    assert str(token) == REDACTED
    assert "ghp_" not in repr(token)
    assert "ghp_" not in f"{token} {token!r} {[token]} { ({'t': token}) }"
    assert token.reveal() == "ghp_abcdefghijklmnop"


def test_redact_removes_known_secrets_and_url_credentials():
    text = (
        "clone of https://x-access-token:ghp_abcdefghijklmnop@github.com/o/r failed: "
        "ghp_abcdefghijklmnop"
    )
    cleaned = redact(text, [Secret("ghp_abcdefghijklmnop")])
    assert "ghp_" not in cleaned
    assert "https://github.com/o/r" in cleaned
    assert redact("ssh://user:pass@host/x and https://TOKEN@h/y") == "ssh://host/x and https://h/y"


def test_short_or_empty_values_are_not_secrets():
    assert redact("a b c", ["a", "", None]) == "a b c"
    assert secrets_from_env({"GITHUB_TOKEN": ""}) == ()
    assert secrets_from_env({"GITHUB_TOKEN": "tok-1234"}) == (Secret("tok-1234"),)
