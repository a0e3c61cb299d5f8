"""A git repository of artifact files as the registry (the GitOps path).

An artifact is the file ``{agent}/{artifact}`` (the ``layout``) plus the extension it has
(``.md`` when new); its versions are the commits that changed that file. Labels are refs:
``production`` is the main branch, any other label the tag ``tighten/{agent}/{artifact}/{label}``.

- ``publish`` commits the content on the work branch ``tighten/{agent}/{artifact}``
  (created from the main branch) and returns the commit id;
- ``move_label(..., "production")`` brings main's copy of that one file to the content of
  the version as a new commit on main: never a force-push, never rewritten history, so a
  rollback is another commit and the history keeps both;
- ``move_label`` to any other label moves its tag (with a reflog entry naming the actor).

Commits are made in a temporary ``git worktree``, so the user's checkout is never switched;
where main is checked out only the deployed file is synced (an uncommitted change to it is
refused). Refs move by compare-and-swap and a failed step leaves the repository as it was.
git runs without a shell, with argument lists, literal pathspecs and hooks off; names are
validated so they can neither leave the repository nor look like options.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import ClassVar

from tighten.errors import ConfigError, InputError, StoreError
from tighten.registry.base import Fetched, RegistryVersion

__all__ = ["GitRegistry"]

PRODUCTION = "production"
_NAME = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_-])?")
_PREFIX = re.compile(r"(?:[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_-])?/)*")
_COMMIT = re.compile(r"[0-9a-fA-F]{4,64}")
_EXTENSION = re.compile(r"\.[A-Za-z0-9]+")
# inherited from a hook or a parent git, these would point every command elsewhere
_REPO_ENV = {"GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_PREFIX", "GIT_COMMON_DIR",
             "GIT_NAMESPACE", "GIT_OBJECT_DIRECTORY",
             "GIT_ALTERNATE_OBJECT_DIRECTORIES"}  # fmt: skip
_COMMIT_ARGS = ("commit", "--quiet", "--no-verify", "--cleanup=verbatim", "-F", "-")
_TIMEOUT = 120.0


def _check_name(value: str, what: str) -> str:
    """A name that is one safe path component and one safe ref component."""
    if not _NAME.fullmatch(value) or ".." in value or value.endswith(".lock"):
        raise InputError(
            f"invalid {what} name {value!r}: use letters, digits, '_', '.' and '-', "
            "starting with a letter, digit or '_'"
        )
    return value


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _message(subject: str, reason: str | None, trailers: dict[str, str]) -> bytes:
    """Subject, the reason verbatim, then tighten's trailers as the last paragraph (parsed
    from the end, so a reason cannot forge them)."""
    parts = [subject]
    if reason:
        parts.append(f"Reason: {reason}")
    parts.append("\n".join(f"{key}: {_one_line(value)}" for key, value in trailers.items()))
    return "\n\n".join(parts).replace("\0", "").encode()


def _summary(reason: str | None) -> str:
    first = _one_line(reason.splitlines()[0]) if reason and reason.strip() else ""
    return f" — {first[:60]}{'…' if len(first) > 60 else ''}" if first else ""


def _parse_message(message: str, git_author: str) -> tuple[str, str | None]:
    """(author, reason) of a commit: tighten's trailers when it wrote the commit, else the
    git author and the message itself."""
    body, _, last = message.rstrip("\n").rpartition("\n\n")
    trailers = {key: value for key, _, value in (x.partition(": ") for x in last.splitlines())}
    if not body or "Tighten-Author" not in trailers:
        return git_author, message.strip() or None
    _, _, rest = body.partition("\n\n")
    reason = rest.removeprefix("Reason: ") if rest.startswith("Reason: ") else None
    return trailers["Tighten-Author"], reason


class GitRegistry:
    """Artifacts as files in a git repository; versions are commits, labels are refs."""

    name: ClassVar[str] = "git"

    def __init__(
        self,
        repo: Path,
        *,
        branch_prefix: str = "tighten/",
        layout: str = "{agent}/{artifact}",
        author_name: str = "tighten",
        author_email: str = "tighten@localhost",
        main_branch: str | None = None,
    ) -> None:
        self.repo = Path(repo).resolve()
        if not _PREFIX.fullmatch(branch_prefix) or ".." in branch_prefix:
            raise ConfigError(f"invalid branch_prefix {branch_prefix!r}: use e.g. 'tighten/'")
        for value in (author_name, author_email):
            if not value.strip() or any(c in value for c in "<>\n\r\0"):
                raise ConfigError(f"invalid git author {value!r}: one line, without '<' or '>'")
        self.branch_prefix = branch_prefix
        self.layout = layout
        self._check_layout()
        self._env = {k: v for k, v in os.environ.items() if k not in _REPO_ENV}
        for who in ("AUTHOR", "COMMITTER"):
            self._env.update({f"GIT_{who}_NAME": author_name, f"GIT_{who}_EMAIL": author_email})
        self._env["GIT_TERMINAL_PROMPT"] = "0"
        self._cwd, self._prefix = self._locate()
        self.main_branch = main_branch or self._head_branch()
        if self._run("check-ref-format", f"refs/heads/{self.main_branch}").returncode != 0:
            raise ConfigError(f"invalid main_branch {self.main_branch!r}")

    def fetch(self, agent: str, artifact: str, label: str = PRODUCTION) -> Fetched:
        ref = self._label_ref(agent, artifact, label)
        commit = self._resolve(ref)
        if commit is None:
            raise InputError(
                f"{agent}/{artifact} has no version labelled {label!r} (no ref {ref}); "
                "move the label to a version first."
            )
        path = self._find_path(commit, agent, artifact)
        if path is None:
            raise InputError(f"{agent}/{artifact} does not exist at label {label!r} ({ref}).")
        try:
            content = self._git("cat-file", "blob", f"{commit}:{path}").decode()
        except UnicodeDecodeError:
            raise InputError(f"{path} at {label!r} is not UTF-8 text.") from None
        return Fetched(artifact, label, self._last_change(commit, path), content)

    def publish(
        self, agent: str, artifact: str, content: str, *, author: str, reason: str | None
    ) -> str:
        production = self._production(agent, artifact)
        work_ref = f"refs/heads/{self.branch_prefix}{agent}/{artifact}"
        old = self._resolve(work_ref)
        base = old or production
        path = (
            self._find_path(base, agent, artifact)
            or self._find_path(production, agent, artifact)
            or self._default_path(agent, artifact) + ".md"
        )
        subject = f"tighten: update {agent}/{artifact}{_summary(reason)} ({_one_line(author)})"
        message = _message(subject, reason, {"Tighten-Author": author})
        new = self._commit_file(base, path, content.encode(), message)
        if new is None:  # the content is already there: that commit is the version
            return self._last_change(base, path)
        moved = self._run("update-ref", "-m", "tighten: publish", work_ref, new, old or "")
        if moved.returncode != 0:
            raise StoreError(f"{work_ref} moved while publishing {agent}/{artifact}; try again.")
        return new

    def move_label(
        self, agent: str, artifact: str, version: str, label: str, *, actor: str, reason: str | None
    ) -> None:
        ref = self._label_ref(agent, artifact, label)
        commit = self._version_commit(version)
        source = self._find_path(commit, agent, artifact)
        if source is None:
            raise InputError(f"version {version} has no file for {agent}/{artifact}.")
        if label != PRODUCTION:
            note = _one_line(f"tighten: {actor} moved {label} to {commit[:12]}: {reason or ''}")
            self._git("update-ref", "--create-reflog", "-m", note, ref, commit)
            return
        self._deploy(agent, artifact, commit, source, actor=actor, reason=reason)

    def versions(self, agent: str, artifact: str) -> list[RegistryVersion]:
        paths = self._known_paths(agent, artifact)
        if not paths:
            raise InputError(f"{agent}/{artifact} is not in the repository {self.repo}.")
        every_ref = ("--branches", "--tags", "--remotes")  # --all, but not the stash
        out = self._git(
            "log", *every_ref, "--date-order", "-z", "--format=%H%n%an%n%aI%n%B", "--", *paths
        ).decode()
        found = []
        for record in filter(None, out.split("\0")):
            fields = record.lstrip("\n").split("\n", 3)
            commit, git_author, date, message = fields + [""] * (4 - len(fields))
            author, reason = _parse_message(message, git_author)
            created_at = datetime.fromisoformat(date).astimezone(UTC)
            found.append(RegistryVersion(commit, author, reason, created_at))
        return found

    def _deploy(
        self, agent: str, artifact: str, commit: str, source: str, *, actor: str, reason: str | None
    ) -> None:
        main_ref = f"refs/heads/{self.main_branch}"
        production = self._production(agent, artifact)
        target = self._find_path(production, agent, artifact) or source
        if self._resolve(production, target) == self._resolve(commit, source):
            return  # main already has this content: nothing to commit
        checkout = self._main_checkout()
        if checkout is not None and self._git(
            "status", "--porcelain", "-z", "--", target, cwd=checkout
        ):
            raise InputError(
                f"{target} has uncommitted changes in {checkout}; commit or stash them, "
                f"then deploy {agent}/{artifact} again."
            )
        content = self._git("cat-file", "blob", f"{commit}:{source}")
        subject = (
            f"tighten: move {PRODUCTION} of {agent}/{artifact} to {commit[:12]}"
            f"{_summary(reason)} ({_one_line(actor)})"
        )
        trailers = {"Tighten-Author": actor, "Tighten-Version": commit, "Tighten-Label": PRODUCTION}
        new = self._commit_file(production, target, content, _message(subject, reason, trailers))
        if new is None:
            return
        moved = self._run("update-ref", "-m", "tighten: deploy", main_ref, new, production)
        if moved.returncode != 0:
            raise StoreError(
                f"{self.main_branch} moved while deploying {agent}/{artifact}; try again."
            )
        if checkout is not None:
            synced = self._run("checkout", new, "--", target, cwd=checkout)
            if synced.returncode != 0:
                self._run("update-ref", main_ref, production, new)
                raise StoreError(
                    f"could not update {target} in {checkout} ({self._stderr(synced)}); "
                    "nothing was deployed."
                )

    def _main_checkout(self) -> Path | None:
        """The worktree that has the main branch checked out, if any."""
        listing = self._git("worktree", "list", "--porcelain").decode()  # no -z before git 2.36
        worktree: str | None = None
        for field in listing.splitlines():
            if field.startswith("worktree "):
                worktree = field.removeprefix("worktree ")
            elif field == f"branch refs/heads/{self.main_branch}" and worktree is not None:
                return Path(worktree)
        return None

    def _commit_file(self, base: str, path: str, content: bytes, message: bytes) -> str | None:
        """A new commit on top of ``base`` with ``path`` set to ``content`` (None when that
        changes nothing). No ref moves: the caller does that, with compare-and-swap."""
        with self._worktree(base) as tree:
            if self._resolve(base, path) is not None:
                self._git("checkout", "HEAD", "--", path, cwd=tree)  # keeps the file mode
            file = tree / path
            file.parent.mkdir(parents=True, exist_ok=True)
            file.write_bytes(content)
            self._git("add", "--", path, cwd=tree)
            if self._run("diff", "--cached", "--quiet", cwd=tree).returncode == 0:
                return None
            self._git(*_COMMIT_ARGS, cwd=tree, stdin=message)  # the message via stdin, verbatim
            return self._git("rev-parse", "HEAD", cwd=tree).decode().strip()

    @contextmanager
    def _worktree(self, commit: str) -> Iterator[Path]:
        with tempfile.TemporaryDirectory(prefix="tighten-git-") as tmp:
            tree = Path(tmp) / "worktree"
            self._git("worktree", "add", "--detach", "--no-checkout", str(tree), commit)
            try:
                self._git("read-tree", "HEAD", cwd=tree)  # the index without the files
                yield tree
            finally:
                if self._run("worktree", "remove", "--force", str(tree)).returncode != 0:
                    shutil.rmtree(tree, ignore_errors=True)
                    self._run("worktree", "prune")

    def _check_layout(self) -> None:
        try:
            sample = self.layout.format(agent="a", artifact="b")
        except (KeyError, IndexError, ValueError) as exc:
            raise ConfigError(f"invalid layout {self.layout!r}: {exc}") from None
        parts = PurePosixPath(sample).parts
        unsafe = any(p in ("/", "..", ".") or p.startswith("-") for p in parts)
        if unsafe or "{artifact}" not in self.layout or not sample.endswith("b"):
            raise ConfigError(
                f"invalid layout {self.layout!r}: a relative path ending in {{artifact}}, "
                "such as '{agent}/{artifact}'"
            )

    def _default_path(self, agent: str, artifact: str) -> str:
        names = {
            "agent": _check_name(agent, "agent"),
            "artifact": _check_name(artifact, "artifact"),
        }
        return self._prefix + self.layout.format(**names)

    def _label_ref(self, agent: str, artifact: str, label: str) -> str:
        self._default_path(agent, artifact)  # validates both names
        if label == PRODUCTION:
            return f"refs/heads/{self.main_branch}"
        return f"refs/tags/{self.branch_prefix}{agent}/{artifact}/{_check_name(label, 'label')}"

    def _find_path(self, commit: str, agent: str, artifact: str) -> str | None:
        """The artifact's file at ``commit``: its layout path plus the one extension it has."""
        directory, _, stem = self._default_path(agent, artifact).rpartition("/")
        listing = self._run("ls-tree", "-z", f"{commit}:{directory}")
        if listing.returncode != 0:
            return None
        names = []
        for entry in listing.stdout.decode().split("\0"):
            meta, _, name = entry.partition("\t")
            if meta.split(" ")[1:2] == ["blob"] and (
                name == stem or (name.startswith(stem) and _EXTENSION.fullmatch(name[len(stem) :]))
            ):
                names.append(name)
        if len(names) > 1:
            raise InputError(f"{agent}/{artifact} is ambiguous: {', '.join(sorted(names))}.")
        return f"{directory}/{names[0]}".lstrip("/") if names else None

    def _known_paths(self, agent: str, artifact: str) -> list[str]:
        name = f"{self.branch_prefix}{agent}/{artifact}"
        tags = self._git("for-each-ref", "--format=%(refname)", f"refs/tags/{name}/").decode()
        refs = [f"refs/heads/{self.main_branch}", f"refs/heads/{name}", *tags.split()]
        paths = set()
        for ref in refs:
            commit = self._resolve(ref)
            path = commit and self._find_path(commit, agent, artifact)
            if path:
                paths.add(path)
        return sorted(paths)

    def _production(self, agent: str, artifact: str) -> str:
        self._default_path(agent, artifact)
        commit = self._resolve(f"refs/heads/{self.main_branch}")
        if commit is None:
            raise InputError(f"{self.main_branch!r} has no commit yet; commit the artifacts first.")
        return commit

    def _version_commit(self, version: str) -> str:
        commit = self._resolve(version) if _COMMIT.fullmatch(version) else None
        if commit is None:
            raise InputError(f"unknown version {version!r}: use a commit id from `versions`.")
        return commit

    def _resolve(self, rev: str, path: str | None = None) -> str | None:
        """The commit ``rev`` names, or with ``path`` the blob at that path; None if none."""
        expression = f"{rev}^{{commit}}" if path is None else f"{rev}:{path}"
        found = self._run("rev-parse", "--verify", "--quiet", expression)
        return found.stdout.decode().strip() if found.returncode == 0 else None

    def _last_change(self, commit: str, path: str) -> str:
        return self._git("log", "-1", "--format=%H", commit, "--", path).decode().strip()

    def _locate(self) -> tuple[Path, str]:
        """Where to run git (the top of the work tree, or a bare repository) and the path
        prefix when ``repo`` is a folder inside a repository."""
        if not self.repo.is_dir():
            raise StoreError(f"{self.repo} is not a directory; pass the path of a git repository.")
        found = self._run("rev-parse", "--is-bare-repository", "--show-prefix", cwd=self.repo)
        if found.returncode != 0:
            raise StoreError(
                f"{self.repo} is not a git repository ({self._stderr(found)}); "
                "run `git init` there or pass the path of one."
            )
        bare, _, prefix = found.stdout.decode().partition("\n")
        if bare.strip() == "true":
            return self.repo, ""
        top = self._git("rev-parse", "--show-toplevel", cwd=self.repo).decode().strip()
        return Path(top), prefix.strip()

    def _head_branch(self) -> str:
        found = self._run("symbolic-ref", "--quiet", "--short", "HEAD")
        if found.returncode != 0:
            raise StoreError(f"HEAD of {self.repo} is detached; pass main_branch= (production).")
        return found.stdout.decode().strip()

    def _run(
        self, *args: str, cwd: Path | None = None, stdin: bytes | None = None
    ) -> subprocess.CompletedProcess[bytes]:
        command = ["git", "-c", f"core.hooksPath={os.devnull}", "--literal-pathspecs", *args]
        try:
            return subprocess.run(  # an argument list, never a shell
                command, cwd=cwd or self._cwd, input=stdin, env=self._env,
                check=False, capture_output=True, timeout=_TIMEOUT,
            )  # fmt: skip
        except FileNotFoundError:
            raise StoreError("git is not installed or not on PATH; install git.") from None
        except subprocess.TimeoutExpired:
            raise StoreError(f"`git {args[0]}` timed out in {self.repo}.") from None

    def _git(self, *args: str, cwd: Path | None = None, stdin: bytes | None = None) -> bytes:
        done = self._run(*args, cwd=cwd, stdin=stdin)
        if done.returncode != 0:
            raise StoreError(f"`git {args[0]}` failed in {self.repo}: {self._stderr(done)}")
        return done.stdout

    @staticmethod
    def _stderr(done: subprocess.CompletedProcess[bytes]) -> str:
        lines = done.stderr.decode(errors="replace").strip().splitlines()
        return lines[-1] if lines else f"exit status {done.returncode}"
