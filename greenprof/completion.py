"""Shell completion: ``greenprof completion bash|zsh|fish`` and the hidden ``__complete``.

The printed scripts are thin: on each Tab they call ``greenprof __complete -- WORDS...``
(the words after ``greenprof``, the last one the word being typed) and show what it
prints, one ``value<TAB>description`` per line. The candidates come from the real
argument parser (:func:`complete`, pure), so a new verb or flag completes without
touching the scripts; ``RUN`` arguments complete to the run names, job ids and run ids
of the database the line names (``--db``), else the default one.

Why not ``argcomplete``: it would be a new dependency for one feature, needs a marker
comment and a hook before parsing in the entry point, and runs the same parser we
walk here. Walking argparse ourselves costs about 150 lines and nothing at install.

``__complete`` never fails loudly: a missing database, a server that does not answer or
any other error completes nothing (exit 0, nothing on stderr), and the shell falls back
to file names.
"""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from greenprof.cli import listed_subcommands, subcommands

RUN_METAVAR = "RUN"
"""Positional arguments with this metavar take run references (names, job ids, ids)."""
RUN_LIMIT = 1000
"""Newest runs offered; older ones can still be typed."""
SHELLS = ("bash", "zsh", "fish")


@dataclass(frozen=True, slots=True)
class Candidate:
    """One completion: the text to insert and a short description (zsh and fish show it)."""

    value: str
    description: str = ""

    def line(self) -> str:
        """The ``value<TAB>description`` line ``__complete`` prints."""
        return f"{self.value}\t{self.description}" if self.description else self.value


