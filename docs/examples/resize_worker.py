"""An application's worker module: python resize_worker.py [HOST [PORT]]."""

import asyncio
import sys

import gear

worker = gear.AsyncWorker("resizer", codec=gear.JSONCodec())


@worker.function("resize", timeout=30)
async def resize(size: dict[str, int]) -> dict[str, int]:
    if size["width"] <= 0 or size["height"] <= 0:
        raise ValueError("sizes must be positive")
    return {"width": size["width"] // 2, "height": size["height"] // 2}


async def main() -> None:
    async with worker:
        await worker.run()


if __name__ == "__main__":
    host = sys.argv[1] if len(sys.argv) > 1 else "localhost"
    port = int(sys.argv[2]) if len(sys.argv) > 2 else 4730
    worker.add_server(host, port)
    asyncio.run(main())
