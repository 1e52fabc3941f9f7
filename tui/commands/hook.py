"""`memdash hook`: hand one Claude Code hook event (its JSON payload on stdin) to memdash, and
print the hook's answer, if there is one.

It must never hurt the agent: exit status 0 whatever happens (a malformed payload, the store
down, a relay that does not answer), nothing on stderr, and on stdout only the answer JSON
Claude Code reads from a hook (notes for the agent, a tool or prompt refused), or nothing. And
fast. So by default this is a thin client: the standard library only, handing the payload to
the hook relay (``store.integrations.hook_relay``), which starts if it is not running, and
waiting at most half a second for its answer (none in time: nothing is printed, the notes it
carried go back to pending, the payload is still recorded). Problems go to ``hook.log`` in the
user data dir.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys

from . import add_store_options


def _port(text: str) -> int:
    port = int(text)
    if not 0 < port < 65536:
        raise argparse.ArgumentTypeError(f"not a TCP port: {text}")
    return port


def _tokens(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"a budget is a positive number of tokens, not {text}")
    return value


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "hook",
        help="record a Claude Code hook event read from stdin (for settings.json)",
        description="Record the Claude Code hook event whose JSON payload is on stdin, and "
        "print the hook's answer JSON when there is one (nothing otherwise). Exits 0 even on "
        "errors (they go to hook.log in the user data dir). Install it with "
        "`memdash install-hooks`.",
    )
    add_store_options(parser)
    parser.add_argument(
        "--http-port",
        type=_port,
        metavar="PORT",
        help="the relay (started if none runs) also answers Claude Code's HTTP hooks on "
        "127.0.0.1:PORT",
    )
    parser.add_argument(
        "--budget",
        type=_tokens,
        metavar="TOKENS",
        help="a binding token budget for the session (passed on to the recorder)",
    )
    parser.add_argument(
        "--workflow",
        metavar="FILE",
        help="a task workflow definition for the session (passed on to the recorder)",
    )
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


def options(args: argparse.Namespace) -> dict[str, object]:
    """What goes to the relay with the payload, besides the store."""
    found: dict[str, object] = {}
    if getattr(args, "http_port", None):
        found["http_port"] = args.http_port
    if getattr(args, "budget", None):
        found["budget"] = args.budget
    # The project's task workflow: --workflow, else MEMDASH_WORKFLOW from the environment
    # Claude Code gives its hooks (settings' "env"), read here and not in the relay, whose
    # environment is that of whichever hook started it.
    workflow = getattr(args, "workflow", None) or os.environ.get("MEMDASH_WORKFLOW")
    if workflow:
        found["workflow"] = os.path.abspath(os.path.expanduser(workflow))
    return found


def run(args: argparse.Namespace) -> int:
    from store.integrations import hook_relay

    url, namespace = hook_relay.resolve_settings(
        getattr(args, "redis", None), getattr(args, "namespace", None)
    )
    if args.stop_relay:
        pid = hook_relay.stop_relay(url, namespace)
        print(f"stopped the hook relay (pid {pid})" if pid else "no hook relay is running")
        return 0
    stdout = _silence()
    output = None
    try:
        payload = sys.stdin.buffer.read(hook_relay.MAX_PAYLOAD_BYTES + 1)
        if len(payload) > hook_relay.MAX_PAYLOAD_BYTES:
            hook_relay.log(f"payload over {hook_relay.MAX_PAYLOAD_BYTES} bytes dropped")
            return 0
        if args.direct:
            output = _apply_here(payload, url, namespace, options(args))
        else:
            try:
                reply = hook_relay.deliver(payload, url, namespace, options=options(args))
            except hook_relay.RelayUnavailable as e:
                hook_relay.log(f"payload dropped: {e}")
                return 0
            if reply is None:
                hook_relay.log(
                    f"no answer from the relay within {hook_relay.ACK_TIMEOUT} s "
                    "(it records the payload when it gets to it; no answer printed)"
                )
            else:
                output = reply[1]
        if output:
            os.write(stdout, json.dumps(output).encode() + b"\n")
    except BaseException as e:  # any exit status but 0 would reach the agent
        hook_relay.log(f"hook failed: {type(e).__name__}: {e}")
    return 0


def _silence() -> int:
    """Point stdout and stderr (the file descriptors, for anything a library prints) at
    /dev/null: Claude Code shows or feeds to the model whatever a hook prints. Returns a copy
    of the real stdout, for the answer alone."""
    stdout = os.dup(1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    for stream, fd in ((sys.stdout, 1), (sys.stderr, 2)):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
        os.dup2(devnull, fd)
    os.close(devnull)
    return stdout


def _apply_here(
    payload: bytes, url: str | None, namespace: str, options: dict[str, object]
) -> dict[str, object] | None:
    """Decide and record in this process; the answer (None when there is none)."""
    import asyncio
    import inspect
    import time

    from store.integrations import hook_relay
    from store.integrations.claude_code import HookRecorder, MalformedHook, parse_payload

    received_at = time.time()

    async def apply() -> dict[str, object] | None:
        recorder = HookRecorder.open(url, namespace)
        output = None
        try:
            try:
                parsed = parse_payload(payload)
                decision = await recorder.decide(parsed)
                output = decision.hook_output()
            except MalformedHook:
                pass  # apply logs it
            except Exception as e:  # fail-open: as if memdash were absent
                hook_relay.log(f"no decision, nothing answered: {type(e).__name__}: {e}")
            extra = {}
            if "options" in inspect.signature(recorder.apply).parameters:
                extra["options"] = {"at": received_at, **options}
            await recorder.apply(payload, received_at=received_at, **extra)
        finally:
            await recorder.aclose()
        return output

    return asyncio.run(apply())
