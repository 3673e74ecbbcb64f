"""The callback poster: answers by length, by chunks and by connection end; cut off at the limit, unread."""

from __future__ import annotations

import asyncio

import pytest

from engine.server.poster import Answer, AnswerError, Poster

ACK = b'{"code":"0"}'


async def _exchange(answers: list[bytes], posts: int = 1, limit: int = 4096) -> tuple[list[Answer], dict]:
    """POST ``posts`` times to a raw server that writes ``answers`` (one per connection, in order)."""
    seen = {"connections": 0, "bytes_requested": 0}

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen["connections"] += 1
        try:
            while answers:
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                seen["bytes_requested"] += len(await reader.readexactly(length))
                answer = answers.pop(0)
                writer.write(answer)
                await writer.drain()
                if b"close" in answer.lower() or b"content-length" not in answer.lower() and b"chunked" not in answer:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    poster = Poster(max_answer_bytes=limit)
    try:
        results = [await asyncio.wait_for(poster.post(f"http://127.0.0.1:{port}/cb?x=1", b'{"n":1}'), 10)
                   for _ in range(posts)]
    finally:
        await poster.close()
        server.close()
    return results, seen


def test_answers_by_length_are_read_and_the_connection_is_kept() -> None:
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(ACK), ACK)
    results, seen = asyncio.run(_exchange([answer] * 3, posts=3))
    assert results == [Answer(200, ACK)] * 3 and seen["connections"] == 1 and seen["bytes_requested"] == 21


def test_chunked_answers_are_joined_and_cut_off_past_the_limit() -> None:
    chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{\"cod\r\n7\r\ne\":\"0\"}\r\n0\r\n\r\n"
    huge = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + b"1000\r\n" + b"x" * 4096 + b"\r\n" * 2
    results, seen = asyncio.run(_exchange([chunked, huge], posts=2, limit=100))
    assert results == [Answer(200, ACK), Answer(200, b"", truncated=True)]
    assert seen["connections"] == 1


def test_an_answer_declaring_more_than_the_limit_is_not_read_and_its_connection_closed() -> None:
    big = b"HTTP/1.1 200 OK\r\nContent-Length: 1073741824\r\n\r\n" + b"0" * 10000
    ok = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(ACK), ACK)
    results, seen = asyncio.run(_exchange([big, ok], posts=2))
    assert results == [Answer(200, b"", truncated=True), Answer(200, ACK)] and seen["connections"] == 2


def test_an_answer_ended_by_the_connection_and_a_connection_close_are_handled() -> None:
    until_end = b"HTTP/1.0 500 Oops\r\n\r\n" + b"e" * 5000
    closing = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(ACK), ACK)
    results, seen = asyncio.run(_exchange([until_end, closing], posts=2))
    assert results == [Answer(500, b"e" * 4096, truncated=True), Answer(200, ACK)] and seen["connections"] == 2


def test_a_non_http_answer_is_an_error() -> None:
    with pytest.raises(AnswerError, match="not an HTTP answer"):
        asyncio.run(_exchange([b"SSH-2.0-OpenSSH\r\n\r\n"]))
