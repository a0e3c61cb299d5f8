"""The git registry on real repositories: publish on a work branch, deploy and roll back
as new commits on main, labels as tags, a clean checkout, and names and messages that
cannot escape."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tighten.errors import InputError, StoreError
from tighten.registry.backends.git import GitRegistry

PROMPT = "You are the support agent. Answer briefly and politely.\n"


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)
    return done.stdout.decode()


@pytest.fixture(autouse=True)
def _git_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Neither the user's git configuration nor their identity is used."""
    home = tmp_path / "git-home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for who in ("AUTHOR", "COMMITTER"):
        monkeypatch.setenv(f"GIT_{who}_NAME", "Test User")
        monkeypatch.setenv(f"GIT_{who}_EMAIL", "test@example.com")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = tmp_path / "agents"
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    (path / "support").mkdir()
    (path / "support" / "master.md").write_text(PROMPT)
    (path / "support" / "soul.json").write_text('{"always": ["be kind"]}\n')
    (path / "README.md").write_text("agents\n")
    git(path, "add", ".")
    git(path, "commit", "-q", "-m", "initial artifacts")
    return path


@pytest.fixture
def registry(repo: Path) -> GitRegistry:
    return GitRegistry(repo)


def head(repo: Path, ref: str = "main") -> str:
    return git(repo, "rev-parse", ref).strip()


def status(repo: Path) -> str:
    return git(repo, "status", "--porcelain")


def published(registry: GitRegistry, content: str, reason: str = "approved item 3") -> str:
    return registry.publish("support", "master", content, author="owner", reason=reason)


def test_publish_commits_on_the_work_branch_and_leaves_main_alone(
    repo: Path, registry: GitRegistry
) -> None:
    before = head(repo)
    version = published(registry, PROMPT + "Never promise refunds.\n")
    assert head(repo) == before
    assert head(repo, "tighten/support/master") == version
    assert git(repo, "rev-parse", f"{version}^").strip() == before
    assert git(repo, "show", f"{version}:support/master.md").endswith("Never promise refunds.\n")
    message = git(repo, "log", "-1", "--format=%B", version)
    assert message.startswith("tighten: update support/master — approved item 3 (owner)\n\n")
    assert "Reason: approved item 3" in message
    assert (repo / "support" / "master.md").read_text() == PROMPT
    assert status(repo) == ""
    assert git(repo, "worktree", "list").count("\n") == 1


def test_publish_builds_on_the_work_branch_and_skips_unchanged_content(
    repo: Path, registry: GitRegistry
) -> None:
    first = published(registry, PROMPT + "one\n")
    second = published(registry, PROMPT + "two\n")
    assert git(repo, "rev-parse", f"{second}^").strip() == first
    assert published(registry, PROMPT + "two\n") == second
    assert head(repo, "tighten/support/master") == second


def test_move_to_production_commits_the_file_on_main(repo: Path, registry: GitRegistry) -> None:
    before = head(repo)
    version = published(registry, PROMPT + "Never promise refunds.\n")
    registry.move_label(
        "support", "master", version, "production", actor="alice", reason="approved item 3"
    )
    deployed = head(repo)
    assert git(repo, "rev-parse", f"{deployed}^").strip() == before  # a new commit, no rewrite
    assert git(repo, "show", "main:support/master.md").endswith("Never promise refunds.\n")
    assert (repo / "support" / "master.md").read_text().endswith("Never promise refunds.\n")
    message = git(repo, "log", "-1", "--format=%B", "main")
    assert "alice" in message.splitlines()[0]
    assert "Reason: approved item 3" in message
    assert f"Tighten-Version: {version}" in message
    assert git(repo, "diff", "--name-only", before, deployed).split() == ["support/master.md"]
    assert status(repo) == ""


