"""What `agentstream mcp proxy` adds to an MCP tool call, measured side by side in one run.

The same MCP server (the official `mcp` SDK, one trivial tool) is called over stdio directly
and through the proxy (recording every call as a TOOL step to an embedded broker), in
alternating rounds so that the machine's load hits both alike. Prints the median per-call
latency of each and their ratio, and ends with one JSON line.

    python bench/mcp_proxy.py [--calls 200] [--rounds 4]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

SERVER = '''
from mcp.server.mcpserver import MCPServer
server = MCPServer("bench", log_level="WARNING")

@server.tool()
def lookup(key: str, n: int) -> str:
    return key[:4] + str(n)

server.run()
'''


async def _calls(params, n: int) -> list[float]:
    from mcp import Client

    out = []
    async with Client(params, mode="legacy") as client:
        await client.call_tool("lookup", {"key": "warmup", "n": 0})
        for i in range(n):
            t0 = time.perf_counter()
            await client.call_tool("lookup", {"key": f"order-{i}", "n": i})
            out.append((time.perf_counter() - t0) * 1000)
    return out


def main() -> None:
    from mcp import StdioServerParameters

    from agentstream.cli.embedded_broker import EmbeddedBroker
    from agentstream.schemas.topics import create_topics

    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=4)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mcp-bench-"))
    (work / "server.py").write_text(SERVER)
    broker = EmbeddedBroker(log_path=str(work / "tansu.log")).start()
    try:
        prefix = "mcpbench."
        create_topics(broker.bootstrap_servers, prefix=prefix, partitions=1)
        env = {**os.environ, "AGENTSTREAM_PRODUCER_BOOTSTRAP_SERVERS": broker.bootstrap_servers,
               "AGENTSTREAM_PRODUCER_TOPIC_PREFIX": prefix,
               "AGENTSTREAM_PRODUCER_DIGEST_KEY": "bench",
               "AGENTSTREAM_PRODUCER_SPOOL_DIR": str(work / "spool"),
               "AGENTSTREAM_DATA_DIR": str(work / "no-stack")}
        server = [sys.executable, str(work / "server.py")]
        direct = StdioServerParameters(command=server[0], args=server[1:], env=env)
        proxied = StdioServerParameters(command=sys.executable, args=[
            "-m", "agentstream.cli.main", "mcp", "proxy", "--tenant", "bench", "--", *server],
            env=env)
        times: dict[str, list[float]] = {"direct": [], "proxy": []}
        for _ in range(args.rounds):
            times["direct"] += asyncio.run(_calls(direct, args.calls))
            times["proxy"] += asyncio.run(_calls(proxied, args.calls))
    finally:
        broker.stop()
    med = {k: statistics.median(v) for k, v in times.items()}
    p95 = {k: statistics.quantiles(v, n=20)[-1] for k, v in times.items()}
    print(f"{'per tools/call, ms':<22}{'median':>10}{'p95':>10}   ({args.rounds} rounds x "
          f"{args.calls} calls each, alternating)")
    for k in ("direct", "proxy"):
        print(f"{k:<22}{med[k]:>10.3f}{p95[k]:>10.3f}")
    added = med["proxy"] - med["direct"]
    print(f"proxy / direct median: {med['proxy'] / med['direct']:.2f}x "
          f"(+{added:.3f} ms per call)")
    print(json.dumps({"calls": args.calls * args.rounds,
                      "direct_median_ms": round(med["direct"], 3),
                      "proxy_median_ms": round(med["proxy"], 3),
                      "direct_p95_ms": round(p95["direct"], 3),
                      "proxy_p95_ms": round(p95["proxy"], 3),
                      "ratio_median": round(med["proxy"] / med["direct"], 3),
                      "added_median_ms": round(added, 3)}))


if __name__ == "__main__":
    main()
