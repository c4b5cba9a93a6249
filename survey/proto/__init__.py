"""Sans-IO protocol code: bytes or text in, values out.

Nothing under this package may import trio, socket, ssl or anything else that
does I/O (tests/test_layering.py enforces it), so every parser can be fuzzed
and fed conformance vectors without a network.
"""
