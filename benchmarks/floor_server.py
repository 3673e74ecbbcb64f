"""The HTTP baseline: the stack of ``ipcc-engine serve`` with one route answering a fixed ``000000``.

The stack is the same as the server's (FastAPI on uvicorn, uvloop, httptools); the one route reads the body, parses it
as JSON and answers a fixed ``000000`` — the floor under which no multOrders server on this stack can go. Run as
``python -m benchmarks.floor_server PORT``.
"""

from __future__ import annotations

import json
import sys

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

app = FastAPI()


@app.post("/ipcc/call/multOrders")
async def mult_orders(request: Request) -> JSONResponse:
    """Parse the body and answer as the engine does when it accepts a request."""
    body = json.loads(await request.body())
    app_id, call_id = body.get("appId", ""), body.get("callId", "")
    return JSONResponse({"code": "000000", "msg": "ok", "appId": app_id, "callId": call_id,
                         "appid": app_id, "callid": call_id})


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
