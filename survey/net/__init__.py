"""The only layer that does network I/O (trio). Every outgoing connection passes guard.py."""