def test_rollback_is_another_commit_and_the_history_keeps_both(
    repo: Path, registry: GitRegistry
) -> None:
    original = registry.fetch("support", "master").version
    version = published(registry, PROMPT + "Never promise refunds.\n")
    registry.move_label("support", "master", version, "production", actor="alice", reason="ship")
    deployed = head(repo)
    registry.move_label(
        "support", "master", original, "production", actor="bob", reason="refunds rose"
    )
    rolled_back = head(repo)
    assert git(repo, "rev-parse", f"{rolled_back}^").strip() == deployed
    assert (repo / "support" / "master.md").read_text() == PROMPT
    assert registry.fetch("support", "master").content == PROMPT
    log = git(repo, "log", "--format=%H %s", "main", "--", "support/master.md").splitlines()
    assert [line.split()[0] for line in log] == [rolled_back, deployed, original]
    assert "(bob)" in log[0]
    assert "refunds rose" in git(repo, "log", "-1", "--format=%B", "main")
    assert status(repo) == ""


def test_moving_production_to_the_content_it_has_makes_no_commit(
    repo: Path, registry: GitRegistry
) -> None:
    before = head(repo)
    version = published(registry, PROMPT)  # unchanged: the current version is returned
    assert version == before
    registry.move_label("support", "master", before, "production", actor="alice", reason=None)
    assert head(repo) == before


def test_fetch_returns_what_each_label_points_at(repo: Path, registry: GitRegistry) -> None:
    original = head(repo)
    staged = published(registry, PROMPT + "staged\n")
    registry.move_label("support", "master", staged, "staging", actor="ci", reason="try it")
    production = registry.fetch("support", "master")
    staging = registry.fetch("support", "master", "staging")
    assert (production.version, production.content) == (original, PROMPT)
    assert (staging.version, staging.content) == (staged, PROMPT + "staged\n")
    assert (staging.name, staging.label) == ("master", "staging")
    soul = registry.fetch("support", "soul")
    assert soul.content == '{"always": ["be kind"]}\n'


def test_staging_is_a_lightweight_tag_that_moves(repo: Path, registry: GitRegistry) -> None:
    first = published(registry, PROMPT + "one\n")
    second = published(registry, PROMPT + "two\n")
    registry.move_label("support", "master", first, "staging", actor="ci", reason=None)
    registry.move_label("support", "master", second, "staging", actor="ci", reason="newer")
    tag = "refs/tags/tighten/support/master/staging"
    assert git(repo, "cat-file", "-t", tag).strip() == "commit"  # lightweight: no tag object
    assert head(repo, tag) == second
    assert head(repo) == git(repo, "rev-list", "--max-parents=0", "main").strip()
    assert status(repo) == ""


def test_deploy_with_main_not_checked_out_leaves_the_users_branch_alone(
    repo: Path, registry: GitRegistry
) -> None:
    git(repo, "switch", "-q", "-c", "feature")
    (repo / "notes.txt").write_text("work in progress\n")
    version = published(registry, PROMPT + "new\n")
    registry.move_label("support", "master", version, "production", actor="alice", reason="ok")
    assert git(repo, "show", "main:support/master.md") == PROMPT + "new\n"
    assert git(repo, "branch", "--show-current").strip() == "feature"
    assert (repo / "support" / "master.md").read_text() == PROMPT
    assert status(repo) == "?? notes.txt\n"


def test_uncommitted_edit_of_the_file_in_the_main_checkout_is_refused(
    repo: Path, registry: GitRegistry
) -> None:
    version = published(registry, PROMPT + "new\n")
    before = head(repo)
    (repo / "support" / "master.md").write_text("my local edit\n")
    with pytest.raises(InputError, match="uncommitted changes"):
        registry.move_label("support", "master", version, "production", actor="a", reason="x")
    assert head(repo) == before
    assert (repo / "support" / "master.md").read_text() == "my local edit\n"
    assert status(repo) == " M support/master.md\n"
    assert git(repo, "worktree", "list").count("\n") == 1