RunRefs = Callable[[str | None], Sequence[Candidate]]
"""Run references for completion, from the database given (None: the default one)."""


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add ``completion`` and the hidden ``__complete`` to the command line."""
    completion = subparsers.add_parser(
        "completion",
        help="print a shell completion script (bash, zsh or fish)",
        description="Prints a script that completes greenprof's commands, options, run "
        'names and job ids. bash: add `eval "$(greenprof completion bash)"` to '
        '~/.bashrc. zsh: add `eval "$(greenprof completion zsh)"` to ~/.zshrc after '
        "compinit. fish: `greenprof completion fish > "
        "~/.config/fish/completions/greenprof.fish`.",
    )
    completion.add_argument("shell", choices=SHELLS, help="the shell to complete in")
    completion.set_defaults(handler=_completion)
    # no help=: argparse then leaves it out of --help (it is for the scripts, not people)
    hidden = subparsers.add_parser("__complete", add_help=False)
    hidden.add_argument("words", nargs=argparse.REMAINDER)
    hidden.set_defaults(handler=_complete_verb)


def _completion(args: argparse.Namespace) -> int:
    print(script(args.shell), end="")
    return 0


def _complete_verb(args: argparse.Namespace) -> int:
    words = list(args.words)
    if words[:1] == ["--"]:
        words = words[1:]
    try:
        from greenprof.cli import build_parser

        lines = [c.line() for c in complete(build_parser(), words, stored_refs)]
    except Exception:  # a Tab press must never print a traceback
        return 0
    if lines:
        print("\n".join(lines))
    return 0


# Candidates (pure over the parser) -------------------------------------------------------


def complete(
    parser: argparse.ArgumentParser, words: Sequence[str], run_refs: RunRefs
) -> list[Candidate]:
    """What may follow ``greenprof WORDS[:-1]`` and starts with ``WORDS[-1]``.

    Verbs (with their help text), a verb's options, an option's choices, and run
    references where a ``RUN`` is expected; nothing where a file or free text is (the
    shell then completes file names).

    Example::

        complete(build_parser(), ["sh"], refs)   # [Candidate("show", "summary of a run ...")]
    """
    if not words:
        words = [""]
    *done, typed = words
    state = _walk(parser, done)
    if state is None:
        return []
    current, positional, pending, db, literal = state
    if pending is not None:
        found = _choices(pending) if pending.choices else []
    elif typed.startswith("-") and not literal:
        found = _options(current)
    elif subcommands(current):
        found = _verbs(current)
    elif positional is None:
        found = []
    elif positional.metavar == RUN_METAVAR:
        found = list(run_refs(db))
    else:
        found = _choices(positional) if positional.choices else []
    return [c for c in found if c.value.startswith(typed)]


_State = tuple[
    argparse.ArgumentParser, argparse.Action | None, argparse.Action | None, str | None, bool
]


def _walk(parser: argparse.ArgumentParser, done: Sequence[str]) -> _State | None:
    """Follow the finished words: (parser reached, next positional, option awaiting its
    value, ``--db`` given, after ``--``); None when a word is not a verb of its parser."""
    current = parser
    consumed = 0
    pending: argparse.Action | None = None
    db: str | None = None
    literal = False
    for word in done:
        if pending is not None:
            db = word if pending.dest == "db" else db
            pending = None
        elif word == "--" and not literal:
            literal = True
        elif word.startswith("-") and len(word) > 1 and not literal:
            name, equals, value = word.partition("=")
            action = _option(current, name)
            if action is not None and action.dest == "db" and equals:
                db = value
            elif action is not None and action.nargs != 0 and not equals:
                pending = action
        elif subcommands(current):
            if word not in subcommands(current):
                return None
            current, consumed = subcommands(current)[word], 0
        else:
            consumed += 1
    positionals = [a for a in current._actions if not a.option_strings]
    return current, _positional_at(positionals, consumed), pending, db, literal


def _positional_at(positionals: Sequence[argparse.Action], index: int) -> argparse.Action | None:
    """The positional that the ``index``-th positional word fills (a ``+``/``*`` one takes
    every word from its place on; after ``...`` the words belong to another program)."""
    for action in positionals:
        if action.nargs == argparse.REMAINDER:
            return None
        if action.nargs in ("+", "*"):
            return action
        if index == 0:
            return action
        index -= 1
    return None


def _option(parser: argparse.ArgumentParser, name: str) -> argparse.Action | None:
    for action in parser._actions:
        if name in action.option_strings:
            return action
    return None


def _options(parser: argparse.ArgumentParser) -> list[Candidate]:
    return [
        Candidate(option, _help(action))
        for action in parser._actions
        if action.help != argparse.SUPPRESS
        for option in action.option_strings
        if option.startswith("--") or len(action.option_strings) == 1
    ]


def _verbs(parser: argparse.ArgumentParser) -> list[Candidate]:
    helps = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: _help(choice) for choice in action._choices_actions}
    return [Candidate(name, helps.get(name, "")) for name in listed_subcommands(parser)]


def _choices(action: argparse.Action) -> list[Candidate]:
    return [Candidate(str(choice)) for choice in action.choices or ()]


def _help(action: argparse.Action) -> str:
    text = action.help or ""
    return "" if text == argparse.SUPPRESS else _one_line(text.replace("%%", "%"))


_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\s]")


def _one_line(text: str) -> str:
    """Descriptions are one line without tabs (the protocol's separators)."""
    return " ".join(_UNSAFE.sub(" ", text).split())[:80]


# Run references from a database (I/O) ------------------------------------------------------


def stored_refs(
    db: str | None, *, env: Mapping[str, str] = os.environ, limit: int = RUN_LIMIT
) -> list[Candidate]:
    """Run names (newest first), job ids and run ids of the newest ``limit`` runs; none
    when the database cannot be read. A name with spaces or control characters is left
    out (the shells would split it); its run id still completes."""
    from greenprof.store.reader import RunStore

    try:
        with RunStore(db, env=env) as store:
            runs = store.runs(limit=limit)
    except Exception:  # no database, a foreign file, a server down: nothing
        return []
    names: dict[str, Candidate] = {}
    jobs: dict[str, int] = {}
    for run in runs:
        if _completable(run.name) and run.name not in names:
            names[run.name] = Candidate(run.name, _one_line(f"run {run.run_id}, {run.status}"))
        if run.job_id and _completable(run.job_id):
            jobs[run.job_id] = jobs.get(run.job_id, 0) + 1
    ids = [Candidate(str(run.run_id), _one_line(f"{run.name} ({run.status})")) for run in runs]
    job_refs = [Candidate(job, f"job of {count} run(s)") for job, count in jobs.items()]
    return [*names.values(), *job_refs, *ids]


def _completable(text: str) -> bool:
    return bool(text) and not _UNSAFE.search(text) and not text.startswith("-")


# Scripts -------------------------------------------------------------------------------------


def script(shell: str) -> str:
    """The completion script for ``shell`` (one of :data:`SHELLS`)."""
    return {"bash": _BASH, "zsh": _ZSH, "fish": _FISH}[shell]


_BASH = r"""# greenprof completion for bash.
# Install: eval "$(greenprof completion bash)" in ~/.bashrc
_greenprof_complete() {
    local IFS=$'\n' line
    local -a lines
    lines=($(greenprof __complete -- "${COMP_WORDS[@]:1:COMP_CWORD}" 2>/dev/null)) || return 0
    COMPREPLY=()
    for line in "${lines[@]}"; do
        COMPREPLY+=("${line%%$'\t'*}")
    done
}
complete -o default -F _greenprof_complete greenprof
"""

_ZSH = r"""#compdef greenprof
# greenprof completion for zsh. Install: eval "$(greenprof completion zsh)" in ~/.zshrc
# (after compinit), or save it as _greenprof in a directory of $fpath.
_greenprof() {
    local -a lines described
    local line value
    lines=("${(@f)$(greenprof __complete -- "${(@)words[2,CURRENT]}" 2>/dev/null)}")
    for line in "${lines[@]}"; do
        [[ -z $line ]] && continue
        value=${line%%$'\t'*}
        if [[ $line == *$'\t'* ]]; then
            described+=("${value//:/\\:}:${line#*$'\t'}")
        else
            described+=("${value//:/\\:}")
        fi
    done
    if (( ${#described} == 0 )); then
        _files
    else
        _describe -t greenprof 'greenprof' described
    fi
}
if [[ ${zsh_eval_context[-1]} == loadautofunc ]]; then
    _greenprof "$@"
else
    compdef _greenprof greenprof
fi
"""

_FISH = r"""# greenprof completion for fish.
# Install: greenprof completion fish > ~/.config/fish/completions/greenprof.fish
function __greenprof_complete
    set -l tokens (commandline -opc)
    set -e tokens[1]
    set -l current (commandline -ct)
    set -l candidates (greenprof __complete -- $tokens "$current" 2>/dev/null)
    if test (count $candidates) -eq 0
        __fish_complete_path "$current"
        return
    end
    printf '%s\n' $candidates
end
complete -c greenprof -f -a '(__greenprof_complete)'
"""
