"""`memdash hook`: record one Claude Code hook event (its JSON payload on stdin) in the store.

It must never hurt the agent: nothing on stdout or stderr (Claude Code adds a hook's stdout to
the model's context for some events), exit status 0 whatever happens (a malformed payload, the
store down, a relay that does not answer), and fast. So by default this is a thin client: the
standard library only, handing the payload to the hook relay (``store.integrations.hook_relay``)
and waiting at most half a second for it to say the payload was applied. Problems go to
``hook.log`` in the user data dir.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys

from . import add_store_options


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "hook",
        help="record a Claude Code hook event read from stdin (for settings.json)",
        description="Record the Claude Code hook event whose JSON payload is on stdin. Prints "
        "nothing and exits 0 even on errors (they go to hook.log in the user data dir). "
        "Install it with `memdash install-hooks`.",
    )
    add_store_options(parser)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--direct",
        action="store_true",
        help="apply the payload in this process instead of through the relay (slower; debugging)",
    )
    mode.add_argument(
        "--stop-relay",
        action="store_true",
        help="stop the relay serving this store and namespace, and say so",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from store.integrations import hook_relay

    url, namespace = hook_relay.resolve_settings(
        getattr(args, "redis", None), getattr(args, "namespace", None)
    )
    if args.stop_relay:
        pid = hook_relay.stop_relay(url, namespace)
        print(f"stopped the hook relay (pid {pid})" if pid else "no hook relay is running")
        return 0
    _silence()
    try:
        payload = sys.stdin.buffer.read(hook_relay.MAX_PAYLOAD_BYTES + 1)
        if len(payload) > hook_relay.MAX_PAYLOAD_BYTES:
            hook_relay.log(f"payload over {hook_relay.MAX_PAYLOAD_BYTES} bytes dropped")
            return 0
        if args.direct:
            _apply_here(payload, url, namespace)
            return 0
        try:
            reply = hook_relay.deliver(payload, url, namespace)
        except hook_relay.RelayUnavailable as e:
            hook_relay.log(f"payload dropped: {e}")
            return 0
        if reply is None:
            hook_relay.log(
                f"no answer from the relay within {hook_relay.ACK_TIMEOUT} s "
                "(it applies the payload when it gets to it)"
            )
    except BaseException as e:  # any exit status but 0 would reach the agent
        hook_relay.log(f"hook failed: {type(e).__name__}: {e}")
    return 0


def _silence() -> None:
    """Point stdout and stderr (the file descriptors, for anything a library prints) at
    /dev/null: Claude Code shows or feeds to the model whatever a hook prints."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    for stream, fd in ((sys.stdout, 1), (sys.stderr, 2)):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
        os.dup2(devnull, fd)
    os.close(devnull)


def _apply_here(payload: bytes, url: str | None, namespace: str) -> None:
    import asyncio
    import time

    from store.integrations.claude_code import HookRecorder

    async def apply() -> None:
        recorder = HookRecorder.open(url, namespace)
        try:
            await recorder.apply(payload, received_at=time.time())
        finally:
            await recorder.aclose()

    asyncio.run(apply())
