"""Many connected users, many concurrent forwards: completion time and per-account serialisation.

Run from the repository root: ``.venv/bin/python -m benchmarks.bench_scale [--users 1000]``.

Users are connected through the real product path (``connect`` in chat, then the browser's
consent round trip against the Dropbox stand-in's OAuth pages), 50 at a time. Then ``--forwards``
users each forward a file at once (one ``serve`` process, embedded store); the clock stops when
the last "Saved ..." message arrives. The Dropbox stand-in's ``max_parallel_commits`` (commits of
one account in flight at once: what Dropbox serialises) must be at most 1 for every account, and
every file must have been committed once; contents may go up in parallel
(``max_parallel_writes`` counts those too).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

from storage.embedded import EmbeddedStore
from tests.drills.harness import dropbox_email, sandbox, user, wait_until


async def main(users: int, forwards: int, workers: int) -> int:
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp_name:
        tmp = Path(tmp_name)
        async with (
            EmbeddedStore(storage_dir=tmp / "store") as store,
            sandbox(tmp, store.uri) as box,
        ):
            box.extra_env["BOT_UPLOAD_CONCURRENCY"] = str(workers)
            bot = await box.start_bot()
            await box.setup_connection(bot)
            people = [user(i) for i in range(users)]
            started = time.perf_counter()
            gate = asyncio.Semaphore(50)

            async def connect(n: int) -> None:
                async with gate:
                    await box.connect(bot, people[n])

            await asyncio.gather(*(connect(n) for n in range(users)))
            connect_s = time.perf_counter() - started

            senders = people[:forwards]
            # Half the senders forward two files, so accounts have queued work to serialise.
            jobs = [(u, f"s{n}-a.bin") for n, u in enumerate(senders)]
            jobs += [(u, f"s{n}-b.bin") for n, u in enumerate(senders) if n % 2 == 0]
            attachments = [
                (u, box.cliq.add_generated_file(name, 256 * 1024, seed=n))
                for n, (u, name) in enumerate(jobs)
            ]
            started = time.perf_counter()
            replies = await asyncio.gather(*(box.send(bot, u, a) for u, a in attachments))
            acked_s = time.perf_counter() - started
            refused = [r.text for r in replies if "started" not in r.text]
            if refused:
                errors = bot.log().splitlines()
                print(f"{len(refused)} of {len(replies)} forwards refused: {refused[0]!r}")
                wanted = [e for e in errors if "Error" in e or "  File" in e or "assert" in e]
                print("\n".join(wanted)[-3000:])
                return 1

            def all_saved() -> bool:
                return sum("Saved" in str(m.payload.get("text")) for m in box.cliq.messages) >= len(
                    jobs
                )

            await wait_until(all_saved, 600, f"{len(jobs)} files saved", interval=0.05)
            done_s = time.perf_counter() - started
            stats = await box.stats()
            per_account = {
                dropbox_email(u): len(box.dropbox.files(dropbox_email(u))) for u in senders
            }
    writes = stats["max_parallel_writes"]
    commits = stats.get("max_parallel_commits", writes)  # an older stand-in counted writes only
    worst = max(commits.values())
    committed = sum(stats.get("commits", {}).values())
    print(f"{users} users connected through OAuth in {connect_s:.1f} s ({users / connect_s:.0f}/s)")
    print(
        f"{len(jobs)} forwards from {forwards} users at once (256 KiB each, "
        f"BOT_UPLOAD_CONCURRENCY={workers}): all acked in {acked_s:.2f} s, "
        f"all saved in {done_s:.2f} s ({len(jobs) / done_s:.1f} files/s)"
    )
    calls = stats["calls"]
    print(
        f"max_parallel_commits over {len(commits)} accounts: {worst} "
        f"({'held' if worst <= 1 else 'BROKEN'}; target <= 1); max_parallel_writes "
        f"{max(writes.values())}; files per account "
        f"{min(per_account.values())}..{max(per_account.values())}; file commits {committed}"
        f" for {len(jobs)} files; upload calls {calls.get('/2/files/upload', 0)}, batch commits"
        f" {calls.get('/2/files/upload_session/finish_batch_v2', 0)}"
    )
    return 0 if worst <= 1 else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--forwards", type=int, default=100)
    parser.add_argument("--workers", type=int, default=8, help="BOT_UPLOAD_CONCURRENCY")
    args = parser.parse_args()
    users = max(1, min(args.users, 5000))
    forwards = max(1, min(args.forwards, users))
    sys.exit(asyncio.run(main(users, forwards, max(1, min(args.workers, 64)))))
