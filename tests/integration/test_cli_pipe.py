"""``creditstream list NAME | head -1`` against the embedded stack: the reader going away after the
first line is not an error (exit 0, nothing on stderr)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from sinks.keys import resolve_keys

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


async def test_list_piped_into_head(settings, redis, tmp_path):
    keys = await resolve_keys(redis, settings.namespace)
    members = [f"91310110{i:09d}X" for i in range(20_000)]  # ~400 kB: more than a pipe holds
    for i in range(0, len(members), 5000):
        await redis.sadd(keys.list_members("blacklist:environment"), *members[i:i + 5000])
    env = {k: v for k, v in os.environ.items() if not k.startswith("CREDITSTREAM_")}
    env.update(CREDITSTREAM_REDIS_URL=settings.redis_url, CREDITSTREAM_BROKER_URL=settings.broker_url,
               CREDITSTREAM_NAMESPACE=settings.namespace, CREDITSTREAM_RUN_DIR=str(tmp_path),
               CREDITSTREAM_SETTINGS=str(tmp_path / "none.toml"), PYTHONPATH=str(ROOT))
    (tmp_path / "none.toml").write_text("")
    cli = f"{sys.executable} -m creditstream.cli"
    proc = subprocess.run(["bash", "-c", "set -o pipefail; "
                           f"{cli} list blacklist:environment --count 100000 | head -1"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [min(members)]
    assert proc.stderr == ""
    # and the whole of it when nobody stops reading
    proc = subprocess.run(["bash", "-c", f"{cli} list blacklist:environment --count 100000 | wc -l"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert proc.stdout.strip() == str(len(members)), proc.stderr


async def test_a_code_no_subject_can_have_says_why(settings):
    """Seen (an audit): `creditstream lists` of a USCC with a mistyped check character said only "no
    subject"; the check API says why no subject can have it, and so do `subject` and `lists` now."""
    from tests.workers import run_to_end, worker_env
    for command in ("lists", "subject"):
        rc, out, err = await run_to_end([sys.executable, "-m", "creditstream.cli", command, "91410100AA0000018X"],
                                        env=worker_env(settings))
        assert rc == 1 and out == b"", (command, rc, out, err)
        assert b"its check character does not match" in err, err
    rc, _, err = await run_to_end([sys.executable, "-m", "creditstream.cli", "lists", "91350100M000100Y43"],
                                  env=worker_env(settings))
    assert rc == 1 and err.decode().strip().endswith("legacy number)"), err  # well formed: no reason given
