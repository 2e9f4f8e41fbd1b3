"""Secrets in command lines and URLs: each rule of greenprof.redaction, and the
look-alikes that must be left alone."""

from __future__ import annotations

import pytest

from greenprof.redaction import is_secret_name, redact_argv, redact_text, redact_url

HF = "hf_" + "aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3z"
OPENAI = "sk-proj-" + "Ab3De5Fg7Hj9Kl1Mn3Pq5Rs7Tu9Vw1Xy3Za5"
GITHUB = "ghp_" + "Ab3De5Fg7Hj9Kl1Mn3Pq5Rs7Tu9Vw1Xy3Za5"
AWS = "AKIA" + "IOSFODNN7EXAMPLE"


# Rule 1: options and assignments whose name's last word is a secret word -------


@pytest.mark.parametrize(
    "name",
    [
        "--hf-token",
        "--HF_TOKEN",
        "--hfToken",
        "--api-key",
        "--apikey",
        "--openai_api_key",
        "--aws-secret-access-key",
        "--client-secret",
        "--password",
        "--db-passwd",
        "--basic-auth",
        "--use_auth_token",
        "--credentials",
        "-token",
        "HF_TOKEN",
        "wandb.api_key",
    ],
)
def test_secret_names(name: str) -> None:
    assert is_secret_name(name)


@pytest.mark.parametrize(
    "name",
    [
        "--key-frames",
        "--keyboard-layout",
        "--max-tokens",
        "--tokenizer",
        "--tokenizer-name",
        "--token-budget",
        "--author",
        "--password-file",
        "--secret-name",
        "--monkey",
        "--lr",
        "-k",
        "",
    ],
)
def test_names_that_only_contain_a_secret_word_are_not_secret(name: str) -> None:
    assert not is_secret_name(name)


def test_option_value_after_equals_is_redacted() -> None:
    assert redact_argv(["python", "train.py", "--hf-token=abc123", "--lr=0.1"]) == [
        "python",
        "train.py",
        "--hf-token=***",
        "--lr=0.1",
    ]


def test_option_value_in_the_next_argument_is_redacted() -> None:
    argv = ["train.py", "--HF-Token", "abc123", "--epochs", "3", "-password", "pw"]
    assert redact_argv(argv) == [
        "train.py",
        "--HF-Token",
        "***",
        "--epochs",
        "3",
        "-password",
        "***",
    ]


def test_a_secret_option_used_as_a_flag_leaves_the_next_option_alone() -> None:
    argv = ["train.py", "--use_auth_token", "--output-dir", "out"]
    assert redact_argv(argv) == argv


def test_a_secret_option_at_the_end_is_kept() -> None:
    assert redact_argv(["train.py", "--api-key"]) == ["train.py", "--api-key"]


def test_an_empty_value_is_kept() -> None:
    assert redact_argv(["train.py", "--api-key="]) == ["train.py", "--api-key="]


def test_assignments_are_redacted() -> None:
    argv = ["env", "HF_TOKEN=abc", "python", "train.py", "+wandb.api_key=xyz", "lr=0.1"]
    assert redact_argv(argv) == [
        "env",
        "HF_TOKEN=***",
        "python",
        "train.py",
        "+wandb.api_key=***",
        "lr=0.1",
    ]


def test_look_alike_options_keep_their_values() -> None:
    argv = [
        "train.py",
        "--key-frames",
        "3",
        "--keyboard-layout",
        "us",
        "--max-tokens",
        "512",
        "--tokenizer",
        "gpt2",
        "--password-file",
        "/run/secrets/pw",
    ]
    assert redact_argv(argv) == argv


# Rule 2: known token formats, anywhere ----------------------------------------


@pytest.mark.parametrize("token", [HF, OPENAI, GITHUB, AWS])
def test_known_token_formats_are_redacted_anywhere(token: str) -> None:
    assert redact_argv([token]) == ["***"]
    assert redact_argv([f"--wandb-run={token}"]) == ["--wandb-run=***"]
    assert redact_text(f"login({token!r})") == "login('***')"


@pytest.mark.parametrize(
    "token",
    [
        "github_pat_" + "11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUV",
        "AIza" + "SyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q",
        "xoxb-" + "1234567890-abcdefghij",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
    ],
)
def test_other_token_formats(token: str) -> None:
    assert redact_text(f"x {token} y") == "x *** y"


@pytest.mark.parametrize(
    "arg",
    [
        "/data/hf_cache/models--bert-base-uncased",
        "/data/sk-learn-baseline-models-for-the-paper-v2",  # no upper case: not random
        "--revision=3f2a9c8e1b7d6f5e4a3b2c1d0e9f8a7b6c5d4e3f",  # commit hashes stay
        "--run-id=0123456789abcdef0123456789abcdef",
        "checkpoints/task-AKIA/epoch=3.ckpt",
        "disk-ABCdef123456789012345678901234567890",
    ],
)
def test_paths_and_hashes_are_left_alone(arg: str) -> None:
    assert redact_argv([arg]) == [arg]


# Rule 3: URLs -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql://ann:s3cret@db:5432/runs", "postgresql://ann:***@db:5432/runs"),
        ("redis://:s3cret@cache/0", "redis://:***@cache/0"),
        ("https://ann:p@ss@host/x", "https://ann:***@host/x"),
        ("https://host/metrics?token=abc&job=train", "https://host/metrics?token=***&job=train"),
        ("https://host/x?api_key=abc", "https://host/x?api_key=***"),
    ],
)
def test_url_credentials_are_redacted(url: str, expected: str) -> None:
    assert redact_url(url) == expected
    assert redact_argv([f"--db={url}"]) == [f"--db={expected}"]
    assert redact_argv(["--db", url]) == ["--db", expected]


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://ann@db/runs",  # a user name is not a secret
        "https://host:8080/path?job=train&page=2",
        "https://host/@scope/package",
        "file:///data/train.csv",
        "not a url: ann:pw@host",
    ],
)
def test_urls_without_credentials_are_unchanged(url: str) -> None:
    assert redact_url(url) == url


def test_urls_inside_text_are_redacted() -> None:
    text = "connect to postgresql://ann:pw@db/runs then https://x:y@h"
    assert redact_url(text) == "connect to postgresql://ann:***@db/runs then https://x:***@h"


def test_redaction_is_idempotent_and_copies() -> None:
    argv = ["train.py", "--hf-token", HF, "--db=postgresql://a:b@h/d", "--lr", "0.1"]
    once = redact_argv(argv)
    assert redact_argv(once) == once
    assert argv[2] == HF  # the input is not modified
    assert HF not in " ".join(once) and ":b@" not in " ".join(once)
