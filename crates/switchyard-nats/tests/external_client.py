#!/usr/bin/env python3
"""An external reader of the Switchyard wire format, written with nats-py (no Switchyard code).

    python3 tests/external_client.py URL COUNT                 # core: subscribe to sy.>
    python3 tests/external_client.py URL COUNT --stream NAME   # JetStream: read stream NAME

Prints `ready` once it can receive (core: the subscription is in place on the server;
JetStream: the consumer exists), then one JSON line per message:

    {"subject": "sy.market_data.trade.BTCUSDT", "headers": {"Nats-Msg-Id": "..."}, "payload": {...}}

and exits 0 after COUNT messages. Exits non-zero (traceback on stderr) if a message does
not arrive within 30 s or a payload is not JSON.
"""

import asyncio
import json
import sys

import nats

TIMEOUT = 30.0


def emit(msg):
    line = {
        "subject": msg.subject,
        "headers": dict(msg.headers or {}),
        "payload": json.loads(msg.data.decode("utf-8")),
    }
    print(json.dumps(line, ensure_ascii=False), flush=True)


async def core(nc, count):
    sub = await nc.subscribe("sy.>")
    # The server has the subscription once it answered a PING.
    await nc.flush(timeout=TIMEOUT)
    print("ready", flush=True)
    for _ in range(count):
        emit(await sub.next_msg(timeout=TIMEOUT))


async def jetstream(nc, count, stream):
    js = nc.jetstream()
    # An ephemeral pull consumer reading the stream from its start.
    sub = await js.pull_subscribe("sy.>", stream=stream)
    print("ready", flush=True)
    got = 0
    while got < count:
        for msg in await sub.fetch(batch=count - got, timeout=TIMEOUT):
            emit(msg)
            await msg.ack()
            got += 1


async def main():
    args = sys.argv[1:]
    if len(args) not in (2, 4) or (len(args) == 4 and args[2] != "--stream"):
        sys.exit(__doc__)
    url, count = args[0], int(args[1])
    nc = await nats.connect(url, connect_timeout=10, max_reconnect_attempts=0)
    try:
        if len(args) == 4:
            await jetstream(nc, count, args[3])
        else:
            await core(nc, count)
    finally:
        await nc.close()


if __name__ == "__main__":
    asyncio.run(main())