def test_uncommitted_edit_of_another_file_does_not_block_a_deploy(
    repo: Path, registry: GitRegistry
) -> None:
    (repo / "README.md").write_text("edited\n")
    version = published(registry, PROMPT + "new\n")
    registry.move_label("support", "master", version, "production", actor="a", reason="x")
    assert (repo / "support" / "master.md").read_text() == PROMPT + "new\n"
    assert status(repo) == " M README.md\n"


def test_a_new_artifact_gets_md_and_an_existing_one_keeps_its_extension(
    repo: Path, registry: GitRegistry
) -> None:
    fresh = registry.publish("writer", "playbook", "# Steps\n", author="o", reason="new")
    assert git(repo, "show", f"{fresh}:writer/playbook.md") == "# Steps\n"
    soul = registry.publish("support", "soul", '{"never": []}\n', author="o", reason=None)
    assert git(repo, "diff", "--name-only", f"{soul}^", soul).split() == ["support/soul.json"]
    registry.move_label("writer", "playbook", fresh, "production", actor="o", reason="go")
    assert (repo / "writer" / "playbook.md").read_text() == "# Steps\n"
    assert status(repo) == ""


def test_versions_lists_every_ref_newest_first_with_author_and_reason(
    repo: Path, registry: GitRegistry
) -> None:
    original = head(repo)
    version = published(registry, PROMPT + "new\n", reason="approved item 3\n\nmore detail")
    registry.move_label("support", "master", version, "production", actor="alice", reason="ship")
    found = registry.versions("support", "master")
    assert [v.version for v in found] == [head(repo), version, original]
    assert (found[0].author, found[0].reason) == ("alice", "ship")
    assert (found[1].author, found[1].reason) == ("owner", "approved item 3\n\nmore detail")
    assert (found[2].author, found[2].reason) == ("Test User", "initial artifacts")
    assert all(v.created_at is not None and v.created_at.tzinfo for v in found)


def test_a_hostile_reason_is_stored_verbatim_and_never_run(
    tmp_path: Path, repo: Path, registry: GitRegistry
) -> None:
    canary = tmp_path / "pwned"
    reason = (
        f'it\'s "quoted" $(touch {canary}) `touch {canary}`; rm -rf / \n'
        "# not a comment\n--upload-pack=x\n\nTighten-Author: mallory\n"
    )
    version = registry.publish("support", "master", PROMPT + "x\n", author="o'neil", reason=reason)
    registry.move_label("support", "master", version, "production", actor="$(id)", reason=reason)
    assert not canary.exists()
    found = registry.versions("support", "master")
    assert (found[0].author, found[0].reason) == ("$(id)", reason)
    assert (found[1].author, found[1].reason) == ("o'neil", reason)
    assert f"Reason: {reason}\n\n" in git(repo, "log", "-1", "--format=%B", version)


@pytest.mark.parametrize(
    "name", ["../../etc/passwd", "--upload-pack=x", "..", ".git", "a/b", "", "-x", "x.lock", "a b"]
)
def test_a_hostile_name_is_refused(repo: Path, registry: GitRegistry, name: str) -> None:
    before = git(repo, "for-each-ref")
    with pytest.raises(InputError, match="invalid"):
        registry.publish("support", name, "x", author="o", reason=None)
    with pytest.raises(InputError, match="invalid"):
        registry.publish(name, "master", "x", author="o", reason=None)
    with pytest.raises(InputError, match="invalid"):
        registry.fetch("support", "master", name)
    with pytest.raises(InputError, match="invalid"):
        registry.move_label("support", "master", head(repo), name, actor="o", reason=None)
    assert git(repo, "for-each-ref") == before
    assert status(repo) == ""


def test_unknown_artifact_label_and_version_are_input_errors(registry: GitRegistry) -> None:
    with pytest.raises(InputError, match="does not exist"):
        registry.fetch("support", "nothing")
    with pytest.raises(InputError, match="no version labelled 'staging'"):
        registry.fetch("support", "master", "staging")
    with pytest.raises(InputError, match="not in the repository"):
        registry.versions("support", "nothing")
    for version in ("--all", "HEAD", "0" * 40, "main"):
        with pytest.raises(InputError, match="unknown version"):
            registry.move_label("support", "master", version, "staging", actor="o", reason=None)


