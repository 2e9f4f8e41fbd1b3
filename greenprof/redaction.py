"""Hide secrets in command lines and URLs before they are stored or printed.

``greenprof run`` records the command it profiles (the run's ``command`` tag), and a
command line often carries a secret: ``--hf-token hf_...``, ``--db
postgresql://user:password@host/db``. A run database is shared, exported and pasted
into issues, so secrets are replaced by ``***`` before anything is written.

The rules, deliberately conservative (a mangled path costs more than it helps):

1. **Secret options.** An option's name is split into words at ``-``, ``_``, ``.`` and
   camelCase boundaries; it names a secret when its *last* word is one of
   :data:`SECRET_WORDS` (case-insensitive). Its value is replaced, in every form:
   ``--hf-token=abc``, ``--hf-token abc`` (the next argument, unless it starts with
   ``-``), ``-token abc``, and ``NAME=value`` arguments such as ``HF_TOKEN=abc`` or
   Hydra's ``wandb.api_key=abc``. Only the last word counts, so ``--key-frames 3``,
   ``--keyboard-layout us``, ``--max-tokens 512``, ``--tokenizer gpt2``, ``--author
   ann`` and ``--password-file /run/pw`` keep their values.
2. **Known token formats**, anywhere in an argument: Hugging Face (``hf_`` + 30 or more
   letters and digits), OpenAI / Anthropic (``sk-`` + 32 or more characters mixing
   upper case, lower case and digits), GitHub (``ghp_`` and its kin, ``github_pat_``),
   AWS access key ids (``AKIA``/``ASIA`` + 16), Google API keys (``AIza`` + 35), Slack
   (``xox?-``) and JSON Web Tokens. Long hex strings are *not* redacted: they are
   mostly commit hashes (``--revision``) and checksums.
3. **URL credentials**, anywhere in an argument: ``scheme://user:pass@host`` becomes
   ``scheme://user:***@host``, and query parameters named as in rule 1
   (``?token=abc``) lose their values.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

REDACTED = "***"

SECRET_WORDS = frozenset(
    {
        "token",
        "key",
        "secret",
        "password",
        "passwd",
        "pwd",
        "passphrase",
        "auth",
        "credential",
        "credentials",
        # compounds written as one word (--apikey, --authToken is split by case)
        "apikey",
        "authtoken",
        "accesstoken",
        "accesskey",
        "secretkey",
        "privatekey",
    }
)

_WORD_BOUNDARY = re.compile(r"[-_.]+|(?<=[a-z0-9])(?=[A-Z])")
_OPTION = re.compile(r"^(-{1,2})([A-Za-z][\w.\-]*)(?:=(.*))?$", re.DOTALL)
_ASSIGNMENT = re.compile(r"^([+~]{0,2}[A-Za-z_][\w.\-]*)=(.*)$", re.DOTALL)

_TOKEN_PATTERNS = (
    re.compile(r"\bhf_[A-Za-z0-9]{30,}"),
    re.compile(r"\bgh[pousr]_[A-Za-z0-9]{30,}"),
    re.compile(r"\bgithub_pat_[A-Za-z0-9_]{40,}"),
    re.compile(r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b"),
    re.compile(r"\bAIza[A-Za-z0-9_\-]{35}"),
    re.compile(r"\bxox[abposr]-[A-Za-z0-9\-]{10,}"),
    re.compile(r"\beyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}"),
)
_SK_TOKEN = re.compile(r"\bsk-[A-Za-z0-9_\-]{32,}")
_URL = re.compile(r"\b([A-Za-z][A-Za-z0-9+.\-]*://)([^/?#\s]*)([^\s]*)")
_QUERY_PARAM = re.compile(r"([?&;])([^=&;#]+)=([^&;#]*)")


def is_secret_name(name: str) -> bool:
    """Whether an option, variable or parameter name names a secret (rule 1: its last
    word is a secret word).

    Example::

        is_secret_name("--hf-token")   # True
        is_secret_name("key_frames")   # False
    """
    words = [w for w in _WORD_BOUNDARY.split(name.lstrip("-+~")) if w]
    return bool(words) and words[-1].lower() in SECRET_WORDS


def redact_url(url: str) -> str:
    """``url`` with its password and secret query values replaced by ``***`` (rule 3);
    the rest of the text, URL or not, unchanged.

    Example::

        redact_url("postgresql://ann:s3cret@db:5432/runs")  # 'postgresql://ann:***@db:5432/runs'
    """
    return _URL.sub(_redact_url_match, url)


def redact_text(text: str) -> str:
    """``text`` with URL credentials and known token formats replaced (rules 2 and 3)."""
    text = redact_url(text)
    for pattern in _TOKEN_PATTERNS:
        text = pattern.sub(REDACTED, text)
    return _SK_TOKEN.sub(_redact_if_random, text)


def redact_argv(argv: Sequence[str]) -> list[str]:
    """A copy of the command line ``argv`` with secrets replaced by ``***``.

    Example::

        redact_argv(["python", "train.py", "--hf-token", "abc", "--lr", "0.1"])
        # ['python', 'train.py', '--hf-token', '***', '--lr', '0.1']
    """
    redacted: list[str] = []
    value_is_secret = False
    for arg in argv:
        if value_is_secret and not arg.startswith("-"):
            redacted.append(REDACTED)
            value_is_secret = False
            continue
        value_is_secret = False
        option = _OPTION.match(arg)
        if option is not None:
            dashes, name, value = option.groups()
            if is_secret_name(name):
                if value is None:
                    value_is_secret = True
                    redacted.append(arg)
                else:
                    redacted.append(f"{dashes}{name}={REDACTED}" if value else arg)
                continue
        assignment = _ASSIGNMENT.match(arg)
        if assignment is not None and assignment.group(2) and is_secret_name(assignment.group(1)):
            redacted.append(f"{assignment.group(1)}={REDACTED}")
            continue
        redacted.append(redact_text(arg))
    return redacted


def _redact_url_match(match: re.Match[str]) -> str:
    scheme, netloc, rest = match.groups()
    userinfo, at, host = netloc.rpartition("@")
    if at and ":" in userinfo:
        user, _, password = userinfo.partition(":")
        if password:
            netloc = f"{user}:{REDACTED}@{host}"
    return scheme + netloc + _QUERY_PARAM.sub(_redact_query_param, rest)


def _redact_query_param(match: re.Match[str]) -> str:
    separator, name, value = match.groups()
    if value and is_secret_name(name):
        return f"{separator}{name}={REDACTED}"
    return match.group(0)


def _redact_if_random(match: re.Match[str]) -> str:
    """``sk-`` tokens only when they look random: upper and lower case and digits, so
    that a directory such as ``sk-learn-baseline-models-for-the-paper`` survives."""
    text = match.group(0)[3:]
    looks_random = (
        any(c.isupper() for c in text)
        and any(c.islower() for c in text)
        and any(c.isdigit() for c in text)
    )
    return REDACTED if looks_random else match.group(0)
