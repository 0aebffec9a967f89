"""The git_lfs role leaves a host where any user's clone fetches LFS content, not pointers."""

import textwrap


def test_packages_installed(host):
    assert host.package("git").is_installed
    assert host.package("git-lfs").is_installed


def test_filter_enabled_system_wide(host):
    config = host.check_output("git config --system --get-regexp '^filter\\.lfs\\.'")
    assert "filter.lfs.process git-lfs filter-process" in config
    assert "filter.lfs.required true" in config


def test_clone_by_an_unprivileged_user_gets_content_not_pointers(host):
    """A local LFS round trip (git-lfs' file:// transfer): commit, push to a bare repo, clone, compare."""
    script = textwrap.dedent(
        """
        set -eu
        id lfsprobe >/dev/null 2>&1 || useradd --create-home lfsprobe
        su lfsprobe -s /bin/sh -c '
          set -eu; cd ~; rm -rf src origin.git clone
          git init -q -b main src; cd src
          git config user.email t@example.invalid; git config user.name t
          git lfs track "*.safetensors" >/dev/null
          head -c 4096 /dev/urandom > model.safetensors
          git add .gitattributes model.safetensors; git commit -qm weights
          git init -q --bare -b main ../origin.git; git push -q "file://$HOME/origin.git" main
          cd ..; git clone -q "file://$HOME/origin.git" clone
          cmp src/model.safetensors clone/model.safetensors
          echo CONTENT_MATCHES
          git -C clone lfs ls-files'
        """
    )
    out = host.check_output(f"bash -c {_quote(script)}")
    assert "CONTENT_MATCHES" in out
    assert "model.safetensors" in out


def _quote(text):
    return "'" + text.replace("'", "'\"'\"'") + "'"
