"""A real telephone network: SIP signalling (RFC 3261) and RTP media (RFC 3550) on the engine's media loop.

Pure parts (messages, SDP, G.711, RTP/RTCP packets, the jitter buffer, RFC 4733 events, transactions on an
injected clock) are plain functions and classes; the edges are the SIP transport (asyncio UDP and TCP) and the RTP
hub (one shared UDP socket for every call, drained and flushed once per media tick with
``recvmmsg``/``sendmmsg``).
"""