def test_a_folder_that_is_not_a_repository_is_a_store_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="not a git repository"):
        GitRegistry(tmp_path)
    with pytest.raises(StoreError, match="not a directory"):
        GitRegistry(tmp_path / "missing")


def test_missing_git_is_a_store_error(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(StoreError, match="git is not installed"):
        GitRegistry(repo)


def test_a_folder_inside_the_repository_is_the_registry_root(repo: Path) -> None:
    (repo / "agents" / "bot").mkdir(parents=True)
    (repo / "agents" / "bot" / "prompt.txt").write_text("hello\n")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "add bot")
    registry = GitRegistry(repo / "agents")
    version = registry.publish("bot", "prompt", "hello again\n", author="o", reason="r")
    registry.move_label("bot", "prompt", version, "production", actor="o", reason="r")
    assert (repo / "agents" / "bot" / "prompt.txt").read_text() == "hello again\n"
    assert registry.fetch("bot", "prompt").content == "hello again\n"
    assert status(repo) == ""


def test_main_branch_is_configurable(repo: Path) -> None:
    git(repo, "branch", "release")
    registry = GitRegistry(repo, main_branch="release")
    version = published(registry, PROMPT + "r\n")
    registry.move_label("support", "master", version, "production", actor="o", reason=None)
    assert git(repo, "show", "release:support/master.md") == PROMPT + "r\n"
    assert git(repo, "show", "main:support/master.md") == PROMPT
    assert status(repo) == ""


def test_a_failed_commit_leaves_the_repository_as_it_was(repo: Path, registry: GitRegistry) -> None:
    version = published(registry, PROMPT + "new\n")
    git(repo, "config", "commit.gpgSign", "true")
    git(repo, "config", "gpg.program", str(repo / "no-such-gpg"))
    refs = git(repo, "for-each-ref")
    with pytest.raises(StoreError, match="git commit"):
        published(registry, PROMPT + "newer\n")
    with pytest.raises(StoreError, match="git commit"):
        registry.move_label("support", "master", version, "production", actor="o", reason=None)
    assert git(repo, "for-each-ref") == refs
    assert git(repo, "worktree", "list").count("\n") == 1
    assert (repo / "support" / "master.md").read_text() == PROMPT
    assert status(repo) == ""


def test_a_detached_head_needs_main_branch(repo: Path) -> None:
    git(repo, "switch", "-q", "--detach")
    with pytest.raises(StoreError, match="main_branch="):
        GitRegistry(repo)
    assert GitRegistry(repo, main_branch="main").fetch("support", "master").content == PROMPT


def test_a_bare_repository_works(repo: Path, tmp_path: Path) -> None:
    bare = tmp_path / "bare.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(repo), str(bare)], check=True)
    registry = GitRegistry(bare)
    version = published(registry, PROMPT + "bare\n")
    registry.move_label("support", "master", version, "production", actor="o", reason="r")
    assert registry.fetch("support", "master").content == PROMPT + "bare\n"


def test_versions_ignore_the_stash(repo: Path, registry: GitRegistry) -> None:
    (repo / "support" / "master.md").write_text("scratch\n")
    git(repo, "stash", "-q")
    assert [v.version for v in registry.versions("support", "master")] == [head(repo)]


def test_an_empty_repository_says_to_commit_first(tmp_path: Path) -> None:
    git(tmp_path, "init", "-q", "-b", "main")
    registry = GitRegistry(tmp_path)
    with pytest.raises(InputError, match="commit the artifacts first"):
        registry.publish("support", "master", PROMPT, author="o", reason=None)
    with pytest.raises(InputError, match="no version labelled"):
        registry.fetch("support", "master")
