"""Realtime sessions (`/v1/realtime`): the OpenAI Realtime event protocol relayed between
a client's WebSocket and an upstream's (upstream.py), billed per response (meter.py,
session.py)."""
